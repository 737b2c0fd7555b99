"""`/hub/spawn/<user>[/<server>]` and `/hub/spawn-pending/<user>[/<server>]`.

The spawn page shows whether the server runs (with a link to open it) or offers
to start it; POST (XSRF-checked) starts it through the same orchestration as
the REST API. A server ready within `SpawnTimeouts.page_spawn` sends the
browser to `next` (a path on this site, by default the server itself, at the
spawner's `default_url`); otherwise the browser goes to the spawn-pending page,
as it does when it opens the spawn page of a server that is starting.

The spawn-pending page (JupyterHub's URL) shows a progress bar and the start's
messages as they come, from the progress API (`hub.api.servers`) through a
small inline script (allowed by the page's CSP nonce). Once the server is ready
the browser goes on to `next`; if the start fails the page says why and offers
to try again. Without JavaScript it reloads itself until the start is over.

Seeing or starting someone else's server needs the permission for it, as in
the API; others get 404, not a hint.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from markupsafe import Markup

from hub.errors import BadRequest, NotFound
from hub.names import validate_server_name
from hub.ops import servers as server_ops
from hub.ops.servers import ServerRef
from hub.ops.users import get_user
from hub.pages.base import PageHandler, safe_next
from hub.rbac.access import Requester
from hub.spawn import SpawnFailed
from spawners.base import Spawner

# seconds between reloads of the spawn-pending page in a browser without JavaScript
PENDING_REFRESH = 3


def _server_state(model: dict[str, Any], server_name: str) -> dict[str, Any] | None:
    return dict(model.get("servers", {}).get(server_name) or {}) or None


class ServerPage(PageHandler):
    """What the spawn and spawn-pending pages share: the names in the URL, `next`."""

    def _names(self, name_part: str, server_part: str) -> tuple[str, str]:
        """The user and server in the URL; a server name that cannot exist is a 400."""
        server_name = unquote(server_part)
        if server_name:
            if not self.ctx.allow_named_servers:
                raise NotFound("Named servers are not enabled on this hub")
            validate_server_name(server_name)
        return unquote(name_part), server_name

    def _next(self, default: str) -> str:
        """The `next` argument if it is a safe place to go, else `default`."""
        raw = self.get_argument("next", "")[:2000]
        return safe_next(raw, self.ctx.base_url, default)

    def _page_url(self, page: str, name: str, server_name: str, keep_next: bool = True) -> str:
        """`/hub/<page>/<user>[/<server>]`, with this request's safe `next` if any."""
        url = f"{self.ctx.base_url}hub/{page}/{quote(name, safe='@')}"
        if server_name:
            url += f"/{quote(server_name, safe='')}"
        next_url = self._next("") if keep_next else ""
        return url + (f"?next={quote(next_url, safe='/')}" if next_url else "")

    async def _lookup(self, req: Requester, name: str, server_name: str) -> ServerRef | None:
        if not req.has_any(("servers", "read:servers")):
            raise NotFound("No such user")
        return await self.db.run(server_ops.lookup, req, name, server_name, "read:servers")

    async def _go_to_server(self, req: Requester, name: str, server_name: str) -> None:
        ref = await self._lookup(req, name, server_name)
        landing = self.ctx.user_url(name, server_name)
        if ref is not None:
            landing = self.hub.orchestrator.landing_url(ref)
        self.redirect(self._next(landing))

    async def start_and_go(
        self, req: Requester, name: str, server_name: str, options: dict[str, Any] | None
    ) -> None:
        """Start a server and send the browser on: to the server if it is ready within
        the page's wait (`SpawnTimeouts.page_spawn`), else to the page that follows the
        start (which also says why a start failed, and offers to try again)."""
        orchestrator = self.hub.orchestrator
        try:
            outcome = await orchestrator.start(
                req, name, server_name, options, wait=orchestrator.timeouts.page_spawn
            )
        except SpawnFailed:
            outcome = "pending"
        if outcome == "ready":
            await self._go_to_server(req, name, server_name)
        else:
            self.redirect(self._page_url("spawn-pending", name, server_name))


