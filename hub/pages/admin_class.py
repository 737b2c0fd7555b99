"""A class's servers, from its group page: `/hub/admin/groups/<name>/servers`.

POST `action=start` asks the orchestrator (`hub.spawn`) to start the default
server of every member, a few at a time, without waiting for them to answer;
`action=stop` stops the running ones. Each is the same start or stop as the
REST API's, with the requester's own permissions. The outcome per member goes
back as the page's flash (a form) or as JSON (the page's script); either way the
action is recorded in the audit log as `group.start_servers` / `group.stop_servers`.

GET answers JSON: every member's server state (ready, starting, stopping,
stopped, or failed with the reason), which the group page's script polls while
servers are on their way, so the page follows them without reloading.

Also here, shared with `hub.pages.admin_groups`: the group lookup and the query
of members with their default server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.db.models import Group, Server, User, user_group_map
from hub.errors import AtriumError, BadRequest, Forbidden, NotFound
from hub.log import bounded
from hub.ops import audit
from hub.pages.admin_panel import AdminPage, Pager, clamp_page, finish_json, wants_json
from hub.rbac.access import Requester
from hub.rbac.scopes import ALL

log = logging.getLogger("hub.pages")

MEMBERS_PER_PAGE = 100
# starts handed to the orchestrator at once (each returns as soon as the start is
# under way); stops at once (each waits up to the orchestrator's slow_stop)
START_CONCURRENCY = 8
STOP_CONCURRENCY = 16
STATES = ("ready", "starting", "stopping", "stopped", "failed")


def group_url(base_url: str, name: str, tail: str = "") -> str:
    return f"{base_url}hub/admin/groups/{quote(name, safe='')}{tail}"


@dataclass(frozen=True)
class Member:
    name: str
    full_name: str
    email: str
    # the default server's state (one of STATES); "" when the requester may not read it
    state: str
    message: str


def server_state(row: Any) -> tuple[str, str]:
    """(state, message) of a default server from a row with its id, pending, started
    and failure (id None: the user never had one)."""
    if row.id is None:
        return "stopped", ""
    if row.pending == "spawn":
        return "starting", ""
    if row.pending == "stop":
        return "stopping", ""
    if row.started is not None:
        return "ready", ""
    if row.failure:
        return "failed", str(row.failure)
    return "stopped", ""


def find_group(session: Session, req: Requester, name: str) -> Group:
    """The group if `req` may read it and its members; 404 otherwise."""
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None or not req.allows("read:groups", group=name):
        raise NotFound(f"No such group: {bounded(name, 64)}")
    return group


def members_page(
    session: Session, req: Requester, name: str, page: int | None
) -> tuple[dict[str, Any], list[Member], Pager]:
    """The group (name, properties, member count) and a page of its members by name,
    each with their default server's state; every member when `page` is None."""
    group = find_group(session, req, name)
    total = (
        session.scalar(
            select(func.count())
            .select_from(user_group_map)
            .where(user_group_map.c.group_id == group.id)
        )
        or 0
    )
    per_page = MEMBERS_PER_PAGE if page is not None else max(total, 1)
    pager = clamp_page(page or 1, per_page, total)
    rows = session.execute(
        select(
            User.name,
            User.full_name,
            User.email,
            Server.id,
            Server.pending,
            Server.started,
            Server.failure,
        )
        .join(user_group_map, user_group_map.c.user_id == User.id)
        .outerjoin(Server, (Server.user_id == User.id) & (Server.name == ""))
        .where(user_group_map.c.group_id == group.id)
        .order_by(User.name)
        .offset(pager.offset)
        .limit(pager.per_page)
    ).all()
    all_servers = req.parsed.get("read:servers") == ALL
    members = []
    for r in rows:
        # a `!group=` filter on this very group is enough to read its members' servers
        readable = all_servers or req.allows("read:servers", user=r.name, user_groups=[name])
        state, message = server_state(r) if readable else ("", "")
        members.append(Member(r.name, r.full_name, r.email, state, message))
    info = {"name": group.name, "properties": dict(group.properties or {}), "members": total}
    return info, members, pager


