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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hub.db.engine import Database
from hub.errors import (
    AtriumError,
    BadRequest,
    Conflict,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)
from hub.ops import credentials
from hub.ops import servers as server_ops
from hub.ops import users as user_ops
from hub.ops.context import HubContext
from hub.ops.servers import ServerRef
from hub.rbac.access import Requester
from hub.spawnenv import server_env
from spawners.base import Spawner

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

    def factory(ref: ServerRef) -> Spawner:
        return cls(  # type: ignore[no-any-return]
            user_name=ref.user_name,
            server_name=ref.name,
            user_options=ref.user_options,
            config=config,
        )

    return factory


class SpawnFailed(AtriumError):
    status = 500
    default_message = "The server failed to start"


class StopFailed(AtriumError):
    status = 500
    default_message = "The server failed to stop"


NO_SPAWNER = "No spawner is configured on this hub (set c.Hub.spawner_class)"


@dataclass(frozen=True)
class SpawnLimits:
    concurrent: int = 100  # servers starting at once; 0: no limit
    active: int = 0  # servers running or pending; 0: no limit


@dataclass(frozen=True)
class SpawnTimeouts:
    # how long an API request waits before answering 202 and letting the work continue
    slow_spawn: float = 10.0
    slow_stop: float = 10.0


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
        self._work: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

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
        self, req: Requester, user_name: str, server_name: str, options: object
    ) -> Outcome:
        """Start a server: "ready" if it answered within `slow_spawn`, else "pending"."""
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
        async with self._admit:
            await self._check_limits()
            ref = await self.db.run(
                server_ops.begin_spawn, self.ctx, req, user_name, server_name, options
            )
            self._spawning.add(ref.id)
        try:
            spawner = self._spawner_for(ref)
            token = await self.db.run(credentials.issue, self.ctx, ref.id)
        except Exception as e:
            self._spawning.discard(ref.id)
            await self._mark_stopped(ref.id, ref.state, failure=str(e))
            raise
        spawner.env = server_env(
            self.ctx, self.hub_url, ref.user_name, ref.name, token, spawner.default_url
        )
        server_id = ref.id

        async def save_state(state: dict[str, Any]) -> None:
            await self.db.run(server_ops.save_state, server_id, state)

        spawner.save_state = save_state
        task = self._own(ref.id, self._spawn(ref, spawner))

        def spawn_over(_task: asyncio.Task[None]) -> None:
            self._spawning.discard(server_id)

        task.add_done_callback(spawn_over)
        done, _ = await asyncio.wait({task}, timeout=self.timeouts.slow_spawn)
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

    async def _poll(self, ref: ServerRef) -> int | None:
        try:
            return await self._spawner_for(ref).poll()
        except Exception:
            log.warning("Polling %s failed", ref.log_name, exc_info=True)
            return 0

    async def _notice_exit(self, ref: ServerRef) -> None:
        """A server recorded as running whose process has exited is marked stopped, so
        that it can be started again (JupyterHub polls before answering 'already running')."""
        status = await self._poll(ref)
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

    async def _spawn(self, ref: ServerRef, spawner: Spawner) -> None:
        try:
            url = await asyncio.wait_for(spawner.start(), timeout=spawner.start_timeout)
        except asyncio.CancelledError:
            log.info("Spawn of %s cancelled", ref.log_name)
            await self._cleanup_failed(ref, spawner, "The start was cancelled")
            raise
        except TimeoutError:
            message = f"Server did not start within {spawner.start_timeout:g} seconds"
            log.warning("Spawn of %s failed: %s", ref.log_name, message)
            await self._cleanup_failed(ref, spawner, message)
            raise SpawnFailed(message) from None
        except Exception as e:
            log.error("Spawn of %s failed: %s", ref.log_name, e, exc_info=True)
            message = f"The server failed to start: {e}"[:500]
            await self._cleanup_failed(ref, spawner, message)
            raise SpawnFailed(message) from None
        if self.routes is None:
            await self.db.run(server_ops.spawn_succeeded, ref.id, url, spawner.get_state())
        else:
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
            await self._cleanup_failed(ref, spawner, "The start was cancelled")
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

    async def _reroute(self, ref: ServerRef) -> None:
        """Put back the route of a server that failed to stop (so still runs)."""
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
            if remove:
                await self.db.run(server_ops.remove_stopped, actor, ref)
            return "stopped"
        if not ref.started and not ref.pending:
            if remove:
                await self.db.run(server_ops.remove_stopped, actor, ref)
            return "stopped"
        await self.db.run(server_ops.begin_stop, ref.id)
        task = self._own(ref.id, self._stop(ref, remove))
        done, _ = await asyncio.wait({task}, timeout=self.timeouts.slow_stop)
        if done:
            task.result()  # raises StopFailed
            return "stopped"
        return "pending"

    async def _stop(self, ref: ServerRef, remove: bool) -> None:
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
                await self._reroute(ref)
                raise StopFailed(f"The server failed to stop: {e}"[:500]) from None
            spawner.clear_state()
            state = spawner.get_state()
        self.spawners.pop(ref.id, None)
        await asyncio.shield(self._mark_stopped(ref.id, state, remove=remove))
        log.info("Server %s stopped", ref.log_name)

    async def delete_user(self, req: Requester, user_name: str) -> None:
        """Delete a user, stopping their servers first (as JupyterHub does)."""
        await self.db.run(user_ops.check_delete, req, user_name)
        refs = await self.db.run(server_ops.active_servers, user_name)
        outcomes = await asyncio.gather(*(self._stop_ref(ref, False, req.name) for ref in refs))
        if "pending" in outcomes:
            raise BadRequest(f"{user_name}'s server is in the process of stopping, please wait")
        await self.db.run(user_ops.delete_user, req, user_name)

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
        """Cancel in-flight work and wait for it (servers themselves keep running)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
