"""The routes API, as configurable-http-proxy has it.

`GET /api/routes[?inactive_since=ISO]`, `GET|POST|DELETE /api/routes/<prefix>`,
authorised by `Authorization: token $CONFIGPROXY_AUTH_TOKEN`; `GET /metrics`
(Prometheus text, no token: the API listener is internal). Route data sent
with a POST is stored and returned flattened beside `target` and
`last_activity`, so JupyterHub and Atrium's hub read it the same way.

Served by its own small HTTP/1.1 server on httptools (keep-alive, bodies up to
64 KiB), like the forwarder: the hub adds a route per server start, and a hub
reconciling thousands of routes should not wait on a web framework.
"""

from __future__ import annotations

import asyncio
import datetime
import hmac
import logging
from typing import Any, cast
from urllib.parse import parse_qs, unquote

import httptools
import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from hub.proxy.server.metrics import ProxyMetrics
from hub.proxy.server.routes import Route, RouteTable

log = logging.getLogger("atrium.proxy.api")

MAX_ROUTE_BODY = 64 * 1024
MAX_HEAD = 32 * 1024
ROUTES = "/api/routes"
JSON = b"application/json"
REASONS = {
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Payload Too Large",
    431: b"Request Header Fields Too Large",
}


class APIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _iso(timestamp: float) -> str:
    when = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def route_model(route: Route) -> dict[str, Any]:
    when, shown = route.shown_activity
    if when != route.last_activity:
        shown = _iso(route.last_activity)
        route.shown_activity = (route.last_activity, shown)
    return {**route.data, "target": route.target, "last_activity": shown}


class RoutesAPI:
    """What the API does, whatever carries the requests."""

    def __init__(
        self, table: RouteTable, token: str | None, metrics: ProxyMetrics | None = None
    ) -> None:
        self.table = table
        self.token = token.encode() if token is not None else None
        self.metrics = metrics

    def protocol(self) -> APIConnection:
        return APIConnection(self)

    def handle(
        self, method: str, target: str, authorization: bytes, body: bytes
    ) -> tuple[int, bytes, bytes]:
        """One request: (status, content type, body)."""
        path, _, query = target.partition("?")
        if path == "/metrics":
            if method != "GET":
                raise APIError(405, "Method not allowed")
            if self.metrics is None:
                raise APIError(404, "Not found")
            return 200, CONTENT_TYPE_LATEST.encode(), self.metrics.render()
        if path != ROUTES and not path.startswith(ROUTES + "/"):
            raise APIError(404, "Not found")
        self._authorize(authorization)
        prefix = unquote(path[len(ROUTES) :]) or "/"
        if method == "GET":
            return 200, JSON, self._get(prefix, query)
        if method == "POST":
            self._post(prefix, body)
            return 201, JSON, b""
        if method == "DELETE":
            # configurable-http-proxy answers 404 for a route it does not have
            if not self.table.remove(prefix):
                raise APIError(404, "No such route")
            log.info("Route %s removed", prefix)
            return 204, JSON, b""
        raise APIError(405, "Method not allowed")

    def _authorize(self, header: bytes) -> None:
        if self.token is None:
            return  # started with --insecure-no-auth for local tests
        kind, _, value = header.partition(b" ")
        if kind.lower() != b"token" or not hmac.compare_digest(value.strip(), self.token):
            raise APIError(403, "Forbidden")

    def _get(self, prefix: str, query: str) -> bytes:
        if prefix != "/":
            route = self.table.get(prefix)
            if route is None:
                raise APIError(404, "No such route")
            return orjson.dumps(route_model(route))
        since = None
        since_arg = parse_qs(query).get("inactive_since")
        if since_arg:
            try:
                parsed = datetime.datetime.fromisoformat(since_arg[-1].replace("Z", "+00:00"))
            except ValueError:
                raise APIError(400, "inactive_since must be an ISO 8601 time") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.UTC)
            since = parsed.timestamp()
        return orjson.dumps(
            {
                p: route_model(r)
                for p, r in self.table.routes().items()
                if since is None or r.last_activity < since
            }
        )

    def _post(self, prefix: str, raw: bytes) -> None:
        try:
            body = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError:
            raise APIError(400, "Body must be JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("target"), str):
            raise APIError(400, "Body must be a JSON object with a target URL")
        target = body.pop("target")
        body.pop("last_activity", None)
        try:
            self.table.add(prefix, target, body)
        except ValueError as e:
            raise APIError(400, str(e)) from None
        log.info("Route %s -> %s", prefix, target)


class APIConnection(asyncio.Protocol):
    """HTTP/1.1 for the routes API: one request at a time, keep-alive."""

    def __init__(self, api: RoutesAPI) -> None:
        self.api = api
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.authorization = b""
        self.body = bytearray()
        self.head_size = 0
        self.too_large = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, JSON, _error(400, "Bad request"), close=True)

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._grow(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value))
        if name.lower() == b"authorization":
            self.authorization = value

    def _grow(self, n: int) -> None:
        self.head_size += n
        if self.head_size > MAX_HEAD:
            self._send(431, JSON, _error(431, "Request header fields too large"), close=True)
            raise httptools.HttpParserError("header too large")

    def on_body(self, body: bytes) -> None:
        if len(self.body) + len(body) > MAX_ROUTE_BODY:
            self.too_large = True
            return
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode("latin-1")
        keep_alive = self.parser.should_keep_alive()
        try:
            if self.too_large:
                raise APIError(413, "Route data too large")
            status, kind, body = self.api.handle(
                method, self.url.decode("latin-1"), self.authorization, bytes(self.body)
            )
        except APIError as e:
            status, kind, body = e.status, JSON, _error(e.status, e.message)
        except Exception:
            log.exception("Routes API: %s failed", method)
            status, kind, body = 500, JSON, _error(500, "Internal error")
        self._send(status, kind, body, close=not keep_alive)

    def _send(self, status: int, kind: bytes, body: bytes, close: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        head = b"HTTP/1.1 %d %b\r\n" % (status, REASONS.get(status, b"Error"))
        if status != 204:
            head += b"Content-Type: %b\r\nContent-Length: %d\r\n" % (kind, len(body))
        if close:
            head += b"Connection: close\r\n"
        self.transport.write(head + b"\r\n" + (body if status != 204 else b""))
        if close:
            self.transport.close()


def _error(status: int, message: str) -> bytes:
    return orjson.dumps({"status": status, "message": message})
