"""`/hub/spawn/<user>[/<server>]`: see a server's state, start it, and go to it.

GET shows whether the server runs (with a link to open it) or offers to start
it; POST (XSRF-checked) starts it through the same orchestration as the REST
API and, once it is ready, sends the browser to `next` (a path on this site,
by default the server itself). Starting someone else's server needs the
`servers` permission for it, as in the API; others get 404, not a hint.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from hub.errors import NotFound
from hub.names import validate_server_name
from hub.ops.users import get_user
from hub.pages.base import PageHandler, safe_next
from hub.rbac.access import Requester


def _server_state(model: dict[str, Any], server_name: str) -> dict[str, Any] | None:
    return dict(model.get("servers", {}).get(server_name) or {}) or None


class SpawnHandler(PageHandler):
    async def _model(self, req: Requester, name: str) -> dict[str, Any]:
        if not req.has_any(("servers", "read:servers")):
            raise NotFound("No such user")
        model: dict[str, Any] = await self.db.run(get_user, self.ctx, req, name)
        return model

    def _values(
        self, req: Requester, name: str, server_name: str, model: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        server = _server_state(model, server_name)
        ready = bool(server and server.get("ready"))
        pending = server.get("pending") if server else None
        own = req.name == name
        server_url = self.ctx.user_url(name, server_name)
        owner = "Your server" if own else f"{name}'s server"
        if server_name:
            owner += f" {server_name}"
        if ready:
            state, heading = "is running.", "Your server is running" if own else "Server running"
        elif pending:
            state, heading = f"is busy ({pending}).", "Please wait"
        else:
            state = "is not running."
            heading = "Start your server" if own else f"Start {name}'s server"
        return {
            "title": heading,
            "heading": heading,
            "owner_text": owner,
            "server_url": server_url,
            "state_text": state,
            "own": own,
            "can_start": not ready and not pending and req.has_any(("servers", "start:servers")),
            "open_url": server_url if ready else None,
            "next": self._next(server_url),
            "message": "",
            "error": "",
            **extra,
        }

    def _next(self, default: str) -> str:
        raw = self.get_argument("next", "")[:2000]
        return safe_next(raw, self.ctx.base_url, default)

    def _names(self, name_part: str, server_part: str) -> tuple[str, str]:
        """The user and server in the URL; a server name that cannot exist is a 400."""
        server_name = unquote(server_part)
        if server_name:
            if not self.ctx.allow_named_servers:
                raise NotFound("Named servers are not enabled on this hub")
            validate_server_name(server_name)
        return unquote(name_part), server_name

    async def get(self, name_part: str, server_part: str = "") -> None:
        req = self.require_login()
        name, server_name = self._names(name_part, server_part)
        model = await self._model(req, name)
        self.page("spawn.html", **self._values(req, name, server_name, model))

    async def post(self, name_part: str, server_part: str = "") -> None:
        req = self.require_login()
        name, server_name = self._names(name_part, server_part)
        model = await self._model(req, name)
        server = _server_state(model, server_name)
        if server and server.get("ready"):
            self.redirect(self._next(self.ctx.user_url(name, server_name)))
            return
        outcome = await self.hub.orchestrator.start(req, name, server_name, None)
        if outcome == "ready":
            self.redirect(self._next(self.ctx.user_url(name, server_name)))
            return
        model = await self._model(req, name)
        self.page(
            "spawn.html",
            202,
            **self._values(
                req,
                name,
                server_name,
                model,
                message="Starting: this page shows the server once it is ready; reload it.",
            ),
        )


routes = [
    (r"/spawn/([^/]+)", SpawnHandler),
    (r"/spawn/([^/]+)/([^/]+)", SpawnHandler),
]
