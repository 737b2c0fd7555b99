"""The routes API, as configurable-http-proxy has it.

`GET /api/routes[?inactive_since=ISO]`, `GET|POST|DELETE /api/routes/<prefix>`,
authorised by `Authorization: token $CONFIGPROXY_AUTH_TOKEN`. Route data sent
with a POST is stored and returned flattened beside `target` and
`last_activity`, so JupyterHub and Atrium's hub read it the same way.
"""

from __future__ import annotations

import datetime
import hmac
import logging
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from tornado import web

from hub.proxy.server.metrics import ProxyMetrics
from hub.proxy.server.routes import Route, RouteTable

log = logging.getLogger("atrium.proxy.api")

MAX_ROUTE_BODY = 64 * 1024


def _iso(timestamp: float) -> str:
    when = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def route_model(route: Route) -> dict[str, Any]:
    return {**route.data, "target": route.target, "last_activity": _iso(route.last_activity)}


class RoutesHandler(web.RequestHandler):
    def initialize(self, table: RouteTable, token: str | None) -> None:
        self.table = table
        self.token = token

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")

    def prepare(self) -> None:
        if self.token is None:
            return  # started with --insecure-no-auth for local tests
        header = self.request.headers.get("Authorization", "")
        kind, _, value = header.partition(" ")
        if kind.lower() != "token" or not hmac.compare_digest(
            value.strip().encode(), self.token.encode()
        ):
            raise web.HTTPError(403)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = self._reason
        if isinstance(exc, web.HTTPError) and exc.log_message and status_code < 500:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.finish(orjson.dumps({"status": status_code, "message": message}))

    def get(self, prefix: str) -> None:
        if prefix and prefix != "/":
            route = self.table.get(prefix)
            if route is None:
                raise web.HTTPError(404, "No such route")
            self.finish(orjson.dumps(route_model(route)))
            return
        since_arg = self.get_query_argument("inactive_since", None)
        since = None
        if since_arg is not None:
            try:
                parsed = datetime.datetime.fromisoformat(since_arg.replace("Z", "+00:00"))
            except ValueError:
                raise web.HTTPError(400, "inactive_since must be an ISO 8601 time") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.UTC)
            since = parsed.timestamp()
        routes = {
            p: route_model(r)
            for p, r in self.table.routes().items()
            if since is None or r.last_activity < since
        }
        self.finish(orjson.dumps(routes))

    def post(self, prefix: str) -> None:
        if len(self.request.body) > MAX_ROUTE_BODY:
            raise web.HTTPError(413, "Route data too large")
        try:
            body = orjson.loads(self.request.body or b"{}")
        except orjson.JSONDecodeError:
            raise web.HTTPError(400, "Body must be JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("target"), str):
            raise web.HTTPError(400, "Body must be a JSON object with a target URL")
        target = body.pop("target")
        body.pop("last_activity", None)
        try:
            self.table.add(prefix or "/", target, body)
        except ValueError as e:
            raise web.HTTPError(400, str(e)) from None
        log.info("Route %s -> %s", prefix or "/", target)
        self.set_status(201)
        self.finish()

    def delete(self, prefix: str) -> None:
        # configurable-http-proxy answers 404 for a route it does not have
        if not self.table.remove(prefix or "/"):
            raise web.HTTPError(404, "No such route")
        log.info("Route %s removed", prefix or "/")
        self.set_status(204)
        self.finish()


class MetricsHandler(web.RequestHandler):
    """Prometheus text format; on the API listener, which is internal by default."""

    def initialize(self, metrics: ProxyMetrics | None) -> None:
        self.metrics = metrics

    def get(self) -> None:
        if self.metrics is None:
            raise web.HTTPError(404)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.metrics.render())


def make_api(
    table: RouteTable, token: str | None, metrics: ProxyMetrics | None = None
) -> web.Application:
    args = {"table": table, "token": token}
    return web.Application(
        [
            (r"/api/routes(/.*)?", RoutesHandler, args),
            (r"/metrics", MetricsHandler, {"metrics": metrics}),
        ],
        log_function=lambda handler: None,
    )
