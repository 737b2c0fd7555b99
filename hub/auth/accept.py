"""From an identity to a logged-in user: the same rules for every authenticator.

`accept_identity` runs in one database transaction: it refuses blocked names,
names nothing allows, and accounts that belong to another authenticator; it
creates the user when needed, sets admin (from `admin_users` or the identity),
replaces their groups when the provider manages them, keeps their name, email
and encrypted auth state, and answers with the cookie id to log them in with.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.auth.base import Authenticator, Identity
from hub.db.models import Group, User
from hub.ops import audit
from hub.ops.users import new_cookie_id
from hub.timeutil import utcnow

# what a person is told; the log gets the reason
NOT_ALLOWED = "This account is not allowed to use this hub. Ask its administrators."
OTHER_PROVIDER = "This account logs in another way: choose that one on the login page."


@dataclass(frozen=True)
class Policy:
    """An authenticator's lists, taken at login time, for the database step."""

    provider: str
    allowed_users: frozenset[str]
    blocked_users: frozenset[str]
    admin_users: frozenset[str]
    allow_all: bool
    allow_existing_users: bool
    manage_groups: bool
    # the authenticator's own rules (organizations, groups) allowed this identity
    allowed_by_identity: bool
    # the account may belong to another authenticator only when several are offered
    exclusive: bool
    owns_passwords: bool

    @classmethod
    def of(cls, auth: Authenticator, identity: Identity, exclusive: bool) -> Policy:
        return cls(
            provider=auth.ident,
            allowed_users=frozenset(auth.allowed_users),
            blocked_users=frozenset(auth.blocked_users),
            admin_users=frozenset(auth.admin_users),
            allow_all=auth.allow_all,
            allow_existing_users=auth.allow_existing_users,
            manage_groups=auth.manage_groups,
            allowed_by_identity=auth.allowed_by_identity(identity),
            exclusive=exclusive,
            owns_passwords=auth.owns_passwords,
        )


@dataclass(frozen=True)
class Accepted:
    name: str
    cookie_id: str
    created: bool
    admin: bool


@dataclass(frozen=True)
class Rejected:
    message: str  # for the person
    reason: str  # for the log


def _allowed(policy: Policy, name: str, exists: bool) -> bool:
    return (
        policy.allow_all
        or name in policy.allowed_users
        or name in policy.admin_users
        or policy.allowed_by_identity
        or (exists and policy.allow_existing_users)
    )


def _owner_refuses(policy: Policy, user: User) -> bool:
    """An account another authenticator owns (a native account has a password)."""
    if not policy.exclusive:
        return False
    if user.auth_provider is not None:
        return user.auth_provider != policy.provider
    return user.password_hash is not None and not policy.owns_passwords


def _set_groups(session: Session, user: User, names: tuple[str, ...]) -> None:
    existing = {g.name: g for g in session.scalars(select(Group).where(Group.name.in_(names)))}
    for name in names:
        if name not in existing:
            group = Group(name=name)
            session.add(group)
            existing[name] = group
    user.groups = [existing[n] for n in names]


def accept_identity(
    session: Session,
    policy: Policy,
    identity: Identity,
    encrypt_state: Callable[[dict[str, Any]], bytes] | None,
    now: datetime.datetime | None = None,
) -> Accepted | Rejected:
    """Log `identity` (already normalised) in, or say why not. Changes are flushed;
    the caller's unit of work commits them."""
    name = identity.name
    if name in policy.blocked_users:
        return Rejected(NOT_ALLOWED, "in blocked_users")
    user = session.scalar(select(User).where(User.name == name))
    if user is not None and user.blocked:
        return Rejected(NOT_ALLOWED, "blocked by an admin")
    if not _allowed(policy, name, exists=user is not None):
        return Rejected(NOT_ALLOWED, "not in any allow list")
    if user is not None and _owner_refuses(policy, user):
        return Rejected(OTHER_PROVIDER, f"the account belongs to {user.auth_provider or 'native'}")
    created = user is None
    if user is None:
        user = User(name=name, admin=False, blocked=False, cookie_id=new_cookie_id())
        session.add(user)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:
            # made at the same moment by another login: use that one
            session.expunge(user)
            user = session.scalar(select(User).where(User.name == name))
            if user is None:
                return Rejected(NOT_ALLOWED, "created and deleted at the same time")
            created = False
        else:
            audit.record(session, f"login:{policy.provider}", "user.create", name)
    if name in policy.admin_users:
        user.admin = True
    elif identity.admin is not None:
        user.admin = identity.admin
    if policy.manage_groups and identity.groups is not None:
        _set_groups(session, user, identity.groups)
    if identity.full_name:
        user.full_name = identity.full_name[:500]
    if identity.email:
        user.email = identity.email[:320]
    if encrypt_state is not None and identity.auth_state is not None:
        user.encrypted_auth_state = encrypt_state(identity.auth_state)
    if user.auth_provider is None or not policy.exclusive:
        user.auth_provider = policy.provider
    user.auth_refreshed = now or utcnow()
    session.flush()
    return Accepted(name=name, cookie_id=user.cookie_id, created=created, admin=user.admin)
