"""`/hub/api/users/{name}/server` and `/hub/api/users/{name}/servers/{server}`.

POST starts (201 ready, 202 still starting or already starting, 400 already
running or stopping); DELETE stops (204 stopped, 202 still stopping);
`{"remove": true}` also deletes a named server. PATCH `{"name": "new"}` renames a
stopped named server (our addition: JupyterHub has no rename). `.../progress`
streams the events of a start as server-sent events (`hub.progress` has the format).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.iostream import StreamClosedError

from hub.api.base import APIHandler, keeps_permissions, needs_scope
from hub.errors import BadRequest
from hub.ops import servers as server_ops


def start_options(body: Any) -> Any:
    """The user options in a start request.

    JupyterHub 6 takes `{"user_options": {...}, "display_name": ...}`, and, from
    older clients, the whole body as the options; both are accepted.
    """
    if not isinstance(body, dict) or not {"user_options", "display_name"} & set(body):
        return body
    if not isinstance(body.get("display_name", ""), str):
        raise BadRequest("display_name must be a string")
    options = body.get("user_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("user_options must be an object or null")
    return options


class ServerAPIHandler(APIHandler):
    @keeps_permissions
    @needs_scope("start:servers")
    async def post(self, name: str, server_name: str = "") -> None:
        options = start_options(self.json_body(allow_empty=True))
        outcome = await self.hub.orchestrator.start(self.req, name, server_name, options)
        self.set_status(201 if outcome == "ready" else 202)
        self.set_header("Content-Type", "text/plain")
        self.finish()

    @keeps_permissions
    @needs_scope("delete:servers")
    async def delete(self, name: str, server_name: str = "") -> None:
        body = self.json_object(allow_empty=True)
        unknown = set(body) - {"remove"}
        if unknown:
            raise BadRequest("the only field accepted here is remove")
        remove = body.get("remove", False)
        if not isinstance(remove, bool):
            raise BadRequest("remove must be true or false")
        outcome = await self.hub.orchestrator.stop(self.req, name, server_name, remove)
        if outcome == "stopped":
            self.no_content()
        else:
            self.set_status(202)
            self.finish()


class NamedServerAPIHandler(ServerAPIHandler):
    @keeps_permissions
    @needs_scope("servers")
    async def patch(self, name: str, server_name: str = "") -> None:
        body = self.json_object()
        model = await self.db.run(server_ops.rename, self.ctx, self.req, name, server_name, body)
        self.write_json(model)


class ProgressAPIHandler(APIHandler):
    """`GET .../progress`: every event of the start so far, then each new one, until the
    ready or failed event; a running server gets its ready event at once.

    A client that goes away is noticed at the next write, at the latest the next
    keepalive comment; the handler then lets go of the start's events.
    """

    # seconds between keepalive comments while nothing happens, so that proxies on the
    # way do not close a quiet connection (JupyterHub sends one every 8 s too)
    keepalive_interval = 8.0
    _gone = False
    _poke: asyncio.Event | None = None

    def on_connection_close(self) -> None:
        self._gone = True
        if self._poke is not None:
            self._poke.set()

    @needs_scope("read:servers")
    async def get(self, name: str, server_name: str = "") -> None:
        events = await self.hub.orchestrator.watch(self.req, name, server_name)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache, no-store")
        self.set_header("X-Accel-Buffering", "no")  # nginx in front: do not buffer events
        poke = self._poke = asyncio.Event()
        events.watchers.add(poke)
        sent = 0
        try:
            while not self._gone:
                poke.clear()
                frames = events.frames[sent:]
                sent += len(frames)
                if frames:
                    self.write(b"".join(frames))
                await self.flush()  # the first time, the headers go even with no event
                if events.final and sent == len(events.frames):
                    break
                try:
                    await asyncio.wait_for(poke.wait(), self.keepalive_interval)
                except TimeoutError:
                    self.write(b": keepalive\n\n")
        except StreamClosedError:
            self._gone = True
        finally:
            events.watchers.discard(poke)


routes = [
    (r"/api/users/([^/]+)/server", ServerAPIHandler),
    (r"/api/users/([^/]+)/server/progress", ProgressAPIHandler),
    (r"/api/users/([^/]+)/servers/([^/]*)", NamedServerAPIHandler),
    (r"/api/users/([^/]+)/servers/([^/]*)/progress", ProgressAPIHandler),
]
