"""Server rows: the database side of starting, stopping and renaming servers.

`hub.spawn` drives the spawners and calls these to move a server through its
states: stopped -> pending 'spawn' -> running -> pending 'stop' -> stopped.
A stopped named server may be renamed (`rename`); `own_servers` is what a
person's home page (`hub.pages.home`) shows of their servers.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.db.models import Group, Server, User, user_group_map
from hub.errors import BadRequest, Conflict, NotFound
from hub.log import bounded
from hub.names import validate_server_name
from hub.ops import audit, credentials
from hub.ops.context import HubContext
from hub.ops.models import server_model
from hub.rbac.access import Requester
from hub.timeutil import utcnow

MAX_USER_OPTIONS_KEYS = 100


@dataclass(frozen=True)
class ServerRef:
    """Plain-data handle on a server row, passed between units of work."""

    id: int
    user_id: int
    user_name: str
    name: str
    state: dict[str, Any]
    user_options: dict[str, Any]
    pending: str | None
    started: bool
    url: str | None
    # why its last start failed or it stopped unexpectedly; None after a clean stop
    failure: str | None = None

    @property
    def log_name(self) -> str:
        return f"{self.user_name}/{self.name}" if self.name else self.user_name


def _ref(server: Server, user_name: str) -> ServerRef:
    return ServerRef(
        server.id,
        server.user_id,
        user_name,
        server.name,
        dict(server.state or {}),
        dict(server.user_options or {}),
        server.pending,
        server.started is not None,
        server.url,
        server.failure,
    )


def _check_options(options: object) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise BadRequest("user options must be a JSON object")
    if len(options) > MAX_USER_OPTIONS_KEYS:
        raise BadRequest(f"at most {MAX_USER_OPTIONS_KEYS} user options")
    return options


def server_owner(
    session: Session, req: Requester, user_name: str, server_name: str, scope: str
) -> User:
    """The owner of `user_name/server_name` if `req` holds `scope` for that server
    (through a user, group or server filter); otherwise 404, whether or not it exists."""
    user = session.scalar(select(User).where(User.name == user_name))
    if user is None:
        raise NotFound(f"No such user: {bounded(user_name, 64)}")
    groups = [g.name for g in user.groups]
    if not req.allows(scope, server=f"{user_name}/{server_name}", user_groups=groups):
        if req.allows("read:users:name", user=user_name, user_groups=groups):
            raise NotFound(f"No such server: {bounded(user_name, 64)}/{bounded(server_name, 64)}")
        raise NotFound(f"No such user: {bounded(user_name, 64)}")
    return user


def lookup(
    session: Session, req: Requester, user_name: str, server_name: str, scope: str
) -> ServerRef | None:
    """The server if it exists; 404 if `req` does not hold `scope` for it."""
    user = server_owner(session, req, user_name, server_name, scope)
    server = session.scalar(
        select(Server).where(Server.user_id == user.id, Server.name == server_name)
    )
    return _ref(server, user.name) if server is not None else None


def begin_spawn(
    session: Session,
    ctx: HubContext,
    req: Requester,
    user_name: str,
    server_name: str,
    options: object,
) -> ServerRef:
    """Mark a server pending spawn, creating its row if needed."""
    server_name = validate_server_name(server_name)
    if server_name and not ctx.allow_named_servers:
        raise BadRequest("Named servers are not enabled on this hub")
    opts = _check_options(options)
    user = server_owner(session, req, user_name, server_name, "start:servers")
    if user.blocked:
        raise BadRequest(f"User {user.name} is blocked")
    server = session.scalar(
        select(Server).where(Server.user_id == user.id, Server.name == server_name)
    )
    if server is None:
        limit = ctx.named_server_limit_per_user
        if server_name and limit and _named_server_count(session, user.id) >= limit:
            raise BadRequest(f"User {user.name} already has the maximum of {limit} named servers")
        server = Server(user_id=user.id, name=server_name, state={}, user_options={})
        session.add(server)
    elif server.pending:
        raise BadRequest(f"{_ref(server, user.name).log_name} is pending {server.pending}")
    elif server.started is not None:
        raise BadRequest(f"{_ref(server, user.name).log_name} is already running")
    server.pending = "spawn"
    server.pending_since = utcnow()
    server.user_options = opts
    server.failure = None
    session.flush()
    audit.record(session, req.name, "server.start", _ref(server, user.name).log_name)
    return _ref(server, user.name)


def spawn_succeeded(session: Session, server_id: int, url: str, state: dict[str, Any]) -> None:
    server = session.get(Server, server_id)
    if server is None:
        return
    now = utcnow()
    server.url = url
    server.state = state
    server.started = now
    server.pending = None
    server.pending_since = None
    server.last_activity = now
    user = session.get(User, server.user_id)
    if user is not None and (user.last_activity is None or user.last_activity < now):
        user.last_activity = now


def save_state(session: Session, server_id: int, state: dict[str, Any]) -> None:
    """Keep a spawner's state while its server starts, so a hub killed mid-spawn can
    find (and end) the process when it comes back."""
    server = session.get(Server, server_id)
    if server is not None and server.pending == "spawn":
        server.state = state


def mark_stopped(
    session: Session,
    server_id: int,
    state: dict[str, Any],
    failure: str | None = None,
    remove: bool = False,
) -> None:
    server = session.get(Server, server_id)
    if server is None:
        return
    credentials.revoke(session, server_id)  # its token and OAuth client open nothing now
    if remove and server.name:
        session.delete(server)
        return
    server.url = None
    server.started = None
    server.pending = None
    server.pending_since = None
    server.state = state
    if failure is not None:
        server.failure = failure


def mark_running(session: Session, server_id: int) -> None:
    """A stop that failed: the server is not pending any more, and still as it was."""
    server = session.get(Server, server_id)
    if server is not None:
        server.pending = None
        server.pending_since = None


def begin_stop(session: Session, actor: str, ref: ServerRef) -> None:
    server = session.get(Server, ref.id)
    if server is not None:
        server.pending = "stop"
        server.pending_since = utcnow()
        audit.record(session, actor, "server.stop", ref.log_name)


def record_stop(session: Session, actor: str, ref: ServerRef) -> None:
    """A start cancelled by a stop request: in the audit log as a stop."""
    audit.record(session, actor, "server.stop", ref.log_name, cancelled_start=True)


def remove_stopped(session: Session, actor: str, ref: ServerRef) -> None:
    server = session.get(Server, ref.id)
    if server is not None and server.name:
        session.delete(server)
        audit.record(session, actor, "server.delete", ref.log_name)


def default_server(session: Session, user_name: str) -> ServerRef | None:
    """A user's default server, if it has a row (for the hub's own use: no checks)."""
    server = session.scalar(
        select(Server).join(User).where(User.name == user_name, Server.name == "")
    )
    return _ref(server, user_name) if server is not None else None


def active_servers(session: Session, user_name: str) -> list[ServerRef]:
    """A user's servers that are running or pending (for the hub's own use: no checks)."""
    rows = session.scalars(
        select(Server)
        .join(User)
        .where(User.name == user_name)
        .where(or_(Server.started.is_not(None), Server.pending.is_not(None)))
    ).all()
    return [_ref(server, user_name) for server in rows]


def user_servers(session: Session, user_name: str) -> list[ServerRef]:
    """All of a user's servers, running or not (for the hub's own use: no checks)."""
    rows = session.scalars(select(Server).join(User).where(User.name == user_name)).all()
    return [_ref(server, user_name) for server in rows]


def note_activity(session: Session, stamps: list[tuple[str, str, datetime.datetime]]) -> None:
    """Move servers' and their users' last activity forward (never back) to what the proxy
    saw: `stamps` are (user, server name, when); unknown servers are skipped."""
    if not stamps:
        return
    names = sorted({user for user, _, _ in stamps})
    rows = session.execute(select(Server, User).join(User).where(User.name.in_(names))).all()
    found = {(user.name, server.name): (server, user) for server, user in rows}
    for user_name, server_name, when in stamps:
        pair = found.get((user_name, server_name))
        if pair is None:
            continue
        server, user = pair
        if server.last_activity is None or when > server.last_activity:
            server.last_activity = when
        if user.last_activity is None or when > user.last_activity:
            user.last_activity = when


class CullRules(Protocol):
    """What the culler's choices need of its policy (`hub.culler.CullPolicy`)."""

    @property
    def max_age(self) -> int: ...

    def timeout_for(self, groups: frozenset[str]) -> int: ...


