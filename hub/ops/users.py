"""Users: list, read, create, modify, delete, record activity."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, delete, exists, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.auth.passwords import PasswordRules, check_new_password
from hub.db.models import APIToken, Group, OAuthCode, Server, User
from hub.errors import BadRequest, Conflict, Forbidden, NotFound
from hub.log import bounded
from hub.names import validate_username
from hub.ops import audit, queries
from hub.ops.context import HubContext
from hub.ops.models import VisibleKeys, user_model
from hub.rbac.access import Requester
from hub.secrets_hash import hash_password
from hub.timeutil import parse_timestamp, utcnow

StateFilter = Literal["active", "ready", "inactive"] | None
# "server": running servers first, then starting or stopping ones, then the rest
SORT_KEYS = ("id", "name", "last_activity", "server")
# activity reported this far ahead of our clock is refused, as JupyterHub does: a bad
# clock must not pin a user as active (and so never culled) forever
MAX_ACTIVITY_AHEAD = datetime.timedelta(minutes=59)


@dataclass(frozen=True)
class UserQuery:
    offset: int = 0
    limit: int = 200
    state: StateFilter = None
    name_filter: str | None = None
    sort: str = "id"
    descending: bool = False
    include_stopped: bool = False
    count: bool = False


def new_cookie_id() -> str:
    import secrets

    return secrets.token_hex(16)


def _active_server() -> ColumnElement[bool]:
    return exists().where(
        Server.user_id == User.id, or_(Server.started.is_not(None), Server.pending.is_not(None))
    )


def _ready_server() -> ColumnElement[bool]:
    return exists().where(
        Server.user_id == User.id, Server.started.is_not(None), Server.pending.is_(None)
    )


def _visibility(req: Requester) -> ColumnElement[bool] | None:
    """SQL condition for the users `req` may list; None means all."""
    everyone, names, groups = req.user_filter("list:users")
    if everyone:
        return None
    conditions: list[ColumnElement[bool]] = []
    if names:
        conditions.append(User.name.in_(names))
    if groups:
        conditions.append(User.groups.any(Group.name.in_(groups)))
    if not conditions:
        raise Forbidden("Not allowed to list users")
    return or_(*conditions)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _models(
    session: Session,
    ctx: HubContext,
    req: Requester,
    rows: Sequence[Any],
    include_stopped: bool,
) -> list[dict[str, Any]]:
    """User models for `rows` (id, name, admin, created, last_activity), in 2 queries."""
    conn = session.connection()
    ids = [r.id for r in rows]
    members = queries.memberships(conn, ids)
    servers = queries.servers_of(conn, ids, include_stopped)
    plan = VisibleKeys.of(req)
    models = (
        _row_model(
            ctx,
            req,
            plan,
            r,
            groups=members[r.id].groups,
            roles=members[r.id].roles,
            servers=servers[r.id],
            include_stopped=include_stopped,
        )
        for r in rows
    )
    return [m for m in models if m]


def _row_model(
    ctx: HubContext,
    req: Requester,
    plan: VisibleKeys,
    row: Any,
    *,
    groups: list[str],
    roles: list[str],
    servers: list[Any],
    include_stopped: bool = False,
) -> dict[str, Any]:
    """The model of one user row (id, name, admin, created, last_activity)."""
    return user_model(
        ctx,
        req,
        name=row.name,
        admin=row.admin,
        created=row.created,
        last_activity=row.last_activity,
        blocked=row.blocked,
        full_name=row.full_name,
        email=row.email,
        groups=groups,
        assigned_roles=roles,
        servers=servers,
        include_stopped=include_stopped,
        plan=plan,
    )


def _order(sort: str, descending: bool) -> tuple[Any, ...]:
    """ORDER BY that an index can serve; NULL activity first going up, last going down."""
    if sort == "id":
        return (User.id.desc() if descending else User.id.asc(),)
    if sort == "name":
        return (User.name.desc() if descending else User.name.asc(),)
    if sort == "server":
        rank = case((_ready_server(), 0), (_active_server(), 1), else_=2)
        return (rank.desc() if descending else rank.asc(), User.name.asc())
    if descending:
        return (User.last_activity.desc().nulls_last(), User.id.asc())
    return (User.last_activity.asc().nulls_first(), User.id.asc())


def list_users(
    session: Session, ctx: HubContext, req: Requester, q: UserQuery
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of user models and, if `q.count`, how many match in all."""
    conditions: list[ColumnElement[bool]] = []
    visible = _visibility(req)
    if visible is not None:
        conditions.append(visible)
    if q.state == "active":
        conditions.append(_active_server())
    elif q.state == "ready":
        conditions.append(_ready_server())
    elif q.state == "inactive":
        conditions.append(~_active_server())
    if q.name_filter:
        conditions.append(User.name.ilike(f"%{_escape_like(q.name_filter)}%", escape="\\"))
    query = select(*queries.USER_COLUMNS).where(and_(True, *conditions))
    rows = session.execute(
        query.order_by(*_order(q.sort, q.descending)).offset(q.offset).limit(q.limit)
    ).all()
    total = None
    if q.count:
        total = session.scalar(
            select(func.count()).select_from(User).where(and_(True, *conditions))
        )
    return _models(session, ctx, req, rows, q.include_stopped), total


