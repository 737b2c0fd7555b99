"""The fake API server's storage: objects, resourceVersions, history and watchers.

This is the part of the fake that plays etcd plus the apiserver's watch cache:
one global resourceVersion counter (every write to any kind takes the next
number, like etcd's revision), per-kind bounded event history for watches
that resume from a resourceVersion, and live watcher queues. The HTTP side is
in `tests.kube.apiserver`, selectors in `tests.kube.selectors`, and the
simulated kubelet (`tests.kube.kubelet`) subscribes here in-process.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]

# plural -> (Kind, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "pods": ("Pod", True),
    "persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "services": ("Service", True),
    "events": ("Event", True),
    "secrets": ("Secret", True),
    "configmaps": ("ConfigMap", True),
    "serviceaccounts": ("ServiceAccount", True),
}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error the API server answers with a Kubernetes Status object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})


def conflict(plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "kind": plural},
    )


def expired(rv: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {rv} ({oldest})")


@dataclass
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    rv: int
    obj: Obj
    old: Obj | None = None  # the previous state, for selector transitions


@dataclass(eq=False)
class Watcher:
    """One open watch: events are pushed to its queue; None means 'closed'."""

    plural: str
    queue: asyncio.Queue[WatchEvent | str | None] = field(default_factory=asyncio.Queue)


@dataclass
class KindStore:
    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    history: deque[WatchEvent] = field(default_factory=deque)
    # every event with rv > window_start is still in `history`
    window_start: int = 1


class Store:
    """All objects of all kinds, with one resourceVersion counter."""

    def __init__(self, history_size: int = 1000) -> None:
        self.history_size = history_size
        # a fresh etcd is at revision 1; "0" would mean "any version" to a watch
        self.rv = 1
        self.kinds: dict[str, KindStore] = {plural: KindStore() for plural in KINDS}
        self.watchers: set[Watcher] = set()
        # in-process subscribers (the kubelet): called synchronously on each change
        self.subscribers: list[Callable[[str, WatchEvent], None]] = []

    # -- reading ----------------------------------------------------------

    def get(self, plural: str, namespace: str, name: str) -> Obj:
        obj = self.kinds[plural].objects.get((namespace, name))
        if obj is None:
            raise not_found(plural, name)
        return copy.deepcopy(obj)

    def find(self, plural: str, namespace: str, name: str) -> Obj | None:
        obj = self.kinds[plural].objects.get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def items(self, plural: str, namespace: str | None = None) -> list[Obj]:
        """Objects sorted by key, as etcd lists them (copies)."""
        return [copy.deepcopy(obj) for obj in self.stored(plural, namespace)]

    def stored(self, plural: str, namespace: str | None = None) -> list[Obj]:
        """The stored objects themselves, sorted by key: to read, never to change."""
        objects = self.kinds[plural].objects
        return [objects[key] for key in sorted(objects) if namespace is None or key[0] == namespace]

    def count(self, plural: str, namespace: str) -> int:
        return sum(1 for key in self.kinds[plural].objects if key[0] == namespace)

    # -- writing ----------------------------------------------------------

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _record(self, plural: str, event: WatchEvent) -> None:
        kind = self.kinds[plural]
        kind.history.append(event)
        while len(kind.history) > self.history_size:
            kind.window_start = kind.history.popleft().rv
        for watcher in list(self.watchers):
            if watcher.plural == plural:
                watcher.queue.put_nowait(event)
        for subscriber in list(self.subscribers):
            subscriber(plural, event)

    def create(self, plural: str, namespace: str, obj: Obj) -> Obj:
        """Store a new, already validated object (metadata.name set)."""
        meta = obj.setdefault("metadata", {})
        name = meta["name"]
        key = (namespace, name)
        if key in self.kinds[plural].objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{plural} "{name}" already exists',
                {"name": name, "kind": plural},
            )
        kind_name, _ = KINDS[plural]
        obj["kind"] = kind_name
        obj["apiVersion"] = "v1"
        meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta.pop("deletionTimestamp", None)
        meta.pop("deletionGracePeriodSeconds", None)
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self.kinds[plural].objects[key] = obj
        self._record(plural, WatchEvent("ADDED", rv, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def update(
        self,
        plural: str,
        namespace: str,
        name: str,
        change: Callable[[Obj], None],
        expect_rv: str | None = None,
    ) -> Obj:
        """Apply `change` to the stored object; 409 if `expect_rv` is stale."""
        objects = self.kinds[plural].objects
        current = objects.get((namespace, name))
        if current is None:
            raise not_found(plural, name)
        if expect_rv and expect_rv != current["metadata"]["resourceVersion"]:
            raise conflict(plural, name)
        old = copy.deepcopy(current)
        new = copy.deepcopy(current)
        change(new)
        # identity fields are the server's, whatever the change says
        meta = new.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp"):
            meta[key] = old["metadata"][key]
        if "deletionTimestamp" in old["metadata"]:
            meta["deletionTimestamp"] = old["metadata"]["deletionTimestamp"]
        new["kind"], new["apiVersion"] = old["kind"], old["apiVersion"]
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return new  # a no-op write does not bump the resourceVersion
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        objects[(namespace, name)] = new
        self._record(plural, WatchEvent("MODIFIED", rv, copy.deepcopy(new), old))
        return copy.deepcopy(new)

    def mark_deleting(self, plural: str, namespace: str, name: str, grace: int) -> Obj:
        """Graceful deletion: set deletionTimestamp (a MODIFIED event)."""
        objects = self.kinds[plural].objects
        current = objects.get((namespace, name))
        if current is None:
            raise not_found(plural, name)
        if "deletionTimestamp" in current["metadata"]:
            return copy.deepcopy(current)
        old = copy.deepcopy(current)
        meta = current["metadata"]
        deadline = datetime.now(UTC).timestamp() + grace
        meta["deletionTimestamp"] = datetime.fromtimestamp(deadline, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        meta["deletionGracePeriodSeconds"] = grace
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self._record(plural, WatchEvent("MODIFIED", rv, copy.deepcopy(current), old))
        return copy.deepcopy(current)

    def remove(self, plural: str, namespace: str, name: str) -> Obj:
        """Remove the object now (a DELETED event carrying its last state)."""
        obj = self.kinds[plural].objects.pop((namespace, name), None)
        if obj is None:
            raise not_found(plural, name)
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self._record(plural, WatchEvent("DELETED", rv, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    # -- watching ---------------------------------------------------------

    def events_since(self, plural: str, rv: int) -> list[WatchEvent]:
        """History after `rv`; 410 Expired when `rv` is older than the window."""
        kind = self.kinds[plural]
        if rv < kind.window_start:
            raise expired(rv, kind.window_start + 1)
        return [event for event in kind.history if event.rv > rv]

    def compact(self) -> None:
        """Forget all history, as etcd compaction does: older resourceVersions get 410."""
        for kind in self.kinds.values():
            kind.history.clear()
            kind.window_start = self.rv

    def add_watcher(self, plural: str) -> Watcher:
        watcher = Watcher(plural)
        self.watchers.add(watcher)
        return watcher

    def remove_watcher(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def drop_watchers(self) -> int:
        """Close every open watch; returns how many there were."""
        watchers = list(self.watchers)
        for watcher in watchers:
            watcher.queue.put_nowait(None)
        return len(watchers)

    def bookmark_watchers(self) -> None:
        for watcher in list(self.watchers):
            watcher.queue.put_nowait("BOOKMARK")