def _groups_of(session: Session, user_ids: set[int]) -> dict[int, frozenset[str]]:
    if not user_ids:
        return {}
    pairs = session.execute(
        select(user_group_map.c.user_id, Group.name)
        .join(Group, Group.id == user_group_map.c.group_id)
        .where(user_group_map.c.user_id.in_(sorted(user_ids)))
    ).all()
    groups: dict[int, set[str]] = {}
    for user_id, name in pairs:
        groups.setdefault(user_id, set()).add(name)
    return {user_id: frozenset(names) for user_id, names in groups.items()}


def cull_candidates(
    session: Session, rules: CullRules, now: datetime.datetime
) -> list[tuple[ServerRef, str]]:
    """Running servers (not starting or stopping) to stop: idle longer than their user's
    timeout ("idle"; activity counts from the start at the earliest), or, with max_age,
    running longer than that ("age")."""
    rows = session.execute(
        select(Server, User.name)
        .join(User)
        .where(Server.started.is_not(None), Server.pending.is_(None))
    ).all()
    groups = _groups_of(session, {server.user_id for server, _ in rows})
    chosen = []
    for server, user_name in rows:
        started = server.started
        assert started is not None
        last = max(started, server.last_activity or started)
        timeout = rules.timeout_for(groups.get(server.user_id, frozenset()))
        if now - last > datetime.timedelta(seconds=timeout):
            chosen.append((_ref(server, user_name), "idle"))
        elif rules.max_age and now - started > datetime.timedelta(seconds=rules.max_age):
            chosen.append((_ref(server, user_name), "age"))
    return chosen


