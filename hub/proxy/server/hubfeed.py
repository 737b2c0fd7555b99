"""`atrium proxy --routes-from URL`: a proxy replica following the hub's route table.

The hub streams its table at `/hub/api/proxy/watch` as route events
(`hub.proxy.server.feed`): a SNAPSHOT first, then every change, and a
HEARTBEAT every few seconds. The proxy authenticates with the token it shares
with the hub (CONFIGPROXY_AUTH_TOKEN). When the stream breaks or goes quiet it
connects again at once (then backing off up to two seconds), and the snapshot
it gets makes its table whole again, so several replicas stay consistent and a
restarted one has its routes within a second of the hub answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from urllib.parse import urlsplit

import httptools

from hub.proxy.server.feed import FeedError, Follower
from hub.proxy.server.routes import RouteTable

log = logging.getLogger("atrium.proxy.feed")

# the hub sends a heartbeat every 10 s; silence for this long means the stream is dead
QUIET_LIMIT = 30.0
FIRST_RETRY = 0.1
MAX_RETRY = 2.0


class StreamFailed(Exception):
    pass


class _Stream:
    """httptools callbacks for one response: the body split into lines."""

    def __init__(self, follower: Follower, synced: asyncio.Event) -> None:
        self.follower = follower
        self.synced = synced
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.buffer = b""
        self.ended = False

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.status != 200:
            return
        self.buffer += body
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self.follower.apply_line(line)
        if self.follower.synced:
            self.synced.set()

    def on_message_complete(self) -> None:
        self.ended = True


class HubFeed:
    def __init__(self, url: str, token: str | None, table: RouteTable) -> None:
        self.url = url
        self.token = token
        self.follower = Follower(table, keep_default=True)
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait: float) -> None:
        """Start following; wait up to `wait` seconds for the first snapshot."""
        self._task = asyncio.ensure_future(self._run())
        try:
            await asyncio.wait_for(self.synced.wait(), wait)
        except TimeoutError:
            log.warning(
                "No route table from %s within %g s; serving with the default route and "
                "following as soon as the hub answers",
                self.url,
                wait,
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = FIRST_RETRY
        while True:
            was_synced = self.follower.synced
            try:
                await self._follow_once()
                log.info("The hub closed the route stream; connecting again")
            except (OSError, TimeoutError, StreamFailed, FeedError, httptools.HttpParserError) as e:
                cause = e.__context__ if isinstance(e, httptools.HttpParserError) else None
                log.warning("Route stream from %s: %s", self.url, str(cause or e)[:300])
            if self.follower.synced and not was_synced:
                delay = FIRST_RETRY
            self.follower.synced = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY)

    async def _follow_once(self) -> None:
        parts = urlsplit(self.url)
        https = parts.scheme == "https"
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if https else 80)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=ssl.create_default_context() if https else None
            ),
            10.0,
        )
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            auth = f"Authorization: token {self.token}\r\n" if self.token else ""
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}"
                "Accept: application/x-ndjson\r\n\r\n".encode("latin-1")
            )
            stream = _Stream(self.follower, self.synced)
            while not stream.ended:
                data = await asyncio.wait_for(reader.read(256 * 1024), QUIET_LIMIT)
                if not data:
                    raise StreamFailed("the hub closed the connection")
                stream.parser.feed_data(data)
                if stream.status and stream.status != 200:
                    hint = " (is CONFIGPROXY_AUTH_TOKEN the hub's?)" if stream.status == 403 else ""
                    raise StreamFailed(f"the hub answered HTTP {stream.status}{hint}")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
