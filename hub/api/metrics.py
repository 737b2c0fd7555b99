"""`/hub/metrics`: the hub's Prometheus metrics (JupyterHub's path), for requesters
with the `read:metrics` scope (JupyterHub's default: metrics are not public).

Counters are defined next to what they count (e.g. logins in `hub.auth.login`)
on prometheus_client's default registry, which also carries the process's CPU,
memory and file descriptors.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hub.api.base import APIHandler, needs_scope


class MetricsHandler(APIHandler):
    @needs_scope("read:metrics")
    async def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(REGISTRY))


routes = [(r"/metrics", MetricsHandler)]
