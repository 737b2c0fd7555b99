"""Route events: how one route table follows another.

A proxy's worker processes follow the table of the process that serves the
routes API, and proxy replicas follow the hub's table (`atrium proxy
--routes-from`), with the same events, one JSON object per line:

    {"type": "SNAPSHOT", "routes": {PREFIX: {"target": URL, "data": {...},
                                             "last_activity": EPOCH}, ...}}
    {"type": "ADDED", "prefix": PREFIX, "target": URL, "data": {...}, "last_activity": EPOCH}
    {"type": "DELETED", "prefix": PREFIX}
    {"type": "HEARTBEAT"}

A follower starts from a SNAPSHOT (sent first on every connection, so one that
reconnects is whole again at once) and applies changes as they come.
`last_activity` is optional (the hub does not know it); without it a new
route counts as active now.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from hub.proxy.server.routes import Route, RouteTable, normalize_prefix

DEFAULT_PREFIX = "/"


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event) + b"\n"


def route_entry(route: Route) -> dict[str, Any]:
    return {"target": route.target, "data": route.data, "last_activity": route.last_activity}


def added(route: Route) -> dict[str, Any]:
    return {"type": "ADDED", "prefix": route.prefix, **route_entry(route)}


def deleted(prefix: str) -> dict[str, Any]:
    return {"type": "DELETED", "prefix": prefix}


def snapshot(table: RouteTable) -> dict[str, Any]:
    return {
        "type": "SNAPSHOT",
        "routes": {p: route_entry(r) for p, r in table.routes().items()},
    }


class FeedError(ValueError):
    """An event that is not one of the above."""


class Follower:
    """Applies route events to a table. `keep_default`: a snapshot without `/` leaves
    the table's own default route (from --default-target) in place."""

    def __init__(self, table: RouteTable, keep_default: bool = True) -> None:
        self.table = table
        self.keep_default = keep_default
        self.synced = False  # a snapshot has been applied

    def apply_line(self, line: bytes) -> str:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise FeedError("a route event is not JSON") from None
        if not isinstance(event, dict):
            raise FeedError("a route event must be a JSON object")
        return self.apply(event)

    def apply(self, event: dict[str, Any]) -> str:
        kind = event.get("type")
        if kind == "SNAPSHOT":
            routes = event.get("routes")
            if not isinstance(routes, dict):
                raise FeedError("SNAPSHOT needs routes")
            self._snapshot(routes)
            self.synced = True
        elif kind == "ADDED":
            prefix = event.get("prefix")
            if not isinstance(prefix, str):
                raise FeedError("ADDED needs a prefix")
            self._add(prefix, event)
        elif kind == "DELETED":
            prefix = event.get("prefix")
            if not isinstance(prefix, str):
                raise FeedError("DELETED needs a prefix")
            self.table.remove(prefix)
        elif kind != "HEARTBEAT":
            raise FeedError(f"unknown route event type {str(kind)[:40]!r}")
        return str(kind)

    @staticmethod
    def _checked(prefix: str, entry: Any) -> tuple[str, dict[str, Any], float | None]:
        if not isinstance(entry, dict) or not isinstance(entry.get("target"), str):
            raise FeedError(f"the route {prefix[:200]!r} needs a target")
        data = entry.get("data") or {}
        if not isinstance(data, dict):
            raise FeedError(f"the data of route {prefix[:200]!r} must be an object")
        try:
            Route(prefix, entry["target"], data)
        except ValueError as e:
            raise FeedError(str(e)) from None
        activity = entry.get("last_activity")
        return entry["target"], data, float(activity) if isinstance(activity, int | float) else None

    def _add(self, prefix: str, entry: Any) -> None:
        self._put(prefix, *self._checked(prefix, entry))

    def _put(self, prefix: str, target: str, data: dict[str, Any], activity: float | None) -> None:
        current = self.table.get(prefix)
        if current is not None and current.target == target and current.data == data:
            if activity is not None and activity > current.last_activity:
                current.last_activity = activity
            return  # unchanged: keep the live route (and its activity)
        route = self.table.add(prefix, target, data)
        route.last_activity = activity if activity is not None else time.time()

    def _snapshot(self, routes: dict[str, Any]) -> None:
        # all checked before any is applied: a bad snapshot changes nothing
        checked = {normalize_prefix(p): self._checked(p, e) for p, e in routes.items()}
        for prefix, entry in checked.items():
            self._put(prefix, *entry)
        for prefix in list(self.table.routes()):
            if prefix in checked or (self.keep_default and prefix == DEFAULT_PREFIX):
                continue
            self.table.remove(prefix)
