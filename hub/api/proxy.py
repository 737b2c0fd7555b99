"""`/hub/api/proxy`: the proxy's routing table, a re-sync, and the stream replicas follow.

- `GET /hub/api/proxy` (scope `proxy`): the routes, as configurable-http-proxy
  lists them (`{prefix: {target, last_activity, ...data}}`), read from the
  proxy; without a proxy API (replicas only), the hub's own table.
- `POST /hub/api/proxy` (scope `proxy`): reconcile the proxy with the database now.
- `GET /hub/api/proxy/watch`: route events, one JSON object per line
  (`hub.proxy.server.feed`): the whole table first, then every change, and a
  heartbeat every `HEARTBEAT` seconds. For `atrium proxy --routes-from`, which
  presents the hub-proxy token (CONFIGPROXY_AUTH_TOKEN); a token with the
  `proxy` scope may watch too.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from tornado.iostream import StreamClosedError

from hub.api.base import APIHandler, needs_scope
from hub.errors import BadGateway, Forbidden, NotFound
from hub.proxy.client import ProxyError
from hub.proxy.supervisor import ProxyLink

HEARTBEAT = 10.0
# events queued for a follower that does not read; past this it is cut off (it
# reconnects and starts again from a snapshot)
MAX_BACKLOG = 10_000
HEARTBEAT_LINE = b'{"type":"HEARTBEAT"}\n'


class _ProxyHandler(APIHandler):
    @property
    def link(self) -> ProxyLink:
        link = self.hub.proxy
        if link is None:
            raise NotFound("This hub has no proxy (c.Hub.proxy is 'none')")
        return link


class ProxyAPIHandler(_ProxyHandler):
    @needs_scope("proxy")
    async def get(self) -> None:
        link = self.link
        if link.client is None:
            routes: dict[str, Any] = {
                p: {**d, "target": t} for p, (t, d) in link.broadcast.routes.items()
            }
        else:
            try:
                routes = await link.client.get_routes()
            except ProxyError as e:
                raise BadGateway(f"Cannot read the proxy's routes: {e.reason}") from None
        self.write_json(routes)

    @needs_scope("proxy")
    async def post(self) -> None:
        try:
            changes = await self.link.reconcile()
        except ProxyError as e:
            raise BadGateway(f"Cannot sync the proxy: {e.reason}") from None
        self.write_json({"added": changes.added, "removed": changes.removed})


class ProxyWatchHandler(_ProxyHandler):
    """The route stream. Authenticated by the proxy token or a `proxy`-scoped requester."""

    _closed: asyncio.Event | None = None

    _is_proxy = False

    async def prepare(self) -> None:
        await super().prepare()
        token = self.token_from_request() or ""
        link = self.hub.proxy
        if link is not None and link.token:
            self._is_proxy = hmac.compare_digest(token.encode(), link.token.encode())

    def on_connection_close(self) -> None:
        if self._closed is not None:
            self._closed.set()

    async def get(self) -> None:
        link = self.link
        if not self._is_proxy and not self.req.has_any(("proxy",)):
            raise Forbidden("Watching the proxy's routes needs the proxy scope")
        closed = self._closed = asyncio.Event()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        unsubscribe = link.broadcast.subscribe(queue.put_nowait)
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("X-Accel-Buffering", "no")
        try:
            self.write(link.broadcast.snapshot())
            await self.flush()
            ended = False
            while not ended and not closed.is_set() and queue.qsize() <= MAX_BACKLOG:
                lines = await self._next(queue, closed)
                if lines and lines[-1] is None:
                    ended = True  # the hub is shutting down
                    lines.pop()
                self.write(b"".join(line for line in lines if line is not None))
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            unsubscribe()
        if not closed.is_set():
            self.finish()

    @staticmethod
    async def _next(
        queue: asyncio.Queue[bytes | None], closed: asyncio.Event
    ) -> list[bytes | None]:
        """Every event waiting (at least one), a heartbeat after a quiet spell, or []."""
        if queue.empty():
            getting = asyncio.ensure_future(queue.get())
            closing = asyncio.ensure_future(closed.wait())
            done, _ = await asyncio.wait(
                (getting, closing), timeout=HEARTBEAT, return_when=asyncio.FIRST_COMPLETED
            )
            closing.cancel()
            if getting not in done:
                getting.cancel()
                return [] if closed.is_set() else [HEARTBEAT_LINE]
            lines = [getting.result()]
        else:
            lines = [queue.get_nowait()]
        while lines[-1] is not None and not queue.empty():
            lines.append(queue.get_nowait())
        return lines


routes = [
    (r"/api/proxy/?", ProxyAPIHandler),
    (r"/api/proxy/watch", ProxyWatchHandler),
]
