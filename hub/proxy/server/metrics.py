"""Prometheus metrics of the proxy, served at /metrics on the API listener.

Label children are bound once, so counting a request costs two attribute
look-ups and a lock-free increment; gauges read the live state when scraped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from hub.proxy.server.forward import ProxyServer

# request latency buckets (seconds) from 100 µs to 30 s
BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class ProxyMetrics:
    def __init__(self, server: ProxyServer) -> None:
        self.registry = CollectorRegistry()
        requests = Counter(
            "atrium_proxy_requests",
            "Requests by outcome: proxied, no_route, upstream_down, rejected",
            ["outcome"],
            registry=self.registry,
        )
        self.proxied = requests.labels("proxied")
        self.no_route = requests.labels("no_route")
        self.upstream_down = requests.labels("upstream_down")
        self.rejected = requests.labels("rejected")
        self.latency = Histogram(
            "atrium_proxy_request_duration_seconds",
            "Time from a request's head to the end of its response",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "atrium_proxy_upstream_errors",
            "Upstream connections that failed or broke mid-response",
            registry=self.registry,
        )
        Gauge(
            "atrium_proxy_websockets", "Open WebSocket connections", registry=self.registry
        ).set_function(lambda: server.open_websockets)
        Gauge(
            "atrium_proxy_connections", "Open client connections", registry=self.registry
        ).set_function(lambda: len(server.clients))
        Gauge("atrium_proxy_routes", "Routes in the table", registry=self.registry).set_function(
            lambda: len(server.table)
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
