"""Spawn orchestration: start and stop servers through the spawner contract.

Plain async functions over the database units in `hub.ops.servers`; the API
handlers call them and so can tests, without HTTP. Every spawn and stop runs as
a task owned by the `Orchestrator` (cancelled and awaited at shutdown), so a
request that stops waiting never orphans the work, and every failure path ends
with the server marked stopped, never stuck pending.

With a proxy (`routes`, a `hub.proxy.supervisor.ProxyLink`), a server is marked
ready only once its route is added: a route that cannot be added fails the
start with a message saying so, and the server is stopped. A stop deletes the
route first; if that fails the stop goes on and the proxy check removes the
route later (it belongs to a server no longer running).

Each start keeps its progress events in a `hub.progress.ProgressLog` that
`watch()` hands to the progress API, from the first event to the ready or
failed one. At start-up `adopt()` takes over the servers a previous hub left:
running ones are polled (kept or marked stopped), unfinished starts and stops
are ended, so no process survives that the database does not know about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hub.db.engine import Database
from hub.errors import (
    AtriumError,
    BadRequest,
    ConfigError,
    Conflict,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)
from hub.log import bounded
from hub.metrics import SPAWN_DURATION, STOP_DURATION
from hub.ops import credentials
from hub.ops import servers as server_ops
from hub.ops import users as user_ops
from hub.ops.context import HubContext
from hub.ops.servers import ServerRef
from hub.progress import (
    ProgressLog,
    failed_event,
    follow_spawner,
    ready_event,
    requested_event,
    routing_event,
    spawning_event,
)
from hub.rbac.access import Requester
from hub.spawnenv import server_env
from spawners.base import Spawner, SpawnError

log = logging.getLogger(__name__)

SpawnerFactory = Callable[[ServerRef], Spawner]
Outcome = Literal["ready", "pending", "stopped"]


class ServerRoutes(Protocol):
    """Where the proxy routes servers (`hub.proxy.supervisor.ProxyLink`)."""

    # held while a route and the database change together, so a reconcile
    # never sees one without the other
    lock: asyncio.Lock

    async def add_server(self, user_name: str, server_name: str, url: str) -> None: ...

    async def remove_server(self, user_name: str, server_name: str) -> None: ...


def spawner_factory(spawner_class: str, config: Any) -> SpawnerFactory | None:
    """Make spawners of the configured class (None when no spawner is configured)."""
    if not spawner_class:
        return None
    from hub.settings import load_spawner_class

    cls = load_spawner_class(spawner_class)
    _check_group_overrides(cls, config)

    def factory(ref: ServerRef) -> Spawner:
        return cls(  # type: ignore[no-any-return]
            user_name=ref.user_name,
            server_name=ref.name,
            user_options=ref.user_options,
            config=config,
        )

    factory.spawner_class = cls  # type: ignore[attr-defined]
    return factory


def _check_group_overrides(cls: type[Spawner], config: Any) -> None:
    """Refuse, at start-up, group overrides naming a setting the spawner class lacks."""
    for section in [c.__name__ for c in cls.__mro__]:
        overrides = config.get(section, {}).get("group_overrides") if section in config else None
        if isinstance(overrides, dict) and (problem := cls.override_problem(overrides)):
            raise ConfigError(f"c.{section}.{problem}")


class SpawnFailed(AtriumError):
    status = 500
    default_message = "The server failed to start"


class StopFailed(AtriumError):
    status = 500
    default_message = "The server failed to stop"


NO_SPAWNER = "No spawner is configured on this hub (set c.Hub.spawner_class)"
CANCELLED = "The start was cancelled"
# failures recorded for servers a restarted hub found (see `Orchestrator.adopt`)
STOPPED_WHILE_DOWN = "The server stopped while the hub was down"
INTERRUPTED = "The hub restarted while the server was starting; please start it again"
POLL_FAILED = "The hub could not check whether the server is still running; retry in a few seconds"
# servers adopted at once at start-up (each is a poll, or a stop)
ADOPT_CONCURRENCY = 20


@dataclass(frozen=True)
class SpawnLimits:
    concurrent: int = 100  # servers starting at once; 0: no limit
    active: int = 0  # servers running or pending; 0: no limit


@dataclass(frozen=True)
class SpawnTimeouts:
    # how long an API request waits before answering 202 and letting the work continue
    slow_spawn: float = 10.0
    slow_stop: float = 10.0
    # how long the spawn page waits before showing the progress page instead
    page_spawn: float = 1.0


class Orchestrator:
    """Owns the live spawners and the tasks that start and stop them."""

    def __init__(
        self,
        db: Database,
        ctx: HubContext,
        factory: SpawnerFactory | None,
        timeouts: SpawnTimeouts = SpawnTimeouts(),
        routes: ServerRoutes | None = None,
        limits: SpawnLimits = SpawnLimits(),
    ) -> None:
        self.db = db
        self.limits = limits
        self._spawning: set[int] = set()  # server ids whose start is under way
        self._admit = asyncio.Lock()  # the limit check and the start's first step, together
        self.ctx = ctx
        self.factory = factory
        self.timeouts = timeouts
        self.routes = routes
        self.spawners: dict[int, Spawner] = {}
        # where servers reach the hub (http://HOST:PORT), known once the hub listens
        self.hub_url = ""
        # called when a server's credentials are revoked (the hub clears its token cache)
        self.credentials_revoked: Callable[[], None] = lambda: None
        # run before each start, after the environment is made: the authenticator's
        # refresh and pre-spawn hook (hub.auth.refresh); raising refuses the start
        self.before_start: Callable[[ServerRef, Spawner], Awaitable[None]] | None = None
        self._work: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # the events of each start under way, by server id (see `watch`)
        self.progress: dict[int, ProgressLog] = {}

    def _own(self, server_id: int, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        self._work[server_id] = task

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._work.get(server_id) is t:
                del self._work[server_id]
            if not t.cancelled():
                t.exception()  # failures are logged where they happen and kept in the db

        task.add_done_callback(done)
        return task

    async def _mark_stopped(self, server_id: int, state: dict[str, Any], **kw: Any) -> None:
        """Record a server as stopped; its credentials are revoked with it, so tokens the
        hub remembers (`hub.authcache`) are forgotten too."""
        await self.db.run(server_ops.mark_stopped, server_id, state, **kw)
        self.credentials_revoked()

    def _spawner_for(self, ref: ServerRef) -> Spawner:
        spawner = self.spawners.get(ref.id)
        if spawner is None:
            if self.factory is None:
                raise ServiceUnavailable(NO_SPAWNER)
            spawner = self.factory(ref)
            spawner.load_state(ref.state)
            self.spawners[ref.id] = spawner
        return spawner

    async def start(
        self,
        req: Requester,
        user_name: str,
        server_name: str,
        options: object,
        *,
        wait: float | None = None,
    ) -> Outcome:
        """Start a server: "ready" if it answered within `wait` seconds (by default
        `slow_spawn`), else "pending"."""
        # the server as it is now; also 404 for users and servers `req` may not start
        current = await self.db.run(server_ops.lookup, req, user_name, server_name, "start:servers")
        if self.factory is None:
            raise ServiceUnavailable(NO_SPAWNER)
        if current is not None:
            if current.pending == "spawn" and current.id in self._work:
                return "pending"  # already starting: JupyterHub answers 202 too
            if current.pending and current.id not in self._work:
                # left pending by a hub that stopped in the middle: finish that stop first
                await self._stop_ref(current, False, req.name)
            elif current.started and not current.pending:
                await self._notice_exit(current)
        groups = await self.db.run(user_ops.group_names, user_name)
        checker = self.form_spawner(user_name, server_name, groups)
        if checker is not None and isinstance(options, dict):
            try:
                checker.check_user_options(options)
            except ValueError as e:
                raise BadRequest(str(e)) from None
        async with self._admit:
            await self._check_limits()
            ref = await self.db.run(
                server_ops.begin_spawn, self.ctx, req, user_name, server_name, options
            )
            self._spawning.add(ref.id)
            # created before the lock is let go: `watch` relies on it
            self.progress[ref.id] = ProgressLog()
            self.progress[ref.id].add(requested_event())
        try:
            spawner = self._spawner_for(ref)
            spawner.user_groups = groups
            try:
                spawner.apply_group_overrides()
            except SpawnError as e:
                raise SpawnFailed(f"The server failed to start: {e}") from None
            token = await self.db.run(credentials.issue, self.ctx, ref.id)
            spawner.env = server_env(
                self.ctx, self.hub_url, ref.user_name, ref.name, token, spawner.default_url
            )
            if self.before_start is not None:
                await self.before_start(ref, spawner)
        except Exception as e:
            self._spawning.discard(ref.id)
            if not isinstance(e, AtriumError):
                # a config hook's own error: its text may hold anything
                log.error("Preparing the start of %s failed", ref.log_name, exc_info=True)
                e = SpawnFailed("The hub could not prepare the server's start")
            await self._mark_stopped(ref.id, ref.state, failure=e.message)
            self._end_progress(ref.id, failed_event(e.message))
            raise e from None
        server_id = ref.id

        async def save_state(state: dict[str, Any]) -> None:
            await self.db.run(server_ops.save_state, server_id, state)

        spawner.save_state = save_state
        task = self._own(ref.id, self._spawn(ref, spawner))

        def spawn_over(_task: asyncio.Task[None]) -> None:
            self._spawning.discard(server_id)

        task.add_done_callback(spawn_over)
        timeout = self.timeouts.slow_spawn if wait is None else wait
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            return "pending"
        if task.cancelled():
            raise Conflict("The server was stopped before it finished starting")
        task.result()  # raises SpawnFailed
        return "ready"

    async def _check_limits(self) -> None:
        """429 when too many servers are starting, or too many are active (JupyterHub's
        concurrent_spawn_limit and active_server_limit); clients wait Retry-After."""
        limits = self.limits
        if limits.concurrent and len(self._spawning) >= limits.concurrent:
            raise TooManyRequests(
                f"Too many servers are starting right now ({len(self._spawning)}); "
                "yours will start if you try again in a moment",
                retry_after=random.randint(10, 30),  # spread the retries of a class
            )
        if limits.active:
            active = await self.db.run(server_ops.active_count)
            if active >= limits.active:
                raise TooManyRequests(
                    f"This hub is running as many servers as it may ({limits.active}); "
                    "try again once someone stops theirs",
                    retry_after=60,
                )

    async def _notice_exit(self, ref: ServerRef) -> None:
        """A server recorded as running whose process has exited is marked stopped, so
        that it can be started again (JupyterHub polls before answering 'already running').

        A poll that fails says nothing about the server: taken for an exit, the server
        would be started a second time and the first left running unknown to the hub. It
        stays recorded as running, and the start is refused until a poll answers."""
        try:
            status = await self._spawner_for(ref).poll()
        except Exception as e:
            log.warning("Polling %s failed: %s", ref.log_name, bounded(str(e), 200))
            raise ServiceUnavailable(POLL_FAILED) from None
        if status is None:
            return
        log.warning("Server %s exited unexpectedly with status %s", ref.log_name, status)
        spawner = self.spawners.pop(ref.id, None)
        if spawner is not None:
            spawner.clear_state()
        async with self._route_lock():
            await self._unroute(ref)
            await self.db.run(
                server_ops.mark_stopped,
                ref.id,
                {},
                failure=f"The server exited with status {status}",
            )

    def _end_progress(self, server_id: int, event: dict[str, Any]) -> None:
        """The last event of a start; its log is dropped (watchers still sending it keep
        their reference until they are done)."""
        events = self.progress.pop(server_id, None)
        if events is not None:
            events.finish(event)

    async def _spawn(self, ref: ServerRef, spawner: Spawner) -> None:
        events = self.progress.setdefault(ref.id, ProgressLog())
        final = failed_event(SpawnFailed.default_message)
        outcome = "failure"
        began = time.perf_counter()
        try:
            await self._start_and_route(ref, spawner, events)
            final = ready_event(self.ctx.user_url(ref.user_name, ref.name))
            outcome = "success"
        except asyncio.CancelledError:
            final = failed_event(CANCELLED)
            outcome = "cancelled"
            raise
        except SpawnFailed as e:
            final = failed_event(e.message)
            raise
        finally:
            SPAWN_DURATION.labels(status=outcome).observe(time.perf_counter() - began)
            self._end_progress(ref.id, final)

    async def _start_following(self, spawner: Spawner, events: ProgressLog) -> str:
        """`spawner.start()`, with the spawner's progress events copied into `events`
        while it runs."""
        events.add(spawning_event())
        follower = asyncio.create_task(follow_spawner(spawner, events))
        self._tasks.add(follower)
        follower.add_done_callback(self._tasks.discard)
        try:
            return await spawner.start()
        finally:
            follower.cancel()
            await asyncio.wait({follower})

    async def _start_and_route(self, ref: ServerRef, spawner: Spawner, events: ProgressLog) -> None:
        try:
            url = await asyncio.wait_for(
                self._start_following(spawner, events), timeout=spawner.start_timeout
            )
        except asyncio.CancelledError:
            log.info("Spawn of %s cancelled", ref.log_name)
            await self._cleanup_failed(ref, spawner, CANCELLED)
            raise
        except TimeoutError:
            message = f"Server did not start within {spawner.start_timeout:g} seconds"
            log.warning("Spawn of %s failed: %s", ref.log_name, message)
            await self._cleanup_failed(ref, spawner, message)
            raise SpawnFailed(message) from None
        except Exception as e:
            # a server that fails to start is a normal event: one line, the details at debug
            log.error("Spawn of %s failed: %s", ref.log_name, e)
            log.debug("Spawn of %s failed", ref.log_name, exc_info=True)
            message = f"The server failed to start: {e}"[:500]
            await self._cleanup_failed(ref, spawner, message)
            raise SpawnFailed(message) from None
        if self.routes is None:
            await self.db.run(server_ops.spawn_succeeded, ref.id, url, spawner.get_state())
        else:
            events.add(routing_event())
            await self._route_and_mark_ready(ref, spawner, url, self.routes)
        log.info("Server %s ready at %s", ref.log_name, url)

    async def _route_and_mark_ready(
        self, ref: ServerRef, spawner: Spawner, url: str, routes: ServerRoutes
    ) -> None:
        try:
            async with routes.lock:
                await routes.add_server(ref.user_name, ref.name, url)
                await self.db.run(server_ops.spawn_succeeded, ref.id, url, spawner.get_state())
        except asyncio.CancelledError:
            log.info("Spawn of %s cancelled", ref.log_name)
            await self._unroute(ref)
            await self._cleanup_failed(ref, spawner, CANCELLED)
            raise
        except Exception as e:
            # proxy errors carry a short `reason` fit for users (hub.proxy.client)
            reason = getattr(e, "reason", None)
            message = (
                f"The server started, but the proxy could not route to it ({reason}), "
                "so it was stopped"
                if reason
                else "The server started, but could not be marked ready, so it was stopped"
            )
            log.error("Spawn of %s failed: %s: %s", ref.log_name, message, e)
            await self._unroute(ref)
            await self._cleanup_failed(ref, spawner, message)
            raise SpawnFailed(message, log_message=f"{message}: {e}") from None

    def _route_lock(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self.routes.lock if self.routes is not None else contextlib.nullcontext()

    async def _unroute(self, ref: ServerRef) -> None:
        """Delete a server's route; a failure is logged (the proxy check removes it later)."""
        if self.routes is None:
            return
        try:
            await self.routes.remove_server(ref.user_name, ref.name)
        except Exception as e:
            log.warning("Removing the proxy route of %s failed: %s", ref.log_name, e)

    async def restore_route(self, ref: ServerRef) -> None:
        """Put back the route of a server that still runs (it failed to stop, or the proxy
        lost the route and a browser came to the hub instead)."""
        if self.routes is None or not ref.url:
            return
        try:
            await self.routes.add_server(ref.user_name, ref.name, ref.url)
        except Exception as e:
            log.warning("Restoring the proxy route of %s failed: %s", ref.log_name, e)

    async def _cleanup_failed(self, ref: ServerRef, spawner: Spawner, message: str) -> None:
        try:
            await asyncio.wait_for(spawner.stop(now=True), timeout=spawner.stop_timeout)
        except Exception:
            log.warning("Cleaning up failed spawn of %s also failed", ref.log_name, exc_info=True)
        spawner.clear_state()
        self.spawners.pop(ref.id, None)
        await asyncio.shield(self._mark_stopped(ref.id, spawner.get_state(), failure=message))

    async def stop(
        self, req: Requester, user_name: str, server_name: str, remove: bool = False
    ) -> Outcome:
        """Stop a server: "stopped" if it stopped within `slow_stop`, else "pending"."""
        if server_name and not self.ctx.allow_named_servers:
            raise BadRequest("Named servers are not enabled on this hub")
        if remove and not server_name:
            raise BadRequest("The default server cannot be removed, only stopped")
        ref = await self.db.run(server_ops.lookup, req, user_name, server_name, "delete:servers")
        if ref is None:
            if server_name:
                raise NotFound(f"{user_name} has no server named {server_name}")
            return "stopped"  # a default server never started: nothing to stop
        return await self._stop_ref(ref, remove, req.name)

    async def _stop_ref(self, ref: ServerRef, remove: bool, actor: str) -> Outcome:
        running = self._work.get(ref.id)
        if ref.pending == "stop" and running is not None:
            return "pending"
        if ref.pending == "spawn" and running is not None:
            # stopping a server that is still starting cancels the start
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await self.db.run(server_ops.record_stop, actor, ref)
            if remove:
                await self.db.run(server_ops.remove_stopped, actor, ref)
                await self._delete_forever(ref)
            return "stopped"
        if not ref.started and not ref.pending:
            if remove:
                await self.db.run(server_ops.remove_stopped, actor, ref)
                await self._delete_forever(ref)
            return "stopped"
        await self.db.run(server_ops.begin_stop, actor, ref)
        task = self._own(ref.id, self._stop(ref, remove))
        done, _ = await asyncio.wait({task}, timeout=self.timeouts.slow_stop)
        if done:
            task.result()  # raises StopFailed
            return "stopped"
        return "pending"

    async def _stop(self, ref: ServerRef, remove: bool) -> None:
        began, outcome = time.perf_counter(), "failure"
        try:
            await self._stop_server(ref, remove)
            outcome = "success"
        finally:
            STOP_DURATION.labels(status=outcome).observe(time.perf_counter() - began)

    async def _stop_server(self, ref: ServerRef, remove: bool) -> None:
        spawner: Spawner | None
        try:
            spawner = self._spawner_for(ref)
        except ServiceUnavailable:
            spawner = None
        state: dict[str, Any] = {}
        async with self._route_lock():
            await self._unroute(ref)
        if spawner is not None:
            try:
                try:
                    await asyncio.wait_for(spawner.stop(), timeout=spawner.stop_timeout)
                except TimeoutError:
                    log.warning("Stop of %s timed out; forcing", ref.log_name)
                    await asyncio.wait_for(spawner.stop(now=True), timeout=spawner.stop_timeout)
            except Exception as e:
                # the server may well still be running: it stays running, not pending
                log.error("Stop of %s failed: %s", ref.log_name, e, exc_info=True)
                await asyncio.shield(self.db.run(server_ops.mark_running, ref.id))
                await self.restore_route(ref)
                raise StopFailed(f"The server failed to stop: {e}"[:500]) from None
            spawner.clear_state()
            state = spawner.get_state()
        self.spawners.pop(ref.id, None)
        await asyncio.shield(self._mark_stopped(ref.id, state, remove=remove))
        log.info("Server %s stopped", ref.log_name)
        if remove and ref.name:
            await self._delete_forever(ref, spawner)

    async def cull(self, ref: ServerRef, reason: str, actor: str) -> Outcome:
        """Stop a server the culler chose ("idle" or "age"), as a stop by `actor`."""
        log.info(
            "Culling %s: %s",
            ref.log_name,
            "idle too long" if reason == "idle" else "running longer than its maximum age",
        )
        return await self._stop_ref(ref, False, actor)

    async def cull_user(self, user_name: str, actor: str) -> None:
        """Delete an idle user the culler chose (never an admin), as done by `actor`."""
        req = Requester.build(
            "service", actor, 0, False, frozenset({"delete:users", "delete:servers"})
        )
        log.info("Removing %s: idle too long", user_name)
        await self.delete_user(req, user_name)

    async def delete_user(self, req: Requester, user_name: str) -> None:
        """Delete a user, stopping their servers first (as JupyterHub does)."""
        await self.db.run(user_ops.check_delete, req, user_name)
        refs = await self.db.run(server_ops.active_servers, user_name)
        outcomes = await asyncio.gather(*(self._stop_ref(ref, False, req.name) for ref in refs))
        if "pending" in outcomes:
            raise BadRequest(f"{user_name}'s server is in the process of stopping, please wait")
        # each server is deleted for good (as JupyterHub does: named ones, then the
        # default one, which is there even if it never ran)
        servers = await self.db.run(server_ops.user_servers, user_name)
        servers.sort(key=lambda ref: ref.name == "")
        if not servers or servers[-1].name:
            servers.append(ServerRef(0, 0, user_name, "", {}, {}, None, False, None))
        for ref in servers:
            await self._delete_forever(ref)
        await self.db.run(user_ops.delete_user, req, user_name)

    async def _delete_forever(self, ref: ServerRef, spawner: Spawner | None = None) -> None:
        """The server is gone for good (a named server removed, or its user deleted): its
        spawner removes what outlives it (a volume). A failure is logged: the deletion goes
        on, and what was left is for an operator to clean up."""
        if spawner is None:
            if self.factory is None:
                return
            spawner = self.factory(ref)
            spawner.load_state(ref.state)
        try:
            await spawner.delete_forever()
        except Exception as e:
            log.warning("Removing what %s kept failed: %s", ref.log_name, e)

    # --- progress -------------------------------------------------------------------

    async def watch(self, req: Requester, user_name: str, server_name: str) -> ProgressLog:
        """The progress events of a server's start, for `req` to follow (JupyterHub's
        progress API): the live log of a start under way, from its first event; a
        finished log with the ready event for a running server, or with the failed event
        for a server whose last start failed. A server neither starting nor running is a
        400; a server `req` may not read is a 404."""
        ref = await self.db.run(server_ops.lookup, req, user_name, server_name, "read:servers")
        if ref is None:
            if server_name:
                raise NotFound(f"{user_name} has no server named {bounded(server_name, 64)}")
            raise BadRequest(f"{user_name}'s server is not starting")
        events = self.progress.get(ref.id)
        if events is None and ref.pending == "spawn":
            # a start creates its log while holding this lock, just after it marked the
            # server pending: once we hold it, the log exists or that start has ended
            async with self._admit:
                events = self.progress.get(ref.id)
            if events is None:
                ref = await self.db.run(
                    server_ops.lookup, req, user_name, server_name, "read:servers"
                )
                if ref is None:  # removed meanwhile
                    raise NotFound(f"{user_name} has no server named {bounded(server_name, 64)}")
        if events is not None:
            return events
        if ref.started and not ref.pending:
            return ProgressLog.finished(ready_event(self.ctx.user_url(ref.user_name, ref.name)))
        if ref.pending == "spawn":
            # left pending by a hub that stopped (no start of this hub is under way)
            return ProgressLog.finished(failed_event(INTERRUPTED))
        if not ref.pending and ref.failure:
            return ProgressLog.finished(failed_event(ref.failure))
        if ref.pending == "stop":
            raise BadRequest(f"{ref.log_name} is not starting, it is stopping")
        raise BadRequest(f"{ref.log_name} is not starting")

    def form_spawner(
        self, user_name: str, server_name: str, user_groups: list[str] | None = None
    ) -> Spawner | None:
        """A spawner for showing and reading the options form of a server about to start,
        or checking its options (None without a spawner); never started."""
        if self.factory is None:
            return None
        ref = ServerRef(0, 0, user_name, server_name, {}, {}, None, False, None)
        spawner = self.factory(ref)
        spawner.user_groups = user_groups
        return spawner

    def landing_url(self, ref: ServerRef) -> str:
        """Where a person goes once the server is ready: its prefix, plus the spawner's
        `default_url` when this hub has the server's spawner (otherwise the server sends
        people there itself, from JUPYTERHUB_DEFAULT_URL)."""
        url = self.ctx.user_url(ref.user_name, ref.name)
        spawner = self.spawners.get(ref.id)
        if spawner is not None and spawner.default_url:
            url += spawner.default_url.lstrip("/")
        return url

    # --- adopting a previous hub's servers ----------------------------------------------

    async def adopt(self) -> None:
        """Take over the servers the database records as running, starting or stopping,
        ADOPT_CONCURRENCY at a time; run at start-up before the hub listens.

        Running servers are polled through their spawner (from the stored state): a live
        one is kept (its spawner stays in `spawners`), a gone one is marked stopped. A
        start the previous hub never finished is ended with `stop(now=True)`, so its
        process cannot survive unaccounted for, and a stop is finished. Routes follow the
        database when the proxy is reconciled next (`hub.proxy.supervisor`), which
        adds the live servers' routes and removes the others'.
        """
        refs = await self.db.run(server_ops.recorded_servers)
        if not refs:
            return
        if self.factory is None:
            log.warning(
                "%d servers are recorded as running or pending, but no spawner is "
                "configured (c.Hub.spawner_class), so they are left as they are",
                len(refs),
            )
            return
        gate = asyncio.Semaphore(ADOPT_CONCURRENCY)

        async def one(ref: ServerRef) -> str:
            async with gate:
                return await self._adopt(ref)

        results = await asyncio.gather(*(one(ref) for ref in refs), return_exceptions=True)
        counts: Counter[str] = Counter()
        for ref, result in zip(refs, results, strict=True):
            if isinstance(result, BaseException):
                log.error("Adopting %s failed: %s", ref.log_name, result)
                counts["failed"] += 1
            else:
                counts[result] += 1
        log.info(
            "Servers of the previous hub: %d running, %d had stopped, %d unfinished starts "
            "ended, %d unfinished stops finished, %d could not be settled",
            counts["running"],
            counts["gone"],
            counts["ended"],
            counts["stopped"],
            counts["failed"],
        )

    async def _adopt(self, ref: ServerRef) -> str:
        spawner = self._spawner_for(ref)
        if ref.pending == "stop":
            try:
                await self._stop(ref, remove=False)
            except StopFailed:
                return "failed"  # logged; the server is recorded as running again
            return "stopped"
        if ref.pending == "spawn":
            try:
                await asyncio.wait_for(spawner.stop(now=True), timeout=spawner.stop_timeout)
            except Exception as e:
                # left pending: a later stop or start of this server tries again
                self.spawners.pop(ref.id, None)
                log.error("Ending the unfinished start of %s failed: %s", ref.log_name, e)
                return "failed"
            spawner.clear_state()
            self.spawners.pop(ref.id, None)
            await self._mark_stopped(ref.id, spawner.get_state(), failure=INTERRUPTED)
            log.info("Ended the start of %s that the previous hub left unfinished", ref.log_name)
            return "ended"
        try:
            status = await asyncio.wait_for(spawner.poll(), timeout=spawner.stop_timeout)
        except Exception as e:
            # not known to be gone: kept as running (a later poll decides)
            log.warning("Polling %s failed: %s; it is kept as running", ref.log_name, e)
            return "running"
        if status is None:
            return "running"
        log.warning("Server %s stopped while the hub was down (status %s)", ref.log_name, status)
        self.spawners.pop(ref.id, None)
        spawner.clear_state()
        await self._mark_stopped(ref.id, spawner.get_state(), failure=STOPPED_WHILE_DOWN)
        return "gone"

    async def stop_all(self) -> None:
        """Stop every server this hub knows to be running (used at shutdown if configured)."""
        refs = await self.db.run(server_ops.running_servers)
        results = await asyncio.gather(
            *(self._stop(ref, remove=False) for ref in refs), return_exceptions=True
        )
        for ref, result in zip(refs, results, strict=True):
            if isinstance(result, BaseException):
                log.error("Stopping %s at shutdown failed: %s", ref.log_name, result)

    async def shutdown(self) -> None:
        """Cancel in-flight work and wait for it (servers themselves keep running), then
        let the spawner class release what its spawners share."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        cls = getattr(self.factory, "spawner_class", None)
        if cls is not None:
            await cls.release_shared()
