"""The routing table: longest path-prefix match in a trie of path segments.

A lookup walks one dict per path segment, so its cost depends on the depth of
the path, never on how many routes there are. Prefixes are normalised as
configurable-http-proxy does (leading slash, no trailing slash; "/" is the
root). With host routing, the first segment of a prefix is the host name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Route:
    prefix: str
    target: str
    data: dict[str, Any]
    # parsed once: where to connect
    scheme: str = field(init=False)
    host: str = field(init=False)
    port: int = field(init=False)
    # path prefix of the target, prepended to the forwarded path ('' for none)
    target_path: str = field(init=False)
    last_activity: float = field(default_factory=time.time)
    # last_activity as the routes API shows it, formatted once per value
    shown_activity: tuple[float, str] = field(default=(-1.0, ""), repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise ValueError(f"target must be an http(s) URL, not {self.target!r}")
        self.scheme = "https" if parts.scheme in ("https", "wss") else "http"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.target_path = parts.path.rstrip("/")


def normalize_prefix(prefix: str) -> str:
    """'/user/ann/' -> '/user/ann'; '' and '/' -> '/'."""
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    if len(prefix) > 1:
        prefix = prefix.rstrip("/") or "/"
    return prefix


class _Node:
    __slots__ = ("children", "route")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.route: Route | None = None


class RouteTable:
    def __init__(self) -> None:
        self._root = _Node()
        self._routes: dict[str, Route] = {}
        # called after every change: listener(prefix, route or None when removed)
        self.listeners: list[Callable[[str, Route | None], None]] = []

    def __len__(self) -> int:
        return len(self._routes)

    def add(self, prefix: str, target: str, data: dict[str, Any] | None = None) -> Route:
        prefix = normalize_prefix(prefix)
        route = Route(prefix, target, dict(data or {}))
        node = self._root
        for segment in _segments(prefix):
            node = node.children.setdefault(segment, _Node())
        node.route = route
        self._routes[prefix] = route
        for listener in self.listeners:
            listener(prefix, route)
        return route

    def remove(self, prefix: str) -> bool:
        prefix = normalize_prefix(prefix)
        if self._routes.pop(prefix, None) is None:
            return False
        path: list[tuple[_Node, str]] = []
        node = self._root
        for segment in _segments(prefix):
            path.append((node, segment))
            node = node.children[segment]
        node.route = None
        # prune empty branches so a churning table does not grow
        for parent, segment in reversed(path):
            child = parent.children[segment]
            if child.route is None and not child.children:
                del parent.children[segment]
            else:
                break
        for listener in self.listeners:
            listener(prefix, None)
        return True

    def get(self, prefix: str) -> Route | None:
        return self._routes.get(normalize_prefix(prefix))

    def routes(self) -> dict[str, Route]:
        return dict(self._routes)

    def match(self, path: str) -> Route | None:
        """The route with the longest prefix of `path` (whole segments only)."""
        node = self._root
        best = node.route
        for segment in _segments(path):
            child = node.children.get(segment)
            if child is None:
                break
            node = child
            if node.route is not None:
                best = node.route
        return best


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]
