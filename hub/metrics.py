"""The hub's Prometheus metrics, served at `/hub/metrics` (`hub.api.metrics`).

Names follow JupyterHub's where it has the same measurement, so dashboards made for
JupyterHub (Zero to JupyterHub's Grafana boards) read Atrium's too:

- `jupyterhub_request_duration_seconds{code,method,handler}`: every API and page
  request, by handler class;
- `jupyterhub_server_spawn_duration_seconds{status}` (success, failure, cancelled)
  and `jupyterhub_server_stop_seconds{status}` (success, failure);
- `jupyterhub_running_servers`, `jupyterhub_total_users`,
  `jupyterhub_active_users{period}` (users whose last activity is within 1h, 24h, 7d,
  30d): read from the database when scraped (`refresh_counts`);
- `jupyterhub_proxy_add_duration_seconds{status}` and
  `jupyterhub_proxy_delete_duration_seconds{status}`; Atrium's own
  `atrium_proxy_routes` (routes the hub keeps, its own too) and
  `atrium_proxy_errors_total{operation}`;
- `atrium_db_query_duration_seconds{operation}`: each unit of work in the database,
  by its function's name;
- `jupyterhub_event_loop_interval_seconds`: how long a 50 ms sleep of the hub's event
  loop really took (`LoopMonitor`); far above 0.05 s, something blocks the loop.

Login counts are next to the logins (`hub.auth.login`). prometheus_client's default
registry also carries the process's CPU, memory and open files.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.background import Background
from hub.timeutil import utcnow

REQUEST_DURATION = Histogram(
    "jupyterhub_request_duration_seconds",
    "Time to answer a request, by status code, method and handler",
    ["code", "method", "handler"],
)
SPAWN_DURATION = Histogram(
    "jupyterhub_server_spawn_duration_seconds",
    "Time from a start request to the server answering (or failing), by outcome",
    ["status"],
    buckets=[0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600, float("inf")],
)
STOP_DURATION = Histogram(
    "jupyterhub_server_stop_seconds",
    "Time to stop a server, by outcome",
    ["status"],
    buckets=[0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, float("inf")],
)
RUNNING_SERVERS = Gauge("jupyterhub_running_servers", "Servers running now")
TOTAL_USERS = Gauge("jupyterhub_total_users", "Users in the hub's database")
ACTIVE_USERS = Gauge(
    "jupyterhub_active_users", "Users active within the period (last activity)", ["period"]
)
PROXY_ADD = Histogram(
    "jupyterhub_proxy_add_duration_seconds", "Time to add a server's route", ["status"]
)
PROXY_DELETE = Histogram(
    "jupyterhub_proxy_delete_duration_seconds", "Time to delete a server's route", ["status"]
)
PROXY_ROUTES = Gauge("atrium_proxy_routes", "Routes the hub keeps in the proxy (its own too)")
PROXY_ERRORS = Counter(
    "atrium_proxy_errors_total", "Calls to the proxy's routes API that failed", ["operation"]
)
DB_DURATION = Histogram(
    "atrium_db_query_duration_seconds",
    "Time of one unit of work in the database, by operation",
    ["operation"],
    buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, float("inf")],
)
LOOP_INTERVAL = Histogram(
    "jupyterhub_event_loop_interval_seconds",
    "How long a 50 ms sleep of the hub's event loop took",
    buckets=[0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5, float("inf")],
)

PERIODS = {
    "1h": datetime.timedelta(hours=1),
    "24h": datetime.timedelta(days=1),
    "7d": datetime.timedelta(days=7),
    "30d": datetime.timedelta(days=30),
}


def refresh_counts(session: Session) -> None:
    """Set the gauges read from the database (at each scrape: a few count queries)."""
    from hub.db.models import Server, User

    RUNNING_SERVERS.set(
        session.scalar(select(func.count()).select_from(Server).where(Server.started.is_not(None)))
        or 0
    )
    TOTAL_USERS.set(session.scalar(select(func.count()).select_from(User)) or 0)
    now = utcnow()
    for period, span in PERIODS.items():
        active = session.scalar(
            select(func.count()).select_from(User).where(User.last_activity >= now - span)
        )
        ACTIVE_USERS.labels(period=period).set(active or 0)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(handler: Any) -> None:
    """Time a finished request (the web application's `log_function`)."""
    cls = type(handler)
    method = handler.request.method if handler.request.method in _METHODS else "other"
    REQUEST_DURATION.labels(
        code=str(handler.get_status()), method=method, handler=f"{cls.__module__}.{cls.__name__}"
    ).observe(handler.request.request_time())


class LoopMonitor(Background):
    """Sleeps 50 ms again and again and records how long each sleep really took."""

    INTERVAL = 0.05

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(self.INTERVAL)
            LOOP_INTERVAL.observe(loop.time() - began)
