"""Prebuilt Core statements for the hot read paths (every API request runs some).

Built once at import with bind parameters, so each execution reuses SQLAlchemy's
compiled form and skips ORM object construction: a request authenticates with
two queries and reads a user with three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    Connection,
    String,
    Table,
    bindparam,
    literal,
    or_,
    select,
    union_all,
)

from hub.db.models import (
    APIToken,
    Group,
    Role,
    Server,
    User,
    group_role_map,
    user_group_map,
    user_role_map,
)

users = cast(Table, User.__table__)
groups = cast(Table, Group.__table__)
roles = cast(Table, Role.__table__)
servers = cast(Table, Server.__table__)
tokens = cast(Table, APIToken.__table__)

TOKEN_WITH_OWNER = (
    select(
        tokens.c.id,
        tokens.c.hashed,
        tokens.c.scopes,
        tokens.c.expires_at,
        tokens.c.last_activity,
        tokens.c.session_id,
        tokens.c.user_id,
        tokens.c.service_id,
        users.c.name.label("user_name"),
        users.c.admin.label("user_admin"),
        users.c.blocked.label("user_blocked"),
    )
    .select_from(tokens.outerjoin(users, users.c.id == tokens.c.user_id))
    .where(tokens.c.prefix == bindparam("prefix"))
)

_ids: BindParameter[list[int]] = bindparam("ids", expanding=True)

# (user id, kind, name): 'g' a group, 'r' a role held directly, 'q' a role via a group
MEMBERSHIPS = union_all(
    select(user_group_map.c.user_id, literal("g", String), groups.c.name)
    .select_from(user_group_map.join(groups, groups.c.id == user_group_map.c.group_id))
    .where(user_group_map.c.user_id.in_(_ids)),
    select(user_role_map.c.user_id, literal("r", String), roles.c.name)
    .select_from(user_role_map.join(roles, roles.c.id == user_role_map.c.role_id))
    .where(user_role_map.c.user_id.in_(_ids)),
    select(user_group_map.c.user_id, literal("q", String), roles.c.name)
    .select_from(
        user_group_map.join(
            group_role_map, group_role_map.c.group_id == user_group_map.c.group_id
        ).join(roles, roles.c.id == group_role_map.c.role_id)
    )
    .where(user_group_map.c.user_id.in_(_ids)),
)

USER_COLUMNS = (
    users.c.id,
    users.c.name,
    users.c.admin,
    users.c.blocked,
    users.c.created,
    users.c.last_activity,
    users.c.full_name,
    users.c.email,
)
USER_BY_NAME = select(*USER_COLUMNS).where(users.c.name == bindparam("name"))

_active = or_(servers.c.started.is_not(None), servers.c.pending.is_not(None))
ACTIVE_SERVERS = (
    select(servers).where(servers.c.user_id.in_(_ids), _active).order_by(servers.c.name)
)
ALL_SERVERS = select(servers).where(servers.c.user_id.in_(_ids)).order_by(servers.c.name)


@dataclass
class Membership:
    groups: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)  # assigned directly
    group_roles: list[str] = field(default_factory=list)

    @property
    def all_roles(self) -> list[str]:
        return self.roles + self.group_roles


def memberships(conn: Connection, user_ids: Sequence[int]) -> dict[int, Membership]:
    """Groups and roles of each user, in one query."""
    out: dict[int, Membership] = {uid: Membership() for uid in user_ids}
    if not user_ids:
        return out
    for uid, kind, name in conn.execute(MEMBERSHIPS, {"ids": list(user_ids)}):
        entry = out[uid]
        if kind == "g":
            entry.groups.append(name)
        elif kind == "r":
            entry.roles.append(name)
        else:
            entry.group_roles.append(name)
    for entry in out.values():
        entry.groups.sort()
    return out


def servers_of(
    conn: Connection, user_ids: Sequence[int], include_stopped: bool
) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {uid: [] for uid in user_ids}
    if not user_ids:
        return out
    stmt = ALL_SERVERS if include_stopped else ACTIVE_SERVERS
    for row in conn.execute(stmt, {"ids": list(user_ids)}):
        out[row.user_id].append(row)
    return out
