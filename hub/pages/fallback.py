"""What the hub answers for addresses that are not its pages or API.

- `/` (the base URL): on to `/hub/`; `/favicon.ico`: the hub's icon.
- `/user/<name>/...`: the proxy sent a user's server address to the hub because it
  has no route for it. A running server whose route went missing (a proxy that
  restarted) gets its route back and the browser goes round once more; otherwise the
  page says the server is not running and offers to start it (API clients get a JSON
  503 instead). Not logged in: the login page first, coming back here.
- Anything else: an HTML 404 page (`/hub/api/...` keeps its JSON 404).
"""

from __future__ import annotations

from urllib.parse import unquote, urlencode

import orjson
from tornado import web

from hub.errors import AtriumError
from hub.log import bounded
from hub.ops import servers as server_ops
from hub.pages.base import PageHandler
from hub.pages.error import MAX_URL, NotRunningPage, _server_of

# set on the one redirect that follows a restored route, so a route that will not
# stick ends on the page instead of looping
RETRY_ARG = "_atrium_retry"


class RootRedirect(PageHandler):
    async def get(self) -> None:
        self.redirect(f"{self.ctx.base_url}hub/")


class FaviconRedirect(PageHandler):
    """Browsers ask for /favicon.ico on their own; pages name the hub's icon anyway."""

    async def get(self) -> None:
        self.redirect(f"{self.ctx.base_url}hub/static/favicon.svg", permanent=True)


class UserUrlHandler(NotRunningPage):
    async def get(self, name_part: str, rest: str | None) -> None:
        req = self.require_login()
        path = (self.request.path or "")[:MAX_URL]
        user, server = await self.db.run(_server_of, unquote(name_part), (rest or "/")[1:])
        if not self.get_query_argument(RETRY_ARG, ""):
            try:
                ref = await self.db.run(server_ops.lookup, req, user, server, "read:servers")
            except AtriumError:
                ref = None  # not theirs to see: the same page as for a stopped server
            if ref is not None and ref.started and ref.pending is None and ref.url:
                await self.hub.orchestrator.restore_route(ref)
                query = [(k, v) for k, vs in self.request.query_arguments.items() for v in vs]
                args = [(k, v.decode(errors="replace")) for k, v in query]
                self.redirect(f"{path}?{urlencode([*args, (RETRY_ARG, '1')])}")
                return
        await self.not_running(path, 503)

    async def _api_answer(self) -> None:
        self.set_status(503)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(orjson.dumps({"status": 503, "message": "This server is not running"}))

    async def post(self, name_part: str, rest: str | None) -> None:
        await self._api_answer()

    put = patch = delete = post

    def check_xsrf_cookie(self) -> None:
        # nothing is changed here: writes to a server that is not running are refused
        return


def _wants_json(handler: web.RequestHandler) -> bool:
    """An API client (a wrong base URL, an old path) rather than a browser."""
    accept = handler.request.headers.get("Accept", "")
    return "/api/" in (handler.request.path or "") or (
        "json" in accept and "text/html" not in accept
    )


class PageNotFound(PageHandler):
    async def prepare(self) -> None:
        if _wants_json(self):
            self.set_status(404)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            message = f"No such API endpoint: {bounded(self.request.path or '', 200)}"
            self.finish(orjson.dumps({"status": 404, "message": message}))
            return
        await super().prepare()
        raise web.HTTPError(404)

    def check_xsrf_cookie(self) -> None:
        return


def routes(base_url: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """Routes outside `<base_url>hub/`: the base URL itself and users' server addresses."""
    import re

    base = re.escape(base_url)
    return [
        (base, RootRedirect),
        (base + r"favicon\.ico", FaviconRedirect),
        (base + r"user/([^/]+)(/.*)?", UserUrlHandler),
    ]