def count_states(members: list[Member]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for m in members:
        if m.state in counts:
            counts[m.state] += 1
    return counts


def _record(session: Session, actor: str, action: str, group: str, users: list[str]) -> None:
    audit.record(session, actor, action, group, users=users)


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    text: str


async def _bounded(
    names: list[str], limit: int, act: Callable[[str], Awaitable[Outcome]]
) -> list[Outcome]:
    """`act` on every name, at most `limit` at a time, in the order of `names`."""
    gate = asyncio.Semaphore(limit)

    async def one(name: str) -> Outcome:
        async with gate:
            try:
                return await act(name)
            except AtriumError as e:
                return Outcome(name, False, e.message)
            except Exception:
                log.exception("Admin action on the server of %s failed", bounded(name, 64))
                return Outcome(name, False, "the hub could not do it (see the hub's log)")

    return list(await asyncio.gather(*(one(n) for n in names)))


class GroupServersPage(AdminPage):
    """`/hub/admin/groups/<name>/servers`: start or stop a class's servers; their states."""

    admin_tab = "groups"

    def require_login(self) -> Requester:
        """The page's script gets a JSON 403, not the login page, once the login is gone."""
        if self.requester is None and wants_json(self):
            raise Forbidden("You are no longer logged in; reload the page to log in again.")
        return super().require_login()

    async def get(self, name: str) -> None:
        req = self.require_admin()
        info, members, _pager = await self.db.run(members_page, req, name, self._page())
        finish_json(
            self,
            {
                "group": info["name"],
                "members": [asdict(m) for m in members],
                "counts": count_states(members),
            },
        )

    def _page(self) -> int | None:
        return self.page_number() if self.get_query_argument("page", None) else None

    async def post(self, name: str) -> None:
        req = self.require_admin()
        action = self.get_body_argument("action", "")
        if action not in ("start", "stop"):
            raise BadRequest("Unknown action; reload the page and try again.")
        _info, members, _pager = await self.db.run(members_page, req, name, None)
        if action == "start":
            outcomes = await self._start(req, members)
        else:
            outcomes = await self._stop(req, members)
        acted = [o.name for o in outcomes if o.ok]
        await self.db.run(_record, req.name, f"group.{action}_servers", name, acted)
        failed = sum(1 for o in outcomes if not o.ok)
        verb = "Starting" if action == "start" else "Stopping"
        summary = f"{verb} the servers of {len(acted)} of {len(members)} members of {name}."
        if not members:
            summary = f"{name} has no members."
        if wants_json(self):
            finish_json(self, {"summary": summary, "outcomes": [asdict(o) for o in outcomes]})
            return
        self.done(
            group_url(self.ctx.base_url, name),
            "error" if failed else "ok",
            summary,
            [f"{o.name}: {o.text}" for o in outcomes],
        )

    async def _start(self, req: Requester, members: list[Member]) -> list[Outcome]:
        orchestrator = self.hub.orchestrator
        skip = {"ready": "already running", "starting": "already starting"}
        outcomes = {
            m.name: Outcome(m.name, False, skip[m.state]) for m in members if m.state in skip
        }

        async def start(name: str) -> Outcome:
            await orchestrator.start(req, name, "", None, wait=0)
            return Outcome(name, True, "starting")

        todo = [m.name for m in members if m.name not in outcomes]
        for o in await _bounded(todo, START_CONCURRENCY, start):
            outcomes[o.name] = o
        return [outcomes[m.name] for m in members]

    async def _stop(self, req: Requester, members: list[Member]) -> list[Outcome]:
        orchestrator = self.hub.orchestrator
        outcomes = {
            m.name: Outcome(m.name, False, "not running")
            for m in members
            if m.state in ("stopped", "failed")
        }

        async def stop(name: str) -> Outcome:
            result = await orchestrator.stop(req, name, "")
            return Outcome(name, True, "stopped" if result == "stopped" else "stopping")

        todo = [m.name for m in members if m.name not in outcomes]
        for o in await _bounded(todo, STOP_CONCURRENCY, stop):
            outcomes[o.name] = o
        return [outcomes[m.name] for m in members]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The page's script asks for JSON and gets its errors as JSON too."""
        if not wants_json(self):
            super().write_error(status_code, **kwargs)
            return
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.message if isinstance(exc, AtriumError) else self._reason
        finish_json(self, {"status": status_code, "message": message}, status_code)
