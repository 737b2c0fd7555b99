"""Idle culling, built into the hub (`c.Culler.*`).

Every `every` seconds the culler
1. takes the proxy's view of activity: each server route's `last_activity` (the
   proxy sees every request and websocket message) moves the server's and its
   user's last activity forward, as JupyterHub does;
2. stops running servers idle longer than their timeout (`timeout`, or the
   longest `group_timeouts` entry of the user's groups, e.g. longer for teaching
   assistants), and, with `max_age`, servers running longer than that whatever
   they do; at most `concurrency` stops at once;
3. with `users`, deletes users idle as long who have no server running or
   starting (never admins), as `jupyterhub-idle-culler --cull-users` does.

A server's activity is the latest of what the proxy saw and what the server
reported (`atrium-singleuser` counts a kernel that is busy as active now, and
open terminals and API use); a server that never reported any counts from its
start. Inside each server, `kernel_timeout` culls idle kernels (set in the
server's environment, see `hub.spawnenv`). Stops and deletions are in the audit
log as done by `atrium-culler`. The external `jupyterhub-idle-culler` keeps
working: it uses only the REST API.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from traitlets import Bool, Dict, Integer, TraitError, validate
from traitlets.config import Configurable

from hub.background import Background
from hub.ops import servers as server_ops
from hub.timeutil import utcnow

if TYPE_CHECKING:
    from hub.state import HubState

log = logging.getLogger("atrium.culler")

ACTOR = "atrium-culler"


class Culler(Configurable):
    """Stop idle servers (and, optionally, remove idle users)."""

    enabled = Bool(
        False, help="Stop servers nobody has used for `timeout` seconds (checked every `every`)."
    ).tag(config=True)
    timeout = Integer(
        3600,
        help="Seconds without activity (requests or websocket messages through the proxy, "
        "busy kernels, terminals, API use reported by the server) before a server is stopped.",
    ).tag(config=True)
    every = Integer(
        0, help="Seconds between checks; 0 means half of the shortest timeout, at most 600."
    ).tag(config=True)
    max_age = Integer(
        0,
        help="Seconds after which a server is stopped even if it is in use; 0 means never.",
    ).tag(config=True)
    users = Bool(
        False,
        help="Also delete users (not admins) who have no server running and have been idle "
        "for `timeout` seconds: for workshops with throwaway accounts.",
    ).tag(config=True)
    concurrency = Integer(10, help="Servers stopped at the same time, at most.").tag(config=True)
    group_timeouts = Dict(
        value_trait=Integer(),
        default_value={},
        help="Idle timeouts per group, e.g. {'teaching-assistants': 14400}; a user in several "
        "of these groups gets the longest, and never less than `timeout`.",
    ).tag(config=True)
    kernel_timeout = Integer(
        0,
        help="Inside each server, shut down kernels idle (not busy, no output) this many "
        "seconds; 0 leaves kernels alone. Set in servers started from then on.",
    ).tag(config=True)

    @validate("timeout", "max_age", "every", "kernel_timeout")
    def _not_negative(self, proposal: Any) -> int:
        value = int(proposal["value"])
        name = proposal["trait"].name
        if value < 0:
            raise TraitError(f"c.Culler.{name} must be 0 or more seconds, not {value}")
        if name == "timeout" and value < 1:
            raise TraitError(f"c.Culler.timeout must be at least 1 second, not {value}")
        return value

    @validate("concurrency")
    def _positive(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"c.Culler.concurrency must be 1 or more, not {value}")
        return value

    @validate("group_timeouts")
    def _group_timeouts(self, proposal: Any) -> dict[str, int]:
        value: dict[str, int] = dict(proposal["value"])
        for group, seconds in value.items():
            if not isinstance(group, str) or not group:
                raise TraitError("c.Culler.group_timeouts: group names must be non-empty text")
            if seconds < 1:
                raise TraitError(
                    f"c.Culler.group_timeouts[{group!r}] must be at least 1 second, not {seconds}"
                )
        return value

    def policy(self) -> CullPolicy | None:
        """What the hub's culler does; None when culling is off."""
        if not self.enabled:
            return None
        shortest = min([self.timeout, *self.group_timeouts.values()])
        every = self.every or min(600, max(1, shortest // 2))
        return CullPolicy(
            timeout=self.timeout,
            every=every,
            max_age=self.max_age,
            users=self.users,
            concurrency=self.concurrency,
            group_timeouts=dict(self.group_timeouts),
        )


@dataclass(frozen=True)
class CullPolicy:
    timeout: int
    every: float
    max_age: int = 0
    users: bool = False
    concurrency: int = 10
    group_timeouts: dict[str, int] = field(default_factory=dict)

    def timeout_for(self, groups: frozenset[str]) -> int:
        return max([self.timeout, *(self.group_timeouts.get(g, 0) for g in groups)])


@dataclass
class CullReport:
    """What one pass did: server log names stopped, by reason, and users deleted."""

    idle: list[str] = field(default_factory=list)
    too_old: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class CullerTask(Background):
    """The hub's culler: `start()` once the hub is up; `stop()` at shutdown."""

    def __init__(self, state: HubState, policy: CullPolicy) -> None:
        self.state = state
        self.policy = policy

    def start(self) -> None:
        log.info(
            "Culling servers idle for %d s (checked every %g s)%s",
            self.policy.timeout,
            self.policy.every,
            f", and servers older than {self.policy.max_age} s" if self.policy.max_age else "",
        )
        super().start()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.every)
            try:
                await cull_once(self.state, self.policy)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the next pass tries again
                log.warning("Culling failed: %s", e, exc_info=True)


async def cull_once(
    state: HubState, policy: CullPolicy, now: datetime.datetime | None = None
) -> CullReport:
    """One pass (see the module's docstring)."""
    report = CullReport()
    if state.proxy is not None:
        await _take_proxy_activity(state)
    now = now or utcnow()
    candidates = await state.db.run(server_ops.cull_candidates, policy, now)
    limit = asyncio.Semaphore(policy.concurrency)

    async def stop(ref: server_ops.ServerRef, reason: str) -> None:
        async with limit:
            try:
                await state.orchestrator.cull(ref, reason, ACTOR)
            except Exception as e:
                log.warning("Culling %s failed: %s", ref.log_name, e)
                report.failed.append(ref.log_name)
                return
        (report.idle if reason == "idle" else report.too_old).append(ref.log_name)

    await asyncio.gather(*(stop(ref, reason) for ref, reason in candidates))
    if policy.users:
        for name in await state.db.run(server_ops.idle_users, policy, now):
            try:
                await state.orchestrator.cull_user(name, ACTOR)
            except Exception as e:
                log.warning("Removing idle user %s failed: %s", name, e)
                report.failed.append(name)
            else:
                report.users.append(name)
    if report.idle or report.too_old or report.users:
        log.info(
            "Culled %d idle and %d too old servers, removed %d idle users",
            len(report.idle),
            len(report.too_old),
            len(report.users),
        )
    return report


async def _take_proxy_activity(state: HubState) -> None:
    """The proxy's last activity per server route, into the database (forward only)."""
    assert state.proxy is not None
    try:
        routes = await state.proxy.route_activity()
    except Exception as e:
        # the culler goes on with what servers reported; the proxy check will restart it
        log.warning("Could not read activity from the proxy: %s", e)
        return
    if routes:
        await state.db.run(server_ops.note_activity, routes)
