"""Resolve credentials to a `Requester` with its effective scopes."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.db.models import (
    APIToken,
    Group,
    Role,
    Service,
    User,
    service_role_map,
    user_group_map,
)
from hub.ops import queries
from hub.rbac import roles as rbac_roles
from hub.rbac import scopes
from hub.rbac.access import Requester
from hub.secrets_hash import token_matches, token_prefix
from hub.timeutil import utcnow

# Token last_activity is written at most this often, to keep reads write-free.
ACTIVITY_RESOLUTION = datetime.timedelta(minutes=1)


def assigned_roles(session: Session, user_id: int) -> list[str]:
    """Role names assigned to a user directly or through its groups."""
    return queries.memberships(session.connection(), [user_id])[user_id].all_roles


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
    session: Session,
    ctx_roles: rbac_roles.RoleTable,
    user_id: int,
    name: str,
    admin: bool,
    token: Any = None,
) -> Requester:
    """The requester for a user, through `token` (a TOKEN_WITH_OWNER row) if given."""
    member = queries.memberships(session.connection(), [user_id])[user_id]
    groups = frozenset(member.groups)
    owner = ctx_roles.user_scopes(name, admin, member.all_roles)
    if token is None:
        effective = owner
    else:

        def groups_of(other: str) -> frozenset[str]:
            return groups if other == name else groups_lookup(session)(other)

        effective = rbac_roles.token_scopes(token.scopes, name, owner, groups_of)
    return Requester.build(
        "user",
        name,
        user_id,
        admin,
        effective,
        token_id=token.id if token is not None else None,
        groups=groups,
        session_id=token.session_id if token is not None else None,
        token_expires_at=token.expires_at if token is not None else None,
    )


def service_requester(
    session: Session, ctx_roles: rbac_roles.RoleTable, service: Service, token: Any
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
        token_expires_at=token.expires_at,
    )


def find_token(session: Session, token: str) -> Any:
    """The stored token matching `token` (a TOKEN_WITH_OWNER row), unless expired."""
    if not token or len(token) > 256:
        return None
    now = utcnow()
    candidates = session.connection().execute(
        queries.TOKEN_WITH_OWNER, {"prefix": token_prefix(token)}
    )
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
        if row.user_blocked:
            return None
        return user_requester(session, ctx_roles, row.user_id, row.user_name, row.user_admin, row)
    if row.service_id is not None:
        service = session.get(Service, row.service_id)
        if service is None:
            return None
        return service_requester(session, ctx_roles, service, row)
    return None


def resolve_cookie(
    session: Session, ctx_roles: rbac_roles.RoleTable, cookie_id: str, session_id: str
) -> Requester | None:
    """The user a login cookie speaks for (with all their permissions), or None."""
    row = session.execute(
        select(User.id, User.name, User.admin).where(User.cookie_id == cookie_id, ~User.blocked)
    ).first()
    if row is None:
        return None
    req = user_requester(session, ctx_roles, row.id, row.name, row.admin)
    return dataclasses.replace(req, session_id=session_id)