def _user_row(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No such user: {bounded(name, 64)}")
    return user


def find_visible_user(session: Session, req: Requester, name: str, scopes: Iterable[str]) -> User:
    """The user `name` if `req` holds one of `scopes` for it; otherwise 404."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No such user: {bounded(name, 64)}")
    groups = [g.name for g in user.groups]
    if not any(req.allows(s, user=name, user_groups=groups) for s in scopes):
        raise NotFound(f"No such user: {bounded(name, 64)}")
    return user


def get_user(
    session: Session, ctx: HubContext, req: Requester, name: str, include_stopped: bool = False
) -> dict[str, Any]:
    user = session.connection().execute(queries.USER_BY_NAME, {"name": name}).first()
    if user is None:
        raise NotFound(f"No such user: {bounded(name, 64)}")
    models = _models(session, ctx, req, [user], include_stopped)
    if not models:
        raise NotFound(f"No such user: {bounded(name, 64)}")
    return models[0]


def _check_admin_grant(req: Requester, admin: object) -> bool:
    if not isinstance(admin, bool):
        raise BadRequest("admin must be true or false")
    if admin and not req.is_full_admin():
        raise Forbidden("Only admins can grant admin permissions")
    return admin


def create_users(
    session: Session,
    ctx: HubContext,
    req: Requester,
    names: Sequence[object],
    admin: object = False,
    password: str | None = None,
    password_rules: PasswordRules | None = None,
) -> list[dict[str, Any]]:
    """Create users; all or nothing. Conflict if every one already exists. A `password`
    must pass the native password rules (`hub.auth.passwords`) for every name."""
    is_admin = _check_admin_grant(req, admin)
    valid: list[str] = []
    seen: set[str] = set()
    for raw in names:
        name = validate_username(raw)
        if name not in seen:
            seen.add(name)
            valid.append(name)
    if password:
        for name in valid:
            check_new_password(password, name, password_rules)
    existing = set(session.scalars(select(User.name).where(User.name.in_(valid))))
    to_create = [n for n in valid if n not in existing]
    if not to_create:
        if len(valid) == 1:
            raise Conflict(f"User {valid[0]} already exists")
        raise Conflict(f"All {len(valid)} users already exist")
    hashed = hash_password(password) if password else None
    now = utcnow()
    try:
        rows = session.execute(
            insert(queries.users).returning(*queries.USER_COLUMNS, sort_by_parameter_order=True),
            [
                {
                    "name": n,
                    "admin": is_admin,
                    "blocked": False,
                    "created": now,
                    "cookie_id": new_cookie_id(),
                    "password_hash": hashed,
                }
                for n in to_create
            ],
        ).all()
    except IntegrityError:
        raise Conflict("A user with that name was created at the same time") from None
    audit.record_many(session, req.name, "user.create", to_create, admin=is_admin)
    # new users have no groups, roles or servers yet: no need to read them back
    plan = VisibleKeys.of(req)
    models = (_row_model(ctx, req, plan, r, groups=[], roles=[], servers=[]) for r in rows)
    return [m for m in models if m]


PATCHABLE = {"name", "admin", "groups", "blocked"}


def _active_server_count(session: Session, user_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Server)
            .where(
                Server.user_id == user_id,
                or_(Server.started.is_not(None), Server.pending.is_not(None)),
            )
        )
        or 0
    )


def end_logins(session: Session, user: User, keep_session: str | None = None) -> None:
    """Log a user out everywhere: a new cookie id (every hub cookie stops working) and
    no more tokens or codes from their login sessions (open JupyterLab tabs lose
    access). Tokens made through the API stay (unusable while the user is blocked).
    `keep_session`: the login session (and its tokens) to spare; the caller gives that
    browser a cookie with the new id."""
    user.cookie_id = new_cookie_id()
    ended: ColumnElement[bool] = APIToken.session_id.is_not(None)
    if keep_session:
        ended = and_(ended, APIToken.session_id != keep_session)
    session.execute(delete(APIToken).where(APIToken.user_id == user.id, ended))
    session.execute(delete(OAuthCode).where(OAuthCode.user_id == user.id))


def update_user(
    session: Session, ctx: HubContext, req: Requester, name: str, patch: dict[str, Any]
) -> dict[str, Any]:
    """Change a user's name, admin flag, groups or blocked flag.

    Blocking (admins only, never oneself) ends the user's logins (`end_logins`);
    their tokens stop working because blocked users' credentials resolve to no one
    (`hub.ops.identity`). Their running servers are stopped by the caller, which
    has the orchestrator (`hub.api.users.patch_user`). A user with a server running
    or pending cannot be renamed: the server's URL, OAuth client and route carry
    the name.
    """
    unknown = set(patch) - PATCHABLE
    if unknown:
        raise BadRequest(
            f"unknown field(s): {', '.join(sorted(bounded(k, 32) for k in unknown))}; "
            f"allowed: {', '.join(sorted(PATCHABLE))}"
        )
    user = find_visible_user(session, req, name, ["admin:users"])
    if user.admin and not req.is_full_admin():
        raise Forbidden("Only admins can modify other admins")
    itself = req.kind == "user" and req.id == user.id
    changes: dict[str, Any] = {}
    if "admin" in patch:
        new_admin = _check_admin_grant(req, patch["admin"])
        if new_admin != user.admin:
            if not new_admin and itself:
                raise BadRequest("You cannot remove your own admin rights")
            changes["admin"] = new_admin
    blocked: bool | None = None
    if "blocked" in patch:
        value = patch["blocked"]
        if not isinstance(value, bool):
            raise BadRequest("blocked must be true or false")
        if value != user.blocked:
            if not req.is_full_admin():
                raise Forbidden("Only admins can block or unblock users")
            if value and itself:
                raise BadRequest("You cannot block yourself")
            blocked = value
    if "name" in patch:
        new_name = validate_username(patch["name"])
        if new_name != user.name:
            if session.scalar(select(User.id).where(User.name == new_name)) is not None:
                raise Conflict(f"User {new_name} already exists")
            if _active_server_count(session, user.id):
                raise Conflict(
                    f"{user.name} has a server running or starting; stop it before renaming "
                    "(its URL, OAuth client and proxy route carry the name)"
                )
            changes["name"] = new_name
    if "groups" in patch:
        ctx.check_membership_editable()
        wanted = patch["groups"]
        if not isinstance(wanted, list) or not all(isinstance(g, str) for g in wanted):
            raise BadRequest("groups must be a list of group names")
        found = list(session.scalars(select(Group).where(Group.name.in_(wanted))))
        missing = set(wanted) - {g.name for g in found}
        if missing:
            raise NotFound(
                f"No such group(s): {', '.join(sorted(bounded(m, 40) for m in missing))}"
            )
        if {g.name for g in found} != {g.name for g in user.groups}:
            changes["groups"] = sorted(g.name for g in found)
            user.groups = found
    for key in ("admin", "name"):
        if key in changes:
            setattr(user, key, changes[key])
    if changes:
        audit.record(session, req.name, "user.update", name, **changes)
    if blocked is not None:
        user.blocked = blocked
        if blocked:
            end_logins(session, user)
        audit.record(session, req.name, "user.block" if blocked else "user.unblock", user.name)
    session.flush()
    return get_user(session, ctx, req, user.name)


def _deletable(session: Session, req: Requester, name: str) -> User:
    user = find_visible_user(session, req, name, ["delete:users"])
    if req.kind == "user" and req.id == user.id:
        raise BadRequest("You cannot delete yourself")
    if user.admin and not req.is_full_admin():
        raise Forbidden("Only admins can delete admins")
    return user


def check_delete(session: Session, req: Requester, name: str) -> None:
    """Raise unless `req` may delete `name`: 404, 400 (yourself) or 403 (an admin)."""
    _deletable(session, req, name)


def group_names(session: Session, name: str) -> list[str]:
    """The names of a user's groups (none for an unknown user)."""
    return list(
        session.scalars(
            select(Group.name).join(User.groups).where(User.name == name).order_by(Group.name)
        )
    )


def delete_user(session: Session, req: Requester, name: str) -> None:
    """Delete a user whose servers are stopped (`hub.spawn` stops them first)."""
    user = _deletable(session, req, name)
    if _active_server_count(session, user.id):
        raise BadRequest(f"{name} has running servers; stop them first")
    session.execute(delete(User).where(User.id == user.id))
    audit.record(session, req.name, "user.delete", name)


def set_password(
    session: Session, name: str, password: str, rules: PasswordRules | None = None
) -> None:
    """Give `name` a new password that passes the native password rules."""
    user = _user_row(session, name)
    check_new_password(password, user.name, rules)
    user.password_hash = hash_password(password)


def _activity_time(text: object, label: str) -> datetime.datetime:
    try:
        when = parse_timestamp(text)
    except ValueError as e:
        raise BadRequest(f"{label}: {e}") from None
    if when - utcnow() > MAX_ACTIVITY_AHEAD:
        raise BadRequest(f"{label}: rejecting activity from more than an hour in the future")
    return when


def record_activity(session: Session, req: Requester, name: str, body: object) -> None:
    """Move a user's (and its servers') last activity forward, never back."""
    user = find_visible_user(session, req, name, ["users:activity"])
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(body) - {"last_activity", "servers"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(bounded(k, 32) for k in unknown))}")
    last = body.get("last_activity")
    servers = body.get("servers")
    if not last and not servers:
        raise BadRequest("body must contain at least one of last_activity or servers")
    when = _activity_time(last, "last_activity") if last else None
    shape = "servers must be an object of the form {server_name: {last_activity: timestamp}}"
    updates: list[tuple[Server, Any]] = []
    if servers:
        if not isinstance(servers, dict):
            raise BadRequest(shape)
        rows = {s.name: s for s in user.servers}
        for server_name, info in servers.items():
            if not isinstance(info, dict) or "last_activity" not in info:
                raise BadRequest(shape)
            server = rows.get(server_name)
            if server is None:
                raise BadRequest(f"No such server {bounded(server_name, 64)!s} for user {name}")
            label = f"servers.{bounded(server_name, 64)}.last_activity"
            updates.append((server, _activity_time(info["last_activity"], label)))
    if when is not None and (user.last_activity is None or when > user.last_activity):
        user.last_activity = when
    for server, stamp in updates:
        if server.last_activity is None or stamp > server.last_activity:
            server.last_activity = stamp
        if user.last_activity is None or stamp > user.last_activity:
            user.last_activity = stamp