def idle_users(session: Session, rules: CullRules, now: datetime.datetime) -> list[str]:
    """Users (not admins) with no server running or pending, idle (since their last
    activity, or their creation) longer than their timeout."""
    busy = select(Server.user_id).where(
        or_(Server.started.is_not(None), Server.pending.is_not(None))
    )
    users = session.scalars(
        select(User).where(User.admin.is_(False), User.id.not_in(busy)).order_by(User.name)
    ).all()
    groups = _groups_of(session, {user.id for user in users})
    names = []
    for user in users:
        last = user.last_activity or user.created
        timeout = rules.timeout_for(groups.get(user.id, frozenset()))
        if now - last > datetime.timedelta(seconds=timeout):
            names.append(user.name)
    return names


def recorded_servers(session: Session) -> list[ServerRef]:
    """Every server recorded as running, starting or stopping, over all users (what a
    hub coming up must adopt)."""
    rows = session.execute(
        select(Server, User.name)
        .join(User)
        .where(or_(Server.started.is_not(None), Server.pending.is_not(None)))
    ).all()
    return [_ref(server, name) for server, name in rows]


def running_servers(session: Session) -> list[ServerRef]:
    rows = session.execute(
        select(Server, User.name).join(User).where(Server.started.is_not(None))
    ).all()
    return [_ref(server, name) for server, name in rows]


