"""One list+watch cache per (namespace, kind), shared by every spawner of a hub.

An `Informer` lists the objects of one kind (pods, events or volume claims) in
one namespace, then watches from the list's resourceVersion, so the API serves
one long request per kind instead of a poll per user. It follows the API's
watch contract:

- every event moves `resource_version` on; a watch the server ends (its
  `timeout_seconds`) resumes from there, with nothing missed;
- bookmarks (`allowWatchBookmarks`) move it on without an object change, so a
  resume after a quiet spell does not fall out of the API's history window;
- 410 Gone (on the watch request or as an ERROR event) means that history is
  gone: the informer lists again and replaces its cache, waking the waiters of
  every object that changed or vanished meanwhile;
- any other failure (500s, dropped connections, timeouts) is retried after a
  bounded, jittered exponential backoff.

`synced` says the cache holds a complete list; `stale` says it may be behind
(never synced, or the watch is down and being retried), so a caller never takes
a frozen cache for the truth without knowing. Waiters (`add_waiter`) are woken
when an object of their key changes and whenever `stale` may have changed.
`spawners.kubernetes.spawner` reads pods and events from here and never polls
the API; `shared` hands out one informer per connection, namespace and kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from spawners.kubernetes.client import Connection, Json, KubeError, call, status_error

log = logging.getLogger(__name__)

KeyFunc = Callable[[Json], str]
# a watch that ends sooner than this (seconds) with no event counts as a failure
QUICK_WATCH = 1.0


class Gone(Exception):
    """The resourceVersion to resume from is no longer served (410): list again."""


def name_key(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def involved_pod_key(obj: Json) -> str:
    """An event's key: the name of the pod it is about ('' for other objects)."""
    involved = obj.get("involvedObject") or {}
    return str(involved.get("name") or "") if involved.get("kind") == "Pod" else ""


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Bounded exponential backoff with jitter (between half and all of the step)."""
    step = min(cap, base * float(2 ** max(0, failures - 1)))
    return step * random.uniform(0.5, 1.0)


def _labels_match(obj: Json, selector: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


class Informer:
    """The cache of one kind in one namespace (see the module docstring)."""

    def __init__(
        self,
        list_operation: Callable[..., Awaitable[Any]],
        namespace: str,
        kind: str,
        *,
        labels: dict[str, str] | None = None,
        key: KeyFunc = name_key,
        watch_timeout: int = 300,
        backoff_base: float = 0.2,
        backoff_cap: float = 30.0,
        page_size: int = 500,
    ) -> None:
        self.list_operation = list_operation
        self.namespace = namespace
        self.kind = kind
        self.labels = dict(labels or {})
        self.key = key
        self.watch_timeout = watch_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.page_size = page_size
        self.items: dict[str, Json] = {}
        self._by_key: dict[str, set[str]] = {}
        self.resource_version = ""
        self.synced = False
        self._connected = False
        self.failures = 0
        self.last_error = ""
        # what it asked of the API, for tests and the benchmark
        self.list_calls = 0
        self.watch_calls = 0
        self.watch_events = 0
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._any_waiters: set[asyncio.Event] = set()
        self._task: asyncio.Task[None] | None = None

    # --- reading ----------------------------------------------------------------------

    @property
    def stale(self) -> bool:
        """The cache may be behind the API (not synced yet, or the watch is down)."""
        return not (self.synced and self._connected)

    def get(self, name: str) -> Json | None:
        return self.items.get(name)

    def for_key(self, key: str) -> list[Json]:
        """The objects whose key is `key` (for events: those about the pod `key`)."""
        return [self.items[n] for n in sorted(self._by_key.get(key, ())) if n in self.items]

    def add_waiter(self, key: str, event: asyncio.Event) -> None:
        """Set `event` whenever an object of `key` changes, and on every change of
        `synced`/`stale`. Remove it with `remove_waiter`."""
        self._waiters.setdefault(key, set()).add(event)

    def remove_waiter(self, key: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[key]

    def add_any_waiter(self, event: asyncio.Event) -> None:
        """Set `event` on every watch event (bookmarks included), list and state change."""
        self._any_waiters.add(event)

    def remove_any_waiter(self, event: asyncio.Event) -> None:
        self._any_waiters.discard(event)

    async def wait_synced(self, within: float) -> bool:
        """Wait (up to `within` s) for the first complete list; True once synced."""
        if self.synced:
            return True
        event = asyncio.Event()
        self._any_waiters.add(event)
        try:
            async with asyncio.timeout(within):
                while not self.synced:
                    event.clear()
                    await event.wait()
        except TimeoutError:
            pass
        finally:
            self._any_waiters.discard(event)
        return self.synced

    # --- running ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"informer {self.kind}")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_connected(False)

    async def _run(self) -> None:
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                began, events = asyncio.get_running_loop().time(), self.watch_events
                await self._watch()
                if self.watch_events == events and (
                    asyncio.get_running_loop().time() - began < QUICK_WATCH
                ):
                    # a watch ended at once with nothing in it: do not spin on the API
                    self.failures += 1
                    await asyncio.sleep(self._delay())
            except asyncio.CancelledError:
                raise
            except Gone:
                log.info("%s watch: resourceVersion expired (410), listing again", self.kind)
                self.resource_version = ""
                self.failures += 1
                self._set_connected(False)  # behind until the new list is in
                if self.failures > 1:  # 410 again and again: do not hammer the API
                    await asyncio.sleep(self._delay())
            except Exception as e:
                self.failures += 1
                self.last_error = str(e)[:300]
                self._set_connected(False)
                delay = self._delay()
                log.warning(
                    "%s informer in %s: %s; retrying in %.1f s (failure %d)",
                    self.kind,
                    self.namespace,
                    self.last_error,
                    delay,
                    self.failures,
                )
                await asyncio.sleep(delay)

    def _delay(self) -> float:
        return backoff_delay(self.failures, self.backoff_base, self.backoff_cap)

    def _set_connected(self, connected: bool) -> None:
        if connected != self._connected:
            self._connected = connected
            self._wake_all()

    # --- list ---------------------------------------------------------------------------

    def _selector(self) -> dict[str, Any]:
        if not self.labels:
            return {}
        return {"label_selector": ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))}

    async def _list(self) -> None:
        items: dict[str, Json] = {}
        token = ""
        while True:
            self.list_calls += 1
            extra: dict[str, Any] = {"limit": self.page_size}
            if token:
                extra["_continue"] = token
            try:
                page = await call(self.list_operation, self.namespace, **self._selector(), **extra)
            except KubeError as e:
                if e.status == 410:  # the continue token expired: start over
                    raise Gone() from None
                raise
            for obj in page.get("items") or []:
                if self._keep(obj):
                    items[name_key(obj)] = obj
            meta = page.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                self._replace(items, str(meta.get("resourceVersion") or ""))
                return

    def _keep(self, obj: Json) -> bool:
        return bool(name_key(obj)) and _labels_match(obj, self.labels)

    def _replace(self, items: dict[str, Json], resource_version: str) -> None:
        """A fresh list: the cache becomes it; waiters of anything that differs wake."""
        touched: set[str] = set()
        for name, obj in self.items.items():
            if items.get(name) != obj:
                touched.add(self.key(obj))
        for name, obj in items.items():
            if self.items.get(name) != obj:
                touched.add(self.key(obj))
        self.items = items
        self._by_key = {}
        for name, obj in items.items():
            self._by_key.setdefault(self.key(obj), set()).add(name)
        self.resource_version = resource_version
        self.synced = True
        self.failures = 0
        self._connected = True
        for key in touched:
            self._wake(key)
        self._wake_all()

    # --- watch --------------------------------------------------------------------------

    async def _watch(self) -> None:
        self.watch_calls += 1
        # the server ends the watch after watch_timeout; a connection silent for longer
        # than that (no events, no bookmarks) is dead, whatever TCP thinks
        timeout = aiohttp.ClientTimeout(sock_connect=30, sock_read=self.watch_timeout + 30)
        try:
            response = await self.list_operation(
                self.namespace,
                watch=True,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=self.watch_timeout,
                _preload_content=False,
                _request_timeout=timeout,
                **self._selector(),
            )
        except (TimeoutError, OSError, aiohttp.ClientError) as e:
            raise KubeError(0, f"the watch could not connect: {e}") from None
        try:
            if response.status == 410:
                raise Gone()
            if not 200 <= response.status < 300:
                raise status_error(response.status, await response.read())
            self._set_connected(True)
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._apply(orjson.loads(line))
            if buffer.strip():
                self._apply(orjson.loads(buffer))
            # the server ended the watch (its timeout): resume from resource_version
        finally:
            response.release()

    def _apply(self, event: Json) -> None:
        self.watch_events += 1
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise Gone()
            raise KubeError(code, str(obj.get("message") or "watch error"), str(obj.get("reason")))
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        for waiter in self._any_waiters:
            waiter.set()
        if kind == "BOOKMARK":
            if version:
                self.resource_version = version
            return
        name = name_key(obj)
        if kind in ("ADDED", "MODIFIED") and name:
            if self._keep(obj):
                self._put(name, obj)
            else:  # relabelled out of our selection
                self._drop(name)
        elif kind == "DELETED" and name:
            self._drop(name)
        if version:
            self.resource_version = version
        self.failures = 0

    def _put(self, name: str, obj: Json) -> None:
        old = self.items.get(name)
        if old is not None and self.key(old) != self.key(obj):
            self._unindex(name, old)
        self.items[name] = obj
        key = self.key(obj)
        self._by_key.setdefault(key, set()).add(name)
        self._wake(key)

    def _drop(self, name: str) -> None:
        old = self.items.pop(name, None)
        if old is not None:
            self._unindex(name, old)
            self._wake(self.key(old))

    def _unindex(self, name: str, obj: Json) -> None:
        key = self.key(obj)
        names = self._by_key.get(key)
        if names is not None:
            names.discard(name)
            if not names:
                del self._by_key[key]
        self._wake(key)

    def _wake(self, key: str) -> None:
        for event in self._waiters.get(key, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()
        for event in self._any_waiters:
            event.set()


# --- one informer per connection, namespace and kind ------------------------------------

KINDS = {
    "pods": "list_namespaced_pod",
    "events": "list_namespaced_event",
    "persistentvolumeclaims": "list_namespaced_persistent_volume_claim",
}
_shared: dict[tuple[int, str, str], tuple[Connection, Informer]] = {}


def shared(
    connection: Connection,
    namespace: str,
    kind: str,
    labels: dict[str, str] | None = None,
    **options: Any,
) -> Informer:
    """The running informer of `kind` in `namespace` over `connection` (made and started
    on first use; later `labels` and `options` are those of the first caller)."""
    key = (id(connection), namespace, kind)
    found = _shared.get(key)
    if found is not None and found[0] is connection:
        found[1].start()  # started again if it was stopped
        return found[1]
    operation = getattr(connection.core, KINDS[kind])
    informer = Informer(
        operation,
        namespace,
        kind,
        labels=labels,
        key=involved_pod_key if kind == "events" else name_key,
        **options,
    )
    _shared[key] = (connection, informer)
    informer.start()
    return informer


async def stop_all() -> None:
    """Stop every shared informer (hub shutdown, tests)."""
    found = list(_shared.values())
    _shared.clear()
    for _, informer in found:
        await informer.stop()
