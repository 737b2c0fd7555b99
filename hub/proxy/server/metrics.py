"""Prometheus metrics of the proxy, served at /metrics on the API listener.

Counting is plain integer arithmetic on the hot path (a request costs one
increment and one bisect into the latency buckets); the Prometheus objects are
built only when /metrics is scraped. A proxy running several worker processes
adds up the snapshots its workers send (see `hub.proxy.server.workers`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

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
OUTCOMES = ("proxied", "no_route", "upstream_down", "rejected")


class ProxyMetrics:
    """One process's counts. `gauges` are read when scraped: name -> (help, reader)."""

    __slots__ = (
        "buckets",
        "gauges",
        "latency_sum",
        "no_route",
        "others",
        "proxied",
        "registry",
        "rejected",
        "upstream_down",
        "upstream_errors",
    )

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]] | None = None) -> None:
        self.proxied = 0
        self.no_route = 0
        self.upstream_down = 0
        self.rejected = 0
        self.upstream_errors = 0
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0
        self.gauges = gauges or {}
        # snapshots from worker processes, by worker
        self.others: dict[int, dict[str, Any]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def observe(self, seconds: float) -> None:
        self.proxied += 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def snapshot(self, gauges: bool = True) -> dict[str, Any]:
        snap: dict[str, Any] = {o: getattr(self, o) for o in OUTCOMES}
        snap["upstream_errors"] = self.upstream_errors
        snap["buckets"] = list(self.buckets)
        snap["latency_sum"] = self.latency_sum
        if gauges:
            snap["gauges"] = {name: read() for name, (_, read) in self.gauges.items()}
        return snap

    def total(self) -> dict[str, Any]:
        """This process's counts plus every worker's."""
        total = self.snapshot()
        for snap in self.others.values():
            for key in (*OUTCOMES, "upstream_errors", "latency_sum"):
                total[key] += snap.get(key, 0)
            for i, n in enumerate(snap.get("buckets", ())[: len(total["buckets"])]):
                total["buckets"][i] += n
            for name, value in snap.get("gauges", {}).items():
                if name in total["gauges"] and name not in SHARED_GAUGES:
                    total["gauges"][name] += value
        return total

    def render(self) -> bytes:
        return generate_latest(self.registry)


# gauges every process reports the same value of (not summed across workers)
SHARED_GAUGES = frozenset({"routes", "processes"})


class _Collector:
    def __init__(self, metrics: ProxyMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        total = self.metrics.total()
        requests = CounterMetricFamily(
            "atrium_proxy_requests",
            "Requests by outcome: proxied, no_route, upstream_down, rejected",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            requests.add_metric([outcome], total[outcome])
        yield requests
        yield CounterMetricFamily(
            "atrium_proxy_upstream_errors",
            "Upstream connections that failed or broke mid-response",
            value=total["upstream_errors"],
        )
        yield HistogramMetricFamily(
            "atrium_proxy_request_duration_seconds",
            "Time from a request's head to the end of its response",
            buckets=list(_cumulative(total["buckets"])),
            sum_value=total["latency_sum"],
        )
        for name, (help_text, _) in self.metrics.gauges.items():
            yield GaugeMetricFamily(f"atrium_proxy_{name}", help_text, value=total["gauges"][name])


def _cumulative(counts: Iterable[int]) -> Iterator[tuple[str, float]]:
    running = 0
    for bound, n in zip((*(repr(b) for b in BUCKETS), "+Inf"), counts, strict=True):
        running += n
        yield bound, running
