"""`/hub/error/<code>?url=<path>`: the proxy's error target.

When a route's server does not answer, the proxy fetches this page for browsers
(configurable-http-proxy's convention, which `atrium proxy` follows) and shows
it in place of the server's answer. For a user's server it says the server is
not running and offers to start it; anything else gets a plain explanation.
Every piece of the URL that reaches the page is escaped.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.models import Server, User
from hub.log import bounded
from hub.pages.base import PageHandler

MAX_URL = 2000


def _server_of(session: Session, name: str, rest: str) -> tuple[str, str]:
    """(user, server name) that `/user/<name>/<rest>` belongs to: a named server when the
    user has one called like the first segment of `rest`, else the default server. A
    user who does not exist gets the same page (the page tells no one who exists)."""
    user_id = session.execute(select(User.id).where(User.name == name)).scalar_one_or_none()
    if user_id is None:
        return name, ""
    first = unquote(rest.split("/", 1)[0]) if rest else ""
    if first:
        named = session.execute(
            select(Server.name).where(Server.user_id == user_id, Server.name == first)
        ).scalar_one_or_none()
        if named is not None:
            return name, first
    return name, ""


class NotRunningPage(PageHandler):
    """A page that may have to say a user's server is not running, with a start button."""

    async def not_running(self, url: str, code: int) -> bool:
        """Render "not running" for `url` when it is a user's server URL; False if not."""
        ctx = self.ctx
        user_prefix = f"{ctx.base_url}user/"
        if not url.startswith(user_prefix):
            return False
        name_part, _, rest = url[len(user_prefix) :].partition("/")
        if not name_part:
            return False
        user, server = await self.db.run(_server_of, unquote(name_part), rest)
        start = f"{ctx.base_url}hub/spawn/{quote(user, safe='@')}"
        if server:
            start += f"/{quote(server, safe='')}"
        owner = f"{user}'s server" + (f" {server}" if server else "")
        self.page(
            "error.html",
            code,
            code=code,
            reason=self._reason,
            title="Your server is not running",
            heading="Your server is not running",
            lead=f"{owner} at",
            shown=ctx.user_url(user, server),
            tail="is not running: it was stopped, or it stopped answering.",
            start_url=start,
            next=url,
        )
        return True


class ProxyErrorPage(NotRunningPage):
    async def get(self, code_text: str) -> None:
        code = int(code_text)
        if not 400 <= code <= 599:
            code = 400
            url = ""
        else:
            url = self.get_query_argument("url", "")[:MAX_URL]
        self.set_status(code)
        if code in (502, 503, 504) and await self.not_running(url, code):
            return
        values: dict[str, object] = {
            "code": code,
            "reason": self._reason,
            "start_url": None,
            "next": "",
            "title": "This page is not available",
            "heading": "This page is not available",
        }
        if url:
            values.update(
                lead="The page at",
                shown=bounded(url, 300),
                tail="could not be reached through the proxy.",
            )
        else:
            values.update(
                lead="Something went wrong between the proxy and the page you asked for.",
                shown="",
                tail="",
            )
        self.page("error.html", code, **values)


routes = [(r"/error/(\d{1,3})", ProxyErrorPage)]