def active_count(session: Session) -> int:
    """Servers running or on their way up or down, over all users."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Server)
            .where(or_(Server.started.is_not(None), Server.pending.is_not(None)))
        )
        or 0
    )


def _named_server_count(session: Session, user_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Server)
            .where(Server.user_id == user_id, Server.name != "")
        )
        or 0
    )


def rename(
    session: Session,
    ctx: HubContext,
    req: Requester,
    user_name: str,
    server_name: str,
    body: dict[str, Any],
) -> dict[str, Any]:
    """Rename a stopped named server (`{"name": "new"}`); returns its model.

    Only a stopped server: a running one's URL, proxy route and OAuth client carry its
    name. The new name follows the rules of `hub.names` and is unique per user.
    """
    if not ctx.allow_named_servers:
        raise BadRequest("Named servers are not enabled on this hub")
    if not server_name:
        raise BadRequest("The default server has no name to change")
    user = server_owner(session, req, user_name, server_name, "servers")
    unknown = set(body) - {"name"}
    if unknown:
        raise BadRequest("the only field accepted here is name")
    if "name" not in body:
        raise BadRequest('Send the new name as {"name": "..."}')
    if body["name"] == "":
        raise BadRequest("The new name must not be empty")
    new_name = validate_server_name(body["name"])
    server = session.scalar(
        select(Server)
        .where(Server.user_id == user.id, Server.name == server_name)
        .with_for_update()
    )
    if server is None:
        raise NotFound(f"{user.name} has no server named {bounded(server_name, 64)}")
    old = _ref(server, user.name)
    if server.pending or server.started is not None:
        state = {"spawn": "starting", "stop": "stopping"}.get(server.pending or "", "running")
        raise Conflict(
            f"{old.log_name} is {state}; stop it before renaming it (its address carries its name)"
        )
    if new_name != server.name:
        taken = session.scalar(
            select(Server.id).where(Server.user_id == user.id, Server.name == new_name)
        )
        if taken is not None:
            raise Conflict(f"{user.name} already has a server named {new_name}")
        server.name = new_name
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"{user.name} already has a server named {new_name}") from None
        audit.record(session, req.name, "server.rename", old.log_name, to=f"{user.name}/{new_name}")
    return server_model(ctx, req, user.name, server, [g.name for g in user.groups])


@dataclass(frozen=True)
class ServerStatus:
    """One of a person's servers as their home page shows it."""

    name: str
    state: str  # 'ready', 'spawn', 'stop' or 'stopped'
    started: datetime.datetime | None
    last_activity: datetime.datetime | None
    failure: str | None


def own_servers(session: Session, user_id: int) -> list[ServerStatus]:
    """Every server row of a user, the default one first, then by name."""
    rows = session.scalars(
        select(Server).where(Server.user_id == user_id).order_by(Server.name)
    ).all()
    return [
        ServerStatus(
            name=row.name,
            state=row.pending or ("ready" if row.started is not None else "stopped"),
            started=row.started,
            last_activity=row.last_activity,
            failure=row.failure if row.pending is None and row.started is None else None,
        )
        for row in rows
    ]


def check_new_named_server(session: Session, ctx: HubContext, user_id: int, name: str) -> str:
    """Whether a person may create a named server called `name` now; the valid name, or
    BadRequest/Conflict saying why not (the name, the limit, or a server so called)."""
    if not ctx.allow_named_servers:
        raise BadRequest("Named servers are not enabled on this hub")
    if name == "":
        raise BadRequest("Give the new server a name")
    name = validate_server_name(name)
    exists = session.scalar(select(Server.id).where(Server.user_id == user_id, Server.name == name))
    if exists is not None:
        raise Conflict(f"You already have a server named {name}")
    limit = ctx.named_server_limit_per_user
    if limit and _named_server_count(session, user_id) >= limit:
        raise BadRequest(
            f"You already have the most named servers this hub allows ({limit}); delete one "
            "to make room"
        )
    return name
