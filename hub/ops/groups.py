"""Groups: create, read, delete, members and properties."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from hub.db.models import Group, User
from hub.errors import BadRequest, Conflict, Forbidden, NotFound
from hub.log import bounded
from hub.names import normalize_username, validate_group_name
from hub.ops import audit
from hub.ops.context import HubContext
from hub.ops.models import GROUP_KEYS
from hub.rbac.access import Requester

MAX_PROPERTIES_BYTES = 64 * 1024


def group_model(req: Requester, group: Group) -> dict[str, Any]:
    allowed: set[str] = set()
    for scope, keys in GROUP_KEYS.items():
        if req.allows(scope, group=group.name):
            allowed |= keys
    full = {
        "kind": "group",
        "name": group.name,
        "roles": sorted(r.name for r in group.roles),
        "users": sorted(u.name for u in group.users),
        "properties": group.properties,
    }
    return {k: v for k, v in full.items() if k in allowed}


def _find(session: Session, req: Requester, name: str, scopes: Sequence[str]) -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None or not any(req.allows(s, group=name) for s in scopes):
        raise NotFound(f"No such group: {bounded(name, 64)}")
    return group


def _users(session: Session, names: object) -> list[User]:
    """The users named, normalised as at login (`Ann` is `ann`); BadRequest if any is missing."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest("users must be a list of user names")
    wanted = {normalize_username(n): n for n in names}
    found = list(session.scalars(select(User).where(User.name.in_(wanted))))
    missing = {wanted[n] for n in set(wanted) - {u.name for u in found}}
    if missing:
        raise BadRequest(f"No such user(s): {', '.join(sorted(bounded(m, 40) for m in missing))}")
    return found


def _check_properties(value: object) -> dict[str, Any]:
    import orjson

    if not isinstance(value, dict):
        raise BadRequest("properties must be a JSON object")
    if len(orjson.dumps(value)) > MAX_PROPERTIES_BYTES:
        raise BadRequest(f"properties must be at most {MAX_PROPERTIES_BYTES // 1024} KiB")
    return value


def list_groups(
    session: Session, req: Requester, offset: int, limit: int, count: bool
) -> tuple[list[dict[str, Any]], int | None]:
    entry = req.parsed.get("list:groups")
    query = select(Group).options(selectinload(Group.users), selectinload(Group.roles))
    counter = select(func.count()).select_from(Group)
    if entry is None:
        raise Forbidden("Not allowed to list groups")
    if isinstance(entry, dict):
        names = entry.get("group", frozenset())
        query = query.where(Group.name.in_(names))
        counter = counter.where(Group.name.in_(names))
    groups = session.scalars(query.order_by(Group.id).offset(offset).limit(limit)).all()
    total = session.scalar(counter) if count else None
    return [group_model(req, g) for g in groups], total


def get_group(session: Session, req: Requester, name: str) -> dict[str, Any]:
    return group_model(req, _find(session, req, name, list(GROUP_KEYS)))


def create_groups(
    session: Session,
    ctx: HubContext,
    req: Requester,
    names: object,
    users: object = None,
    properties: object = None,
) -> list[dict[str, Any]]:
    if not isinstance(names, list) or not names:
        raise BadRequest("Must specify at least one group to create")
    valid = [validate_group_name(n) for n in names]
    if len(set(valid)) != len(valid):
        raise BadRequest("group names must be unique")
    existing = set(session.scalars(select(Group.name).where(Group.name.in_(valid))))
    if existing:
        raise Conflict(f"Group {sorted(existing)[0]} already exists")
    if users:
        ctx.check_membership_editable()
    members = _users(session, users) if users is not None else []
    props = _check_properties(properties) if properties is not None else {}
    groups = [Group(name=n, users=list(members), properties=dict(props)) for n in valid]
    session.add_all(groups)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict("A group with that name was created at the same time") from None
    for g in groups:
        audit.record(session, req.name, "group.create", g.name, users=[u.name for u in members])
    return [group_model(req, g) for g in groups]


def delete_group(session: Session, req: Requester, name: str) -> None:
    group = _find(session, req, name, ["delete:groups"])
    session.delete(group)
    audit.record(session, req.name, "group.delete", name)


def change_members(
    session: Session, ctx: HubContext, req: Requester, name: str, users: object, add: bool
) -> dict[str, Any]:
    group = _find(session, req, name, ["groups"])
    ctx.check_membership_editable()
    if users is None:
        raise BadRequest(f"Must specify users to {'add' if add else 'remove'}")
    changed = _users(session, users)
    current = {u.id for u in group.users}
    if add:
        group.users.extend(u for u in changed if u.id not in current)
    else:
        remove = {u.id for u in changed}
        group.users = [u for u in group.users if u.id not in remove]
    audit.record(
        session,
        req.name,
        "group.add_users" if add else "group.remove_users",
        name,
        users=[u.name for u in changed],
    )
    session.flush()
    return group_model(req, group)


def set_properties(
    session: Session, req: Requester, name: str, properties: object
) -> dict[str, Any]:
    group = _find(session, req, name, ["groups"])
    group.properties = dict(_check_properties(properties))
    audit.record(session, req.name, "group.set_properties", name)
    session.flush()
    return group_model(req, group)
