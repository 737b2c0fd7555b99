"""Resolve credentials to a `Requester` with its effective scopes."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from functools import cache

from sqlalchemy import select, union_all, update
from sqlalchemy.orm import Session

from hub.db.models import (
    APIToken,
    Group,
    Role,
    Service,
    User,
    group_role_map,
    service_role_map,
    user_group_map,
    user_role_map,
)
from hub.rbac import roles as rbac_roles
from hub.rbac import scopes
from hub.rbac.access import Requester
from hub.secrets_hash import token_matches, token_prefix
from hub.timeutil import utcnow

# Token last_activity is written at most this often, to keep reads write-free.
ACTIVITY_RESOLUTION = datetime.timedelta(minutes=1)


def user_groups(session: Session, user_id: int) -> frozenset[str]:
    rows = session.scalars(
        select(Group.name).join(user_group_map).where(user_group_map.c.user_id == user_id)
    )
    return frozenset(rows)


def assigned_roles(session: Session, user_id: int) -> list[str]:
    """Role names assigned to a user directly or through its groups."""
    direct = select(Role.name).join(user_role_map).where(user_role_map.c.user_id == user_id)
    via_groups = (
        select(Role.name)
        .join(group_role_map, group_role_map.c.role_id == Role.id)
        .join(user_group_map, user_group_map.c.group_id == group_role_map.c.group_id)
        .where(user_group_map.c.user_id == user_id)
    )
    return list(session.scalars(union_all(direct, via_groups)))


def groups_lookup(session: Session) -> Callable[[str], frozenset[str]]:
    """A cached `user name -> group names` function for scope intersections."""

    @cache
    def groups_of(name: str) -> frozenset[str]:
        rows = session.scalars(
            select(Group.name)
            .join(user_group_map)
            .join(User, User.id == user_group_map.c.user_id)
            .where(User.name == name)
        )
        return frozenset(rows)

    return groups_of


def user_requester(
    session: Session, ctx_roles: rbac_roles.RoleTable, user: User, token: APIToken | None = None
) -> Requester:
    groups = user_groups(session, user.id)
    owner = ctx_roles.user_scopes(user.name, user.admin, assigned_roles(session, user.id))
    if token is None:
        effective = owner
    else:

        def groups_of(name: str) -> frozenset[str]:
            return groups if name == user.name else groups_lookup(session)(name)

        effective = rbac_roles.token_scopes(token.scopes, user.name, owner, groups_of)
    return Requester.build(
        "user",
        user.name,
        user.id,
        user.admin,
        effective,
        token_id=token.id if token is not None else None,
        groups=groups,
        session_id=token.session_id if token is not None else None,
    )


def service_requester(
    session: Session, ctx_roles: rbac_roles.RoleTable, service: Service, token: APIToken
) -> Requester:
    role_names = list(
        session.scalars(
            select(Role.name)
            .join(service_role_map)
            .where(service_role_map.c.service_id == service.id)
        )
    )
    if service.admin:
        role_names.append("admin")
    owner = scopes.expand(ctx_roles.raw_scopes(role_names), None)
    effective = rbac_roles.token_scopes(
        token.scopes, service.name, owner, groups_lookup(session), kind="service"
    )
    return Requester.build(
        "service",
        service.name,
        service.id,
        service.admin,
        effective,
        token_id=token.id,
        session_id=token.session_id,
    )


def find_token(session: Session, token: str) -> APIToken | None:
    """The stored token matching `token`, if it exists and has not expired."""
    if not token or len(token) > 256:
        return None
    now = utcnow()
    candidates = session.scalars(
        select(APIToken).where(APIToken.prefix == token_prefix(token))
    ).all()
    for row in candidates:
        if token_matches(token, row.hashed):
            if row.expires_at is not None and row.expires_at <= now:
                return None
            return row
    return None


def resolve_token(
    session: Session, ctx_roles: rbac_roles.RoleTable, token: str
) -> Requester | None:
    """The requester a token speaks for, or None for unknown/expired/blocked."""
    row = find_token(session, token)
    if row is None:
        return None
    now = utcnow()
    if row.last_activity is None or now - row.last_activity > ACTIVITY_RESOLUTION:
        session.execute(update(APIToken).where(APIToken.id == row.id).values(last_activity=now))
    if row.user_id is not None:
        user = session.get(User, row.user_id)
        if user is None or user.blocked:
            return None
        return user_requester(session, ctx_roles, user, row)
    if row.service_id is not None:
        service = session.get(Service, row.service_id)
        if service is None:
            return None
        return service_requester(session, ctx_roles, service, row)
    return None
