"""`/hub/home`: a person's own servers.

The page shows the default server and, when the hub allows named servers
(`c.Hub.allow_named_servers`), the named ones, each with its state and what can
be done with it now: open it (running), start it (stopped), stop it (running or
starting), rename or delete it (a stopped named server). A named server is
created by starting it, under a name checked by `hub.names` and within
`c.Hub.named_server_limit_per_user`; a server's last failed start is shown with
what to do about it.

Everything works with plain forms: POST (with `_xsrf`) to this page, then a
redirect back here (post/redirect/get); deleting asks for confirmation on a page
of its own. `hub/static/home.js` does the same through the REST API without
leaving the page and keeps the states current. Starting goes through the spawn
page's start (`hub.pages.spawn`), which leads to the server or to its progress.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import quote, urlencode

from hub.auth.account import has_password as has_password_hash
from hub.errors import AtriumError, BadRequest, Conflict
from hub.names import validate_server_name
from hub.ops import servers as server_ops
from hub.ops.servers import ServerStatus
from hub.pages.spawn import ServerPage
from hub.rbac.access import Requester
from hub.timeutil import isoformat

STATE_TEXT = {"ready": "Running", "spawn": "Starting", "stop": "Stopping", "stopped": "Stopped"}
# what a redirect back here says happened (`?done=...&server=...`); the server name is
# checked before it is shown, and the rest is fixed text
DONE = {
    "stopped": "{label} was stopped.",
    "stopping": "{label} is stopping.",
    "renamed": "{old} is now called {new}.",
    "deleted": "The server {label} was deleted.",
}
MAX_FIELD = 200


def _label(server_name: str) -> str:
    return server_name or "Default server"


def _when(value: datetime.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def _checked_name(value: str) -> str | None:
    """A server name from the query, or None if it is not one a server could have."""
    try:
        return validate_server_name(value)
    except BadRequest:
        return None


class HomeHandler(ServerPage):
    async def get(self) -> None:
        req = self.require_login()
        await self._show(req, message=self._done_message())

    async def post(self) -> None:
        req = self.require_login()
        action = self.get_body_argument("action", "")
        server_name = self.get_body_argument("server", "")[:MAX_FIELD]
        try:
            if action == "create":
                await self._create(req)
            elif action == "stop":
                await self._stop(req, self._server_name(server_name))
            elif action == "rename":
                await self._rename(req, self._server_name(server_name))
            elif action == "delete":
                await self._delete(req, self._server_name(server_name))
            else:
                raise BadRequest("Unknown action; use the buttons on this page")
        except AtriumError as e:
            # shown on the page next to what caused it, with the form as it was sent
            await self._show(
                req,
                status=e.status,
                error=e.message,
                error_for=action if action in ("create", "rename") else "",
                error_server=server_name,
                typed=self.get_body_argument("name", "")[:MAX_FIELD],
                typed_new=self.get_body_argument("new_name", "")[:MAX_FIELD],
            )

    # --- actions ---------------------------------------------------------------

    def _server_name(self, value: str) -> str:
        if value and not self.ctx.allow_named_servers:
            raise BadRequest("Named servers are not enabled on this hub")
        return validate_server_name(value)

    def _back(self, done: str, **names: str) -> None:
        query = urlencode({"done": done, **names})
        self.redirect(f"{self.ctx.base_url}hub/home?{query}")

    async def _create(self, req: Requester) -> None:
        typed = self.get_body_argument("name", "").strip()[:MAX_FIELD]
        name = await self.db.run(server_ops.check_new_named_server, self.ctx, req.id, typed)
        spawner = self.hub.orchestrator.form_spawner(req.name, name)
        if spawner is not None and spawner.options_form:
            # its options first, on the spawn page (whose Start creates it)
            self.redirect(self._page_url("spawn", req.name, name, keep_next=False))
            return
        await self.start_and_go(req, req.name, name, None)

    async def _stop(self, req: Requester, server_name: str) -> None:
        outcome = await self.hub.orchestrator.stop(req, req.name, server_name)
        self._back("stopped" if outcome == "stopped" else "stopping", server=server_name)

    async def _rename(self, req: Requester, server_name: str) -> None:
        new_name = self.get_body_argument("new_name", "").strip()[:MAX_FIELD]
        model = await self.db.run(
            server_ops.rename, self.ctx, req, req.name, server_name, {"name": new_name}
        )
        self._back("renamed", server=model["name"], old=server_name)

    async def _delete(self, req: Requester, server_name: str) -> None:
        if not server_name:
            raise BadRequest("The default server cannot be deleted, only stopped")
        ref = await self._lookup(req, req.name, server_name)
        if ref is None:
            raise BadRequest(f"You have no server named {server_name}")
        if ref.started or ref.pending:
            raise Conflict(f"Stop {server_name} before deleting it")
        if self.get_body_argument("confirm", "") != "yes":
            self.page(
                "confirm.html",
                title=f"Delete {server_name}?",
                section="home",
                heading=f"Delete the server {server_name}?",
                lead="Deleting it removes it from your list; you can create a server with "
                "this name again later.",
                action=f"{self.ctx.base_url}hub/home",
                fields={"action": "delete", "server": server_name, "confirm": "yes"},
                confirm_label="Delete",
                cancel_url=f"{self.ctx.base_url}hub/home",
            )
            return
        await self.hub.orchestrator.stop(req, req.name, server_name, remove=True)
        self._back("deleted", server=server_name)

    # --- the page --------------------------------------------------------------

    def _done_message(self) -> str:
        done = self.get_query_argument("done", "")
        template = DONE.get(done)
        server = _checked_name(self.get_query_argument("server", "")[:MAX_FIELD])
        if template is None or server is None:
            return ""
        old = _checked_name(self.get_query_argument("old", "")[:MAX_FIELD])
        if done == "renamed" and not old:
            return ""
        return template.format(label=_label(server), old=old, new=server)

    def _row(self, req: Requester, status: ServerStatus, form_first: bool) -> dict[str, Any]:
        name = status.name
        user_part = quote(req.name, safe="@")
        server_part = f"/{quote(name, safe='')}" if name else ""
        return {
            "name": name,
            "label": _label(name),
            "key": "s-" + (name.encode().hex() if name else "default"),
            "state": status.state,
            "state_text": STATE_TEXT[status.state],
            "url": self.ctx.user_url(req.name, name),
            "spawn_url": f"{self.ctx.base_url}hub/spawn/{user_part}{server_part}",
            "pending_url": f"{self.ctx.base_url}hub/spawn-pending/{user_part}{server_part}",
            "options_first": form_first,
            "last_activity": _when(status.last_activity),
            "last_activity_iso": isoformat(status.last_activity) or "",
            "failure": status.failure or "",
        }

    async def _show(
        self,
        req: Requester,
        *,
        status: int = 200,
        message: str = "",
        error: str = "",
        error_for: str = "",
        error_server: str = "",
        typed: str = "",
        typed_new: str = "",
    ) -> None:
        ctx = self.ctx
        servers = await self.db.run(server_ops.own_servers, req.id)
        default = next((s for s in servers if not s.name), None)
        default = default or ServerStatus("", "stopped", None, None, None)
        named = [s for s in servers if s.name] if ctx.allow_named_servers else []
        spawner = self.hub.orchestrator.form_spawner(req.name, "")
        form_first = bool(spawner is not None and spawner.options_form)
        limit = ctx.named_server_limit_per_user
        shown = {s.name for s in [default, *named]}
        if (error_for == "create" and not ctx.allow_named_servers) or (
            error_for == "rename" and error_server not in shown
        ):
            error_for = ""  # no form to show it beside: at the top of the page
        # native accounts have their own pages (hub.auth.native_pages)
        has_password = any(a.owns_passwords for a in self.hub.auth.forms) and await self.db.run(
            has_password_hash, req.name
        )
        self.page(
            "home.html",
            status,
            title="Home",
            section="home",
            layout="medium",
            user_name=req.name,
            rows=[self._row(req, s, form_first) for s in [default, *named]],
            named_enabled=ctx.allow_named_servers,
            named_count=len(named),
            named_limit=limit,
            can_create=ctx.allow_named_servers and (not limit or len(named) < limit),
            message=message,
            error=error,
            error_for=error_for,
            error_server=error_server,
            typed=typed,
            typed_new=typed_new,
            nonce=self.script_nonce(),
            has_password=has_password,
        )


routes = [(r"/home", HomeHandler)]
