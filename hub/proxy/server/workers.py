"""Worker processes: one proxy on several cores.

`atrium proxy --workers N` runs the process that serves the routes API (the
primary, which forwards traffic too) and N-1 workers. Each binds the public
port with SO_REUSEPORT, so the kernel spreads connections over them. The
primary sends each worker its route table over a socket pair (route events,
`hub.proxy.server.feed`) and every change after that; a worker accepts
traffic only once it has the whole table. Every second a worker sends back
the routes its traffic touched (`last_activity`) and its metric counts, so the
routes API and /metrics speak for all processes.

Each worker slot has its own socket on the port, which the primary creates and
holds and the slot's workers inherit: a worker that exits or is replaced
leaves the socket, and the connections waiting in its accept queue, to the
next one (closing a SO_REUSEPORT socket would reset those). The primary only
binds it; the slot's first worker starts it listening once it has its table,
so no connection waits in the queue of a slot whose worker is still starting
(as after a proxy restart, with the primary already serving). A worker that
exits is started again in its slot; a worker whose primary is gone drains and
exits. SIGHUP to the primary replaces the workers one at a time, each new one
accepting before the old one drains, so a reload drops no connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from hub.proxy.server import feed
from hub.proxy.server.metrics import ProxyMetrics
from hub.proxy.server.routes import Route, RouteTable

log = logging.getLogger("atrium.proxy.workers")

REPORT_INTERVAL = 1.0  # seconds between a worker's activity and metrics reports
LINE_LIMIT = 256 * 1024 * 1024  # a snapshot of a large table is one line
RESTART_DELAY = 0.5  # before starting a worker that exited again (doubling on failure)
MAX_RESTART_DELAY = 30.0
START_TIMEOUT = 30.0  # for a new worker to have its table and listen
EXIT_MARGIN = 5.0  # beyond its drain, for a retiring worker to report and exit
# the proxy alone (`hub.proxy.__main__`): `-m hub.app proxy` would import the whole hub
# first, seconds of start-up on a busy machine for each worker
WORKER_CMD = (sys.executable, "-m", "hub.proxy")
WORKER_FD_FLAG = "--worker-fd"
LISTEN_FD_FLAG = "--listen-fd"


def _bound_like(sock: Any) -> socket.socket:
    """A new socket bound to the same address as `sock`, beside it (SO_REUSEPORT); not
    listening: the kernel gives it connections once a worker listens on it."""
    new = socket.socket(sock.family, socket.SOCK_STREAM)
    try:
        new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.family == socket.AF_INET6:
            new.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        new.bind(sock.getsockname())
    except OSError:
        new.close()
        raise
    new.set_inheritable(False)
    return new


class WorkerStartFailed(Exception):
    pass


@dataclass
class Worker:
    number: int
    slot: int
    process: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    retired: bool = False  # replaced or stopping: do not start again when it exits


class WorkerPool:
    """The primary's side: starts workers, keeps their tables current, gathers reports."""

    def __init__(
        self,
        table: RouteTable,
        metrics: ProxyMetrics,
        argv: list[str],
        count: int,
        like: list[socket.socket],
    ) -> None:
        self.table = table
        self.metrics = metrics
        self.argv = argv  # the primary's own flags, minus --workers
        self.count = count
        # each slot's sockets (SO_REUSEPORT, bound like the primary's `like`; its first
        # worker makes them listen): held here, so a slot's accept queue outlives the
        # workers that take turns on it
        self.slots = [[_bound_like(s) for s in like] for _ in range(count)]
        self.workers: dict[int, Worker] = {}
        self.stopping = False
        self._serial = 0
        self._tasks: set[asyncio.Task[None]] = set()
        table.listeners.append(self._route_changed)

    async def start(self) -> None:
        """Start a worker in every slot; a slot whose worker fails keeps trying in the
        background (the primary serves meanwhile)."""
        results = await asyncio.gather(
            *(self._start_worker(slot) for slot in range(self.count)), return_exceptions=True
        )
        for slot, result in enumerate(results):
            if isinstance(result, WorkerStartFailed | OSError):
                log.error("%s; trying again", result)
                self._own(self._fill(slot))
            elif isinstance(result, BaseException):
                raise result

    def serving(self) -> int:
        """Processes serving traffic: this one and the workers that are ready."""
        return 1 + sum(1 for w in self.workers.values() if w.ready.is_set() and not w.retired)

    def _route_changed(self, prefix: str, route: Route | None) -> None:
        line = feed.encode(feed.added(route) if route is not None else feed.deleted(prefix))
        for worker in self.workers.values():
            if not worker.writer.is_closing():
                worker.writer.write(line)

    async def _start_worker(self, slot: int) -> Worker:
        self._serial += 1
        number = self._serial
        ours, theirs = socket.socketpair()
        listening = [s.fileno() for s in self.slots[slot]]
        try:
            process = await asyncio.create_subprocess_exec(
                *WORKER_CMD,
                *self.argv,
                WORKER_FD_FLAG,
                str(theirs.fileno()),
                *(arg for fd in listening for arg in (LISTEN_FD_FLAG, str(fd))),
                pass_fds=(theirs.fileno(), *listening),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours, limit=LINE_LIMIT)
        worker = Worker(number, slot, process, writer)
        self.workers[number] = worker
        writer.write(feed.encode(feed.snapshot(self.table)))
        self._own(self._follow(worker, reader))
        ready = asyncio.ensure_future(worker.ready.wait())
        exited = asyncio.ensure_future(process.wait())
        await asyncio.wait((ready, exited), timeout=START_TIMEOUT, return_when=FIRST_COMPLETED)
        exited.cancel()
        if not worker.ready.is_set():
            ready.cancel()
            worker.retired = True
            self._signal(worker, signal.SIGKILL)
            why = "exited at start" if process.returncode is not None else "did not start in time"
            raise WorkerStartFailed(f"proxy worker {number} (pid {process.pid}) {why}")
        log.info("Proxy worker %d (pid %d) is serving", number, process.pid)
        return worker

    def _own(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, worker: Worker, reader: asyncio.StreamReader) -> None:
        """Read a worker's reports until it exits; start another if it was not retired."""
        try:
            while line := await reader.readline():
                self._report(worker, line)
        except (OSError, ValueError) as e:
            log.warning("Proxy worker %d sent something unreadable: %s", worker.number, e)
        finally:
            worker.writer.close()
            self.workers.pop(worker.number, None)
            self.metrics.others.pop(worker.number, None)
        code = await worker.process.wait()
        if self.stopping or worker.retired:
            return
        log.warning("Proxy worker %d exited (code %s); starting another", worker.number, code)
        await self._fill(worker.slot)

    async def _fill(self, slot: int) -> None:
        """Start a worker in `slot`, trying again with growing pauses until one runs."""
        delay = RESTART_DELAY
        while not self.stopping:
            await asyncio.sleep(delay)
            try:
                await self._start_worker(slot)
                return
            except (WorkerStartFailed, OSError) as e:
                delay = min(delay * 2, MAX_RESTART_DELAY)
                log.error("%s; trying again in %g s", e, delay)

    def _report(self, worker: Worker, line: bytes) -> None:
        report = orjson.loads(line)
        if report.get("type") == "READY":
            worker.ready.set()
            return
        for prefix, when in report.get("activity", {}).items():
            route = self.table.get(prefix)
            if route is not None and when > route.last_activity:
                route.last_activity = when
        self.metrics.others[worker.number] = report.get("metrics", {})

    @staticmethod
    def _signal(worker: Worker, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(sig)

    async def _retire(self, worker: Worker, drain: float) -> None:
        """SIGTERM: the worker drains for up to `drain` seconds and exits (or is killed)."""
        worker.retired = True
        self._signal(worker, signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.process.wait(), drain + EXIT_MARGIN)
        except TimeoutError:
            self._signal(worker, signal.SIGKILL)
            await worker.process.wait()

    async def reload(self, drain: float) -> None:
        """Replace every worker, one at a time: the new one serves, then the old drains."""
        for worker in list(self.workers.values()):
            try:
                await self._start_worker(worker.slot)
            except (WorkerStartFailed, OSError) as e:
                log.error("Reload stopped: %s (the running workers are kept)", e)
                return
            await self._retire(worker, drain)
        log.info("Proxy workers reloaded")

    async def stop(self, drain: float) -> None:
        self.stopping = True
        await asyncio.gather(*(self._retire(w, drain) for w in list(self.workers.values())))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sockets in self.slots:
            for sock in sockets:
                sock.close()


# --- the worker's side --------------------------------------------------------------


class PrimaryLink:
    """A worker's link to its primary: route events in, reports out."""

    def __init__(self, fd: int, table: RouteTable, metrics: ProxyMetrics) -> None:
        self.fd = fd
        self.table = table
        self.metrics = metrics
        self.follower = feed.Follower(table, keep_default=False)
        # last_activity of each route as the primary last heard it
        self.reported: dict[str, float] = {}
        self._fresh: list[str] = []  # added by the event being applied
        table.listeners.append(self._route_changed)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def _route_changed(self, prefix: str, route: Route | None) -> None:
        if route is None:
            self.reported.pop(prefix, None)
        else:
            self._fresh.append(prefix)  # its activity is set once the whole event is in

    async def connect(self) -> None:
        """Connect and wait for the whole table."""
        sock = socket.socket(fileno=self.fd)
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=LINE_LIMIT)
        while not self.follower.synced:
            await self._next_event()

    async def _next_event(self) -> None:
        assert self.reader is not None
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("the proxy's primary process is gone")
        self.follower.apply_line(line)
        self._mark_reported()

    def _mark_reported(self) -> None:
        for prefix in self._fresh:
            route = self.table.get(prefix)
            if route is not None:
                self.reported[prefix] = route.last_activity
        self._fresh.clear()

    def ready(self) -> None:
        assert self.writer is not None
        self.writer.write(feed.encode({"type": "READY", "pid": os.getpid()}))

    async def run(self, on_lost: Callable[[], None]) -> None:
        """Follow route events and report, until the primary goes away."""
        reporter = asyncio.ensure_future(self._report_periodically())
        try:
            while True:
                await self._next_event()
        except (ConnectionError, OSError, ValueError) as e:
            log.info("Proxy worker %d: %s; stopping", os.getpid(), e)
        finally:
            reporter.cancel()
            on_lost()

    def _activity(self) -> dict[str, float]:
        changed: dict[str, float] = {}
        for prefix, route in self.table.routes().items():
            if route.last_activity > self.reported.get(prefix, 0.0):
                changed[prefix] = route.last_activity
                self.reported[prefix] = route.last_activity
        return changed

    def report(self) -> None:
        if self.writer is None or self.writer.is_closing():
            return
        message: dict[str, Any] = {
            "type": "REPORT",
            "time": time.time(),
            "activity": self._activity(),
            "metrics": self.metrics.snapshot(),
        }
        self.writer.write(feed.encode(message))

    async def _report_periodically(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            self.report()
