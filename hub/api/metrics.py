"""`/hub/metrics`: the hub's Prometheus metrics (JupyterHub's path), for requesters
with the `read:metrics` scope (JupyterHub's default: metrics are not public).

What is measured is listed in `hub.metrics`.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hub.api.base import APIHandler, needs_scope
from hub.metrics import refresh_counts


class MetricsHandler(APIHandler):
    @needs_scope("read:metrics")
    async def get(self) -> None:
        await self.db.run(refresh_counts)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(REGISTRY))


routes = [(r"/metrics", MetricsHandler)]
