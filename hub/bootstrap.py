"""First-start and every-start database set-up: roles from config, the first admin.

Runs once at start-up, after the schema check and before the hub listens.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.db.models import Group, Role, Service, User
from hub.errors import ConfigError
from hub.names import validate_username
from hub.ops import audit
from hub.ops.users import new_cookie_id
from hub.rbac.roles import DEFAULT_ROLES, complete_specs
from hub.secrets_hash import hash_password, new_password

log = logging.getLogger(__name__)

ADMIN_PASSWORD_ENV = "ATRIUM_ADMIN_PASSWORD"  # noqa: S105 (a variable name)


def sync_roles(session: Session, extra: Iterable[Mapping[str, Any]]) -> None:
    """Make the roles table match the default roles plus `c.Hub.load_roles`."""
    extra = complete_specs(extra)
    wanted: dict[str, tuple[str, list[str], bool]] = {
        name: (desc, list(scopes), False) for name, (desc, scopes) in DEFAULT_ROLES.items()
    }
    for spec in extra:
        wanted[str(spec["name"])] = (
            str(spec.get("description", "")),
            list(spec.get("scopes", [])),
            True,
        )
    existing = {r.name: r for r in session.scalars(select(Role))}
    for name, (desc, scopes, managed) in wanted.items():
        role = existing.get(name)
        if role is None:
            session.add(Role(name=name, description=desc, scopes=scopes, managed=managed))
        else:
            role.description, role.scopes, role.managed = desc, scopes, managed
    for name, role in existing.items():
        if role.managed and name not in wanted:
            log.info("Removing role %s, no longer in the config", name)
            session.delete(role)
    session.flush()
    roles = {r.name: r for r in session.scalars(select(Role))}
    # services come from the config alone: their roles are exactly those naming them
    services = {s.name: s for s in session.scalars(select(Service))}
    service_roles: dict[str, list[Role]] = {name: [] for name in services}
    for spec in extra:
        for servicename in spec.get("services", []) or []:
            if servicename not in services:
                raise ConfigError(
                    f"load_roles: role {spec['name']!r} names unknown service {servicename!r}"
                )
            service_roles[servicename].append(roles[str(spec["name"])])
    for name, service in services.items():
        service.roles = service_roles[name]
    for spec in extra:
        role = roles[str(spec["name"])]
        for username in spec.get("users", []) or []:
            user = session.scalar(select(User).where(User.name == username))
            if user is None:
                raise ConfigError(f"load_roles: role {role.name!r} names unknown user {username!r}")
            if role.name == "admin":
                user.admin = True  # as on JupyterHub: holding the admin role is being admin
            elif role not in user.roles:
                user.roles.append(role)
        for groupname in spec.get("groups", []) or []:
            group = session.scalar(select(Group).where(Group.name == groupname))
            if group is None:
                raise ConfigError(
                    f"load_roles: role {role.name!r} names unknown group {groupname!r}"
                )
            if role not in group.roles:
                group.roles.append(role)


@dataclass(frozen=True)
class InitialAdmin:
    name: str
    password: str | None  # None when it came from config or the environment
    created: bool


def has_admin(session: Session) -> bool:
    return session.scalar(select(User.id).where(User.admin).limit(1)) is not None


def ensure_initial_admin(session: Session, name: str, configured_password: str) -> InitialAdmin:
    """On an empty database, create the first admin; its password shown once if generated."""
    if (session.scalar(select(func.count()).select_from(User)) or 0) > 0:
        return InitialAdmin(name, None, False)
    try:
        name = validate_username(name)
    except Exception as e:
        raise ConfigError(f"initial_admin_name: {e}") from None
    password = os.environ.get(ADMIN_PASSWORD_ENV) or configured_password
    generated = None
    if not password:
        password = generated = new_password()
    elif len(password) < 8:
        raise ConfigError("the initial admin password must be at least 8 characters")
    session.add(
        User(
            name=name, admin=True, cookie_id=new_cookie_id(), password_hash=hash_password(password)
        )
    )
    audit.record(session, "atrium", "user.create", name, admin=True, initial=True)
    return InitialAdmin(name, generated, True)
