"""Roles: named sets of scopes, and how an owner's roles become scopes.

Every user holds the `user` role; admins also hold `admin`. Further roles come
from the config (`c.Hub.load_roles`) and are assigned to users, groups and
services in the database. `RoleTable` keeps the role definitions in memory (they
change only at start-up) so resolving a request's scopes costs no query for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.errors import ConfigError
from hub.rbac import scopes

DEFAULT_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "user": ("Standard user privileges", ("self",)),
    "admin": (
        "Elevated privileges (can do anything)",
        (
            "admin-ui",
            "admin:users",
            "admin:servers",
            "admin:services",
            "tokens",
            "admin:groups",
            "list:services",
            "read:services",
            "read:hub",
            "proxy",
            "shutdown",
            "access:services",
            "access:servers",
            "read:roles",
            "read:metrics",
            "shares",
            "read:audit",
        ),
    ),
    "server": (
        "What a single-user server's own token may do",
        ("users:activity!user", "access:servers!server"),
    ),
    "token": ("Token with the same permissions as its owner", ("inherit",)),
}


def complete_specs(extra: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`c.Hub.load_roles` as the hub applies it: an entry for a default role (`user`,
    `admin`...) keeps the default's description and scopes unless it gives its own, as
    on JupyterHub (an `admin` entry that only names users must not empty the admin role);
    a role named twice is refused."""
    seen: set[str] = set()
    out = []
    for spec in extra:
        name = spec.get("name") if isinstance(spec, Mapping) else None
        if not isinstance(name, str) or not name:
            raise ConfigError(f"load_roles: every role needs a name, got {spec!r}")
        if name in seen:
            raise ConfigError(f"load_roles: role {name!r} is defined twice")
        seen.add(name)
        merged = dict(spec)
        if name in DEFAULT_ROLES:
            description, default_scopes = DEFAULT_ROLES[name]
            merged.setdefault("description", description)
            merged.setdefault("scopes", list(default_scopes))
        out.append(merged)
    return out


@dataclass(frozen=True)
class RoleDef:
    name: str
    description: str
    scopes: frozenset[str]


@dataclass
class RoleTable:
    roles: dict[str, RoleDef] = field(default_factory=dict)

    @classmethod
    def from_config(cls, extra: Iterable[Mapping[str, Any]] = ()) -> RoleTable:
        table = cls({n: RoleDef(n, d, frozenset(s)) for n, (d, s) in DEFAULT_ROLES.items()})
        for spec in complete_specs(extra):
            name = spec["name"]
            raw = spec.get("scopes", [])
            if not isinstance(raw, list | tuple):
                raise ConfigError(f"load_roles: scopes of role {name!r} must be a list")
            for scope in raw:
                try:
                    scopes.validate(scope)
                except Exception as e:
                    raise ConfigError(f"load_roles: role {name!r}: {e}") from None
            table.roles[name] = RoleDef(name, str(spec.get("description", "")), frozenset(raw))
        return table

    def raw_scopes(self, role_names: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for name in role_names:
            role = self.roles.get(name)
            if role is not None:
                out |= role.scopes
        return frozenset(out)

    def user_roles(self, admin: bool, assigned: Iterable[str]) -> list[str]:
        """`user`, `admin` for admins (the flag, or the role through a group), then the
        rest of the assigned roles."""
        assigned = set(assigned)
        names = ["user"]
        if admin or "admin" in assigned:
            names.append("admin")
        names.extend(sorted(set(assigned) - {"user", "admin"}))
        return names

    def user_scopes(self, name: str, admin: bool, assigned: Iterable[str]) -> frozenset[str]:
        """Expanded scopes a user holds through its own and its groups' roles."""
        raw = self.raw_scopes(self.user_roles(admin, assigned))
        return scopes.expand(raw, name)


def identify_scopes(owner_name: str, kind: Literal["user", "service"] = "user") -> frozenset[str]:
    """What every token may do: read its owner's name (and a user's groups)."""
    if kind == "service":
        return frozenset({f"read:services:name!service={owner_name}"})
    return frozenset(f"read:users:{f}!user={owner_name}" for f in ("name", "groups"))


def token_scopes(
    token_raw: Iterable[str],
    owner_name: str,
    owner_scopes: frozenset[str],
    groups_of: Callable[[str], frozenset[str]],
    kind: Literal["user", "service"] = "user",
) -> frozenset[str]:
    """A token's effective scopes: its own plus the identify scopes, never beyond what
    its owner holds now (as JupyterHub computes them)."""
    raw = frozenset(token_raw)
    if "inherit" in raw:
        return owner_scopes
    own = scopes.expand(raw, owner_name) | identify_scopes(owner_name, kind)
    return scopes.intersect(own, owner_scopes, groups_of)


# the scopes that make someone a full administrator (needed to grant admin)
ADMIN_SCOPES = scopes.expand(frozenset(DEFAULT_ROLES["admin"][1]))
