"""The forwarder: client and upstream connections as asyncio protocols on httptools.

Each client connection parses requests with httptools, picks a route, and sends
the request to a pooled keep-alive connection to the route's target: the head
is rebuilt (hop-by-hop headers dropped, X-Forwarded-* added, Host kept), the
body streamed chunk by chunk. Responses are relayed to the client as the raw
bytes the upstream sent, parsed only to know where each one ends. After a 101
both sides become a raw byte pipe, so WebSocket frames, pings and closes pass
through untouched. Back-pressure: when one side's write buffer is full, the
other side stops reading, so a 1 GiB transfer streams with flat memory.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import httptools
import orjson

from hub.proxy.server.metrics import ProxyMetrics
from hub.proxy.server.paths import normalize_path
from hub.proxy.server.routes import Route, RouteTable

log = logging.getLogger("atrium.proxy")

# request headers that belong to one connection, not the whole path
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"upgrade",
        b"transfer-encoding",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-forwarded-host",
    }
)
BUFFER_LIMIT = 1024 * 1024  # request bytes held while no upstream is attached
MAX_IDLE_PER_TARGET = 64  # idle keep-alive connections kept per upstream
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})  # may be sent again
NEW_CONNECTION_GRACE = 1.0  # seconds a draining proxy waits for a new connection's request


@dataclass
class Limits:
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 20.0  # whole request head (slowloris)
    body_timeout: float = 60.0  # between body chunks
    idle_timeout: float = 65.0  # keep-alive between requests
    upstream_idle_timeout: float = 60.0  # a pooled connection to a server, unused
    connect_timeout: float = 10.0


@dataclass
class ProxySettings:
    default_target: str | None = None
    error_target: str | None = None
    host_routing: bool = False
    tls: bool = False
    limits: Limits = field(default_factory=Limits)


class Exchange:
    """One request and its response."""

    __slots__ = (
        "body",
        "body_bytes",
        "body_done",
        "chunked",
        "early",
        "head_parts",
        "host",
        "keep_alive",
        "method",
        "path",
        "query",
        "route",
        "started",
        "upgrade",
        "version",
        "wants_html",
    )

    def __init__(self) -> None:
        self.body: deque[bytes] = deque()
        self.body_bytes = 0
        self.body_done = False
        self.chunked = False
        self.early = b""  # bytes after an upgrade request's head
        self.head_parts: list[bytes] = []
        self.host = b""
        self.keep_alive = True
        self.method = b"GET"
        self.path = "/"
        self.query = b""
        self.route: Route | None = None
        self.started = 0.0
        self.upgrade = False
        self.version = "1.1"
        self.wants_html = False


class ProxyServer:
    """Shared state: the route table, upstream connection pools, live connections."""

    def __init__(self, table: RouteTable, settings: ProxySettings) -> None:
        self.table = table
        self.settings = settings
        self.limits = settings.limits
        self.pools: dict[tuple[str, int, str], list[UpstreamConnection]] = {}
        self.clients: set[ClientConnection] = set()
        self.upstreams: set[UpstreamConnection] = set()
        self.client_ssl = ssl.create_default_context()
        self.websockets = 0  # upgraded so far
        self.open_websockets = 0
        self.metrics = ProxyMetrics(
            {
                "websockets": ("Open WebSocket connections", lambda: self.open_websockets),
                "connections": ("Open client connections", lambda: len(self.clients)),
                "routes": ("Routes in the table", lambda: len(self.table)),
            }
        )
        self.tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        if settings.default_target:
            table.add("/", settings.default_target)

    def protocol(self) -> ClientConnection:
        return ClientConnection(self)

    def start_sweeper(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def own(self, coro: Any) -> None:
        """Run `coro` as a task this server keeps and cancels at stop."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, within: float) -> None:
        """Let requests in flight finish (new connections are no longer accepted).

        Idle keep-alive connections are closed; one accepted a moment ago gets
        NEW_CONNECTION_GRACE seconds for its first request before it counts as idle.
        Its silence is judged at the previous pass, not now: bytes that came before
        that pass have been read since, whatever the order in which the event loop
        runs timers and I/O after a stall (uvloop runs timers first).
        """
        deadline = time.monotonic() + within
        polled: float | None = None  # when the previous pass ran
        while time.monotonic() < deadline:
            now = time.monotonic()
            busy = False
            for conn in list(self.clients):
                if conn.queue or conn.piped or conn.parsing is not None:
                    busy = busy or not conn.piped
                elif conn.exchanges or (
                    polled is not None and polled - conn.accepted_at > NEW_CONNECTION_GRACE
                ):
                    conn.close()
                else:
                    busy = True  # new: its request may be on the way
            if not busy:
                break
            polled = now
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for conn in list(self.clients):
            conn.close()
        for pool in self.pools.values():
            for upstream in pool:
                upstream.close()

    async def _sweep(self) -> None:
        """Close connections past their deadline (one timer for all of them)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for conn in list(self.clients):
                if conn.deadline and now > conn.deadline:
                    conn.timed_out()
            expired = now - self.limits.upstream_idle_timeout
            for pool in self.pools.values():
                for upstream in [u for u in pool if u.idle_since < expired]:
                    upstream.close()  # connection_lost drops it from the pool
            for key in [k for k, pool in self.pools.items() if not pool]:
                del self.pools[key]  # a server that went away leaves no entry behind

    def route_for(self, host: bytes, path: str) -> Route | None:
        if self.settings.host_routing and host:
            hostname = host.split(b":", 1)[0].decode("latin-1").lower()
            route = self.table.match(f"/{hostname}{path}")
            if route is not None and route.prefix != "/":
                return route
        return self.table.match(path)

    # --- upstream pools -----------------------------------------------------

    def pool_get(self, route: Route) -> UpstreamConnection | None:
        pool = self.pools.get((route.host, route.port, route.scheme))
        while pool:
            conn = pool.pop()
            if conn.usable():
                return conn
        return None

    def pool_put(self, conn: UpstreamConnection) -> None:
        conn.client = None
        conn.exchange = None
        conn.idle_since = time.monotonic()
        pool = self.pools.setdefault(conn.key, [])
        if len(pool) >= MAX_IDLE_PER_TARGET:
            conn.close()
        else:
            pool.append(conn)

    def pool_drop(self, conn: UpstreamConnection) -> None:
        pool = self.pools.get(conn.key)
        if pool and conn in pool:
            pool.remove(conn)

    async def connect(self, route: Route) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        key = (route.host, route.port, route.scheme)
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: UpstreamConnection(self, key),
                route.host,
                route.port,
                ssl=self.client_ssl if route.scheme == "https" else None,
            ),
            timeout=self.limits.connect_timeout,
        )
        return conn


def _error_body(status: int, message: str) -> bytes:
    return orjson.dumps({"status": status, "message": message})


REASONS = {
    400: b"Bad Request",
    404: b"Not Found",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
}


class ClientConnection(asyncio.Protocol):
    """A connection from a browser or API client."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Exchange] = deque()  # [active, then pipelined]
        self.parsing: Exchange | None = None
        self.upstream: UpstreamConnection | None = None
        self.piped = False
        self.upgrading = False
        self.closing = False
        self.client_ip = ""
        self._forwarded = b""
        self.deadline: float | None = None
        self._url = bytearray()
        self._head_size = 0
        self._paused_for_buffer = False
        self._next_touch = 0.0
        self.accepted_at = 0.0
        self.exchanges = 0  # requests begun on this connection

    # --- connection ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        sockname = transport.get_extra_info("sockname")
        # the X-Forwarded-* headers that are the same for every request on this connection
        self._forwarded = (
            b"X-Forwarded-For: %b\r\nX-Forwarded-Proto: %b\r\nX-Forwarded-Port: %b\r\n"
            % (
                self.client_ip.encode(),
                b"https" if self.server.settings.tls else b"http",
                str(sockname[1]).encode() if sockname else b"",
            )
        )
        self.server.clients.add(self)
        self.accepted_at = time.monotonic()
        self.deadline = self.accepted_at + self.limits.idle_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.clients.discard(self)
        if self.piped:
            self.server.open_websockets -= 1
            self.piped = False
        self.closing = True
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            # the client left mid-exchange: the upstream connection cannot be reused
            upstream.close()

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def timed_out(self) -> None:
        if self.parsing is not None and not self.queue and self.transport is not None:
            self.respond(408, "Request timed out", close=True)
        else:
            self.close()

    # --- reading ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.piped:
            upstream = self.upstream
            if upstream is not None and upstream.transport is not None:
                upstream.transport.write(data)
                self._touch()
            return
        if self.upgrading:
            exch = self.queue[-1]
            exch.early += data
            if len(exch.early) > BUFFER_LIMIT:
                self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            offset = e.args[0]
            if self.queue:
                self.queue[-1].early = data[offset:]
            self.upgrading = True
        except httptools.HttpParserError as e:
            self.respond(400, f"Bad request: {str(e)[:100]}", close=True)

    def on_message_begin(self) -> None:
        self.exchanges += 1
        self.parsing = Exchange()
        self._url.clear()
        self._head_size = 0
        self.deadline = time.monotonic() + self.limits.header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        exch = self.parsing
        assert exch is not None
        self._grow_head(len(name) + len(value) + 4)
        lower = name.lower()
        if lower == b"host":
            exch.host = value
        elif lower == b"accept":
            exch.wants_html = b"text/html" in value
        elif lower == b"transfer-encoding":
            exch.chunked = True
        if lower in HOP_BY_HOP:
            if lower == b"x-forwarded-for":
                exch.head_parts.append(b"X-Original-Forwarded-For: " + value + b"\r\n")
            return
        exch.head_parts.append(name + b": " + value + b"\r\n")

    def _grow_head(self, n: int) -> None:
        self._head_size += n
        if self._head_size > self.limits.max_header_bytes:
            self.respond(431, "Request header fields too large", close=True)
            raise httptools.HttpParserError("header too large")

    def on_headers_complete(self) -> None:
        exch = self.parsing
        assert exch is not None
        parser = self.parser
        exch.method = parser.get_method()
        exch.version = parser.get_http_version()
        exch.keep_alive = parser.should_keep_alive()
        exch.upgrade = parser.should_upgrade()
        raw_url = bytes(self._url)
        path_bytes, _, query = raw_url.partition(b"?")
        exch.query = query
        path = normalize_path(path_bytes.decode("latin-1"))
        if path is None:
            self.respond(
                400, "Bad request: the request target must be an absolute path", close=True
            )
            raise httptools.HttpParserError("bad target")
        exch.path = path
        exch.route = self.server.route_for(exch.host, path)
        self.deadline = time.monotonic() + self.limits.body_timeout
        self.queue.append(exch)
        if len(self.queue) == 1:
            self.start_exchange()

    def on_body(self, body: bytes) -> None:
        exch = self.parsing
        assert exch is not None
        self.deadline = time.monotonic() + self.limits.body_timeout
        chunk = b"%x\r\n%b\r\n" % (len(body), body) if exch.chunked else bytes(body)
        upstream = self.upstream
        if upstream is not None and self.queue and self.queue[0] is exch and upstream.sent_head:
            assert upstream.transport is not None
            upstream.transport.write(chunk)
        else:
            exch.body.append(chunk)
            exch.body_bytes += len(chunk)
            if exch.body_bytes > BUFFER_LIMIT and self.transport is not None:
                self.transport.pause_reading()
                self._paused_for_buffer = True

    def on_message_complete(self) -> None:
        exch = self.parsing
        assert exch is not None
        self.parsing = None
        exch.body_done = True
        self.deadline = None  # waiting for the upstream: no client deadline
        upstream = self.upstream
        if (
            exch.chunked
            and upstream is not None
            and self.queue
            and self.queue[0] is exch
            and upstream.sent_head
        ):
            assert upstream.transport is not None
            upstream.transport.write(b"0\r\n\r\n")

    # --- forwarding ---------------------------------------------------------

    def start_exchange(self) -> None:
        exch = self.queue[0]
        route = exch.route
        if route is None:
            self.server.metrics.no_route += 1
            self.respond(404, "No route for this path", close=not exch.keep_alive)
            return
        exch.started = time.perf_counter()
        route.last_activity = time.time()
        upstream = self.server.pool_get(route)
        if upstream is not None:
            self.attach(upstream, exch)
        else:
            self.server.own(self._connect(route, exch))

    async def _connect(self, route: Route, exch: Exchange) -> None:
        try:
            upstream = await self.server.connect(route)
        except (OSError, TimeoutError) as e:
            self.server.metrics.upstream_errors += 1
            self.server.metrics.upstream_down += 1
            log.info("Upstream %s for %s is down: %s", route.target, route.prefix, e)
            await self.upstream_down(exch, route)
            return
        if self.closing or not self.queue or self.queue[0] is not exch:
            upstream.close()
            return
        self.attach(upstream, exch)

    def attach(self, upstream: UpstreamConnection, exch: Exchange) -> None:
        assert upstream.transport is not None
        route = exch.route
        assert route is not None
        self.upstream = upstream
        upstream.begin(self, exch)
        upstream.transport.write(self.request_head(exch, route))
        upstream.sent_head = True
        while exch.body:
            upstream.transport.write(exch.body.popleft())
        exch.body_bytes = 0
        if self._paused_for_buffer and self.transport is not None:
            self._paused_for_buffer = False
            self.transport.resume_reading()
        if exch.body_done and exch.chunked:
            upstream.transport.write(b"0\r\n\r\n")
        # an upgrade request's early bytes wait in exch.early until the 101 (switch_protocols)

    def request_head(self, exch: Exchange, route: Route) -> bytes:
        target = route.target_path + exch.path
        if exch.query:
            target += "?" + exch.query.decode("latin-1")
        if exch.upgrade:
            connection = b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        elif exch.version == "1.0":
            connection = b"Connection: close\r\n\r\n"
        else:
            connection = b"Connection: keep-alive\r\n\r\n"
        return b"".join(
            (
                exch.method,
                b" ",
                target.encode("latin-1"),
                b" HTTP/1.0\r\n" if exch.version == "1.0" else b" HTTP/1.1\r\n",
                *exch.head_parts,
                self._forwarded,
                b"X-Forwarded-Host: ",
                exch.host or route.host.encode(),
                b"\r\nTransfer-Encoding: chunked\r\n" if exch.chunked else b"\r\n",
                connection,
            )
        )

    def exchange_done(self, upstream: UpstreamConnection, reusable: bool) -> None:
        """The response has been relayed whole."""
        exch = self.queue.popleft()
        self.upstream = None
        self.server.metrics.observe(time.perf_counter() - exch.started)
        if exch.route is not None:
            exch.route.last_activity = time.time()
        if not exch.body_done:
            # answered before the request body ended: neither side can be reused
            upstream.close()
            self.close()
            return
        if reusable and not self.closing:
            self.server.pool_put(upstream)
        else:
            upstream.close()
        if not exch.keep_alive:
            self.close()
            return
        if self.queue:
            self.start_exchange()
        elif self.parsing is None:
            self.deadline = time.monotonic() + self.limits.idle_timeout

    def switch_protocols(self, upstream: UpstreamConnection) -> None:
        """The upstream answered 101: from now on both sides are a byte pipe."""
        exch = self.queue[0]
        self.piped = True
        self.upgrading = False
        self.deadline = None
        self.server.websockets += 1
        self.server.open_websockets += 1
        self.server.metrics.proxied += 1
        if exch.early and upstream.transport is not None:
            upstream.transport.write(exch.early)
            exch.early = b""

    def upstream_failed(self, upstream: UpstreamConnection) -> None:
        """The upstream connection broke before the response was complete.

        Nothing relayed yet: a safe request on a reused keep-alive connection (which
        the server may have closed just as we sent) is retried once on a new one;
        otherwise the client gets a 502. Part of a response relayed: all we can do is
        close, so the client sees the response was cut short.
        """
        self.upstream = None
        self.server.metrics.upstream_errors += 1
        if self.transport is None or self.closing:
            return
        if upstream.relayed == 0 and self.queue:
            exch = self.queue[0]
            if upstream.uses > 1 and exch.body_done and exch.method in SAFE_METHODS:
                self.start_exchange()
                return
            self.respond(502, "The server closed the connection without answering", close=True)
            return
        self.close()

    async def upstream_down(self, exch: Exchange, route: Route) -> None:
        """The route's target refused the connection: error page or JSON 503."""
        message = "The server at this address is not running"
        if exch.wants_html and self.server.settings.error_target:
            page = await self._error_page(503, exch)
            if page is not None and self.transport is not None and not self.closing:
                self.transport.write(page)
                self.close()
                return
        self.respond(503, message, close=True)

    async def _error_page(self, status: int, exch: Exchange) -> bytes | None:
        """Fetch the error target's page, as configurable-http-proxy does."""
        target = self.server.settings.error_target
        assert target is not None
        route = Route("/", target, {})
        original = exch.path + ("?" + exch.query.decode("latin-1") if exch.query else "")
        path = f"{route.target_path}/{status}?url={quote(original, safe='')}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(route.host, route.port), self.limits.connect_timeout
            )
        except (OSError, TimeoutError):
            return None
        try:
            writer.write(
                f"GET {path} HTTP/1.0\r\nHost: {route.host}:{route.port}\r\n"
                "Accept: text/html\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            return await asyncio.wait_for(reader.read(1024 * 1024), self.limits.connect_timeout)
        except (OSError, TimeoutError):
            return None
        finally:
            writer.close()

    def respond(self, status: int, message: str, close: bool = False) -> None:
        """A JSON error from the proxy itself."""
        if self.transport is None or self.closing:
            return
        if status < 500 and status != 404:
            self.server.metrics.rejected += 1
        body = _error_body(status, message)
        self.transport.write(
            b"HTTP/1.1 %d %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"%b\r\n%b"
            % (
                status,
                REASONS.get(status, b"Error"),
                len(body),
                b"Connection: close\r\n" if close else b"",
                body,
            )
        )
        if close:
            self.close()
        elif self.queue:
            self.queue.popleft()
            if self.queue:
                self.start_exchange()

    def _touch(self) -> None:
        now = time.monotonic()
        if now >= self._next_touch:
            self._next_touch = now + 1.0
            if self.queue and self.queue[0].route is not None:
                self.queue[0].route.last_activity = time.time()


class UpstreamConnection(asyncio.Protocol):
    """A connection to a route's target, reused while it stays keep-alive."""

    def __init__(self, server: ProxyServer, key: tuple[str, int, str]) -> None:
        self.server = server
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.client: ClientConnection | None = None
        self.exchange: Exchange | None = None
        self.parser: Any = None
        self.piped = False
        self.sent_head = False
        self.status = 0
        self.relayed = 0
        self.uses = 0  # exchanges carried; more than one means a reused connection
        self.closed = False
        self.idle_since = 0.0  # when it went back to the pool

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.upstreams.add(self)

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def begin(self, client: ClientConnection, exch: Exchange) -> None:
        self.client = client
        self.exchange = exch
        if self.parser is None or isinstance(self.parser, _Ignore):
            # llhttp parses one response after another on a keep-alive connection
            self.parser = httptools.HttpResponseParser(self)
        self.sent_head = False
        self.status = 0
        self.relayed = 0
        self.uses += 1

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.upstreams.discard(self)
        self.server.pool_drop(self)
        client = self.client
        self.client = None
        if client is None:
            return
        if self.piped:
            client.close()
        elif self.exchange is not None:
            client.upstream_failed(self)

    def pause_writing(self) -> None:
        if self.client is not None and self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client is not None and self.client.transport is not None:
            self.client.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None or client.transport is None:
            self.close()
            return
        client.transport.write(data)
        if self.piped:
            client._touch()
            return
        self.relayed += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.piped = True
            client.switch_protocols(self)
        except httptools.HttpParserError:
            self.close()
            client.close()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        exch = self.exchange
        if exch is not None and exch.method == b"HEAD" and self.status >= 200:
            # a response to HEAD has no body whatever its headers say
            self._done(self.parser.should_keep_alive())
            self.parser = _Ignore()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200 and self.status != 101:
            return  # an interim response (100 Continue); the real one follows
        if self.status == 101:
            return
        self._done(self.parser.should_keep_alive())

    def _done(self, keep_alive: bool) -> None:
        client = self.client
        if client is None:
            return
        client.exchange_done(self, keep_alive)


class _Ignore:
    """Stands in for the parser after a HEAD response, which has no body."""

    def feed_data(self, data: bytes) -> None:
        return

    def should_keep_alive(self) -> bool:
        return False


class RedirectToHTTPS(asyncio.Protocol):
    """A plain-HTTP listener that sends every request to the same URL over HTTPS."""

    def __init__(self, https_port: int) -> None:
        self.https_port = https_port
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.host = b""
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > Limits.max_header_bytes:
            self._close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"host":
            self.host = value.split(b":", 1)[0]

    def on_headers_complete(self) -> None:
        if self.transport is None:
            return
        path = normalize_path(self.url.split(b"?", 1)[0].decode("latin-1"))
        if not self.host or path is None or b"\r" in self.host or b"\n" in self.host:
            self._close()
            return
        query = b"?" + self.url.split(b"?", 1)[1] if b"?" in self.url else b""
        port = b"" if self.https_port == 443 else b":%d" % self.https_port
        location = b"https://" + self.host + port + path.encode("latin-1") + query
        self.transport.write(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: %b\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n" % location
        )
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