class SpawnHandler(ServerPage):
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
        # the form offers the profiles the user's groups may use
        spawner = self.hub.orchestrator.form_spawner(name, server_name, model.get("groups"))
        return {
            "title": heading,
            "heading": heading,
            # the admin's own HTML (c.Spawner.options_form), shown as it is
            "options_form": Markup(spawner.options_form) if spawner is not None else "",  # noqa: S704
            "owner_text": owner,
            "server_url": server_url,
            "state_text": state,
            "own": own,
            "can_start": not ready and not pending and req.has_any(("servers", "start:servers")),
            "open_url": server_url if ready else None,
            "next": self._next(""),
            "message": "",
            "error": "",
            "failure": "",
            **extra,
        }

    async def get(self, name_part: str, server_part: str = "") -> None:
        req = self.require_login()
        name, server_name = self._names(name_part, server_part)
        model = await self._model(req, name)
        server = _server_state(model, server_name)
        if server and server.get("pending") == "spawn":
            self.redirect(self._page_url("spawn-pending", name, server_name))
            return
        ref = await self._lookup(req, name, server_name)
        # why the last start failed, until the next one (a student can act on it)
        failure = ref.failure if ref is not None and not ref.started and not ref.pending else ""
        self.page(
            "spawn.html", **self._values(req, name, server_name, model, failure=failure or "")
        )

    async def post(self, name_part: str, server_part: str = "") -> None:
        req = self.require_login()
        name, server_name = self._names(name_part, server_part)
        model = await self._model(req, name)
        server = _server_state(model, server_name)
        if server and server.get("ready"):
            await self._go_to_server(req, name, server_name)
            return
        form = self.hub.orchestrator.form_spawner(name, server_name, model.get("groups"))
        options = self._options(form)
        await self.start_and_go(req, name, server_name, options)

    def _options(self, spawner: Spawner | None) -> dict[str, Any] | None:
        """The options form's fields (all but the page's own), as the spawner reads them."""
        if spawner is None or not spawner.options_form:
            return None
        fields = {
            key: [v.decode("utf-8", "replace") for v in values]
            for key, values in self.request.body_arguments.items()
            if key not in ("_xsrf", "next")
        }
        try:
            return spawner.options_from_form(fields)
        except (ValueError, TypeError) as e:
            raise BadRequest(f"The server options are not valid: {e}") from None


class SpawnPendingHandler(ServerPage):
    async def get(self, name_part: str, server_part: str = "") -> None:
        req = self.require_login()
        name, server_name = self._names(name_part, server_part)
        ref = await self._lookup(req, name, server_name)
        if ref is None:
            self.redirect(self._page_url("spawn", name, server_name))
            return
        orchestrator = self.hub.orchestrator
        if ref.started and not ref.pending:
            self.redirect(self._next(orchestrator.landing_url(ref)))
            return
        events = orchestrator.progress.get(ref.id)
        failure = ref.failure if events is None and not ref.pending else None
        if events is None and ref.pending != "spawn" and not failure:
            self.redirect(self._page_url("spawn", name, server_name))  # nothing to follow
            return
        own = req.name == name
        owner = "Your server" if own else f"{name}'s server"
        if server_name:
            owner += f" {server_name}"
        logged = list(events.events) if events is not None else []
        self.page(
            "spawn_pending.html",
            title=f"{owner} could not start" if failure else f"{owner} is starting",
            heading=f"{owner} is starting",
            failed_heading=f"{owner} could not start",
            owner_text=owner,
            server_url=self.ctx.user_url(name, server_name),
            progress_url=self.ctx.progress_url(name, server_name),
            spawn_url=self._page_url("spawn", name, server_name, keep_next=False),
            can_start=req.has_any(("servers", "start:servers")),
            next=self._next(""),  # where "Try again" leads: only a `next` someone asked for
            go_to=self._next(orchestrator.landing_url(ref)),
            messages=[str(e.get("message", "")) for e in logged if e.get("message")],
            percent=100 if failure else max([0, *(_percent(e) for e in logged)]),
            failure=failure or "",
            refresh=PENDING_REFRESH,
            nonce="" if failure else self.script_nonce(),
        )


def _percent(event: dict[str, Any]) -> int:
    progress = event.get("progress")
    return int(progress) if isinstance(progress, int | float) else 0


routes = [
    (r"/spawn/([^/]+)", SpawnHandler),
    (r"/spawn/([^/]+)/([^/]+)", SpawnHandler),
    (r"/spawn-pending/([^/]+)", SpawnPendingHandler),
    (r"/spawn-pending/([^/]+)/([^/]+)", SpawnPendingHandler),
]
