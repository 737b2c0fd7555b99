"""The REST API under `/hub/api`. Each module ends with its own `routes`."""

from __future__ import annotations

from typing import Any

from hub.api import (
    audit,
    groups,
    metrics,
    proxy,
    root,
    roster,
    servers,
    services,
    signups,
    tokens,
    users,
)
from hub.api.base import API404


def all_routes() -> list[tuple[str, Any]]:
    """Every API route, relative to the hub prefix, with the 404 catch-all last."""
    return [
        *root.routes,
        *users.routes,
        *signups.routes,
        *tokens.routes,
        *groups.routes,
        *roster.routes,
        *audit.routes,
        *servers.routes,
        *services.routes,
        *proxy.routes,
        *metrics.routes,
        (r"/api/.*", API404),
    ]
