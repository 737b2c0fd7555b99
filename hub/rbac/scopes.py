"""Scopes: the permission vocabulary shared with JupyterHub.

A scope is `base` or `base!kind=value` (a horizontal filter on a user, server,
group or service). Raw scopes as stored on roles and tokens may contain
metascopes (`self`, `inherit`) and parent scopes (`users` implies
`read:users`); *expanding* resolves them to the flat set a request is checked
against. A token's effective scopes are its own expanded scopes intersected with
those its owner holds now, so revoking a role immediately narrows old tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, TypeAlias

from hub.errors import BadRequest


@dataclass(frozen=True)
class ScopeDef:
    description: str
    subscopes: tuple[str, ...] = ()


SCOPES: Final[Mapping[str, ScopeDef]] = {
    "(no_scope)": ScopeDef("Identify the owner of the requesting entity."),
    "self": ScopeDef("Your own resources (metascope)."),
    "inherit": ScopeDef("Everything the token's owner can do (metascope, tokens only)."),
    "admin-ui": ScopeDef("Access the admin panel."),
    "admin:users": ScopeDef(
        "Read, modify, create and delete users and their authentication state, "
        "not their servers or tokens.",
        ("admin:auth_state", "users", "read:roles:users", "delete:users"),
    ),
    "admin:auth_state": ScopeDef("Read a user's authentication state."),
    "users": ScopeDef(
        "Read and write user models (not servers, tokens or authentication state).",
        ("read:users", "list:users", "users:activity"),
    ),
    "delete:users": ScopeDef("Delete users."),
    "list:users": ScopeDef("List users, with at least their names.", ("read:users:name",)),
    "read:users": ScopeDef(
        "Read user models.", ("read:users:name", "read:users:groups", "read:users:activity")
    ),
    "read:users:name": ScopeDef("Read user names."),
    "read:users:groups": ScopeDef("Read users' group membership."),
    "read:users:activity": ScopeDef("Read users' last activity."),
    "read:roles": ScopeDef(
        "Read role assignments.",
        ("read:roles:users", "read:roles:services", "read:roles:groups"),
    ),
    "read:roles:users": ScopeDef("Read user role assignments."),
    "read:roles:services": ScopeDef("Read service role assignments."),
    "read:roles:groups": ScopeDef("Read group role assignments."),
    "users:activity": ScopeDef("Update users' last activity.", ("read:users:activity",)),
    "admin:servers": ScopeDef(
        "Read, start, stop, create and delete servers and their state.",
        ("admin:server_state", "servers"),
    ),
    "admin:server_state": ScopeDef("Read and write servers' state."),
    "servers": ScopeDef(
        "Start and stop servers.", ("read:servers", "start:servers", "delete:servers")
    ),
    "read:servers": ScopeDef("Read user names and server models.", ("read:users:name",)),
    "start:servers": ScopeDef("Start and edit servers."),
    "delete:servers": ScopeDef("Stop and delete servers."),
    "tokens": ScopeDef("Read, create and revoke user tokens.", ("read:tokens",)),
    "read:tokens": ScopeDef("Read user tokens."),
    "admin:groups": ScopeDef(
        "Create, read, modify and delete groups.",
        ("groups", "read:roles:groups", "delete:groups"),
    ),
    "groups": ScopeDef(
        "Read and modify groups, including their members.", ("read:groups", "list:groups")
    ),
    "list:groups": ScopeDef("List groups, with at least their names.", ("read:groups:name",)),
    "read:groups": ScopeDef("Read group models.", ("read:groups:name",)),
    "read:groups:name": ScopeDef("Read group names."),
    "delete:groups": ScopeDef("Delete groups."),
    "admin:services": ScopeDef(
        "Create, read, modify and delete services not defined in config.",
        ("list:services", "read:services", "read:roles:services"),
    ),
    "list:services": ScopeDef("List services, with at least their names.", ("read:services:name",)),
    "read:services": ScopeDef("Read service models.", ("read:services:name",)),
    "read:services:name": ScopeDef("Read service names."),
    "read:hub": ScopeDef("Read detailed information about the hub."),
    "access:servers": ScopeDef("Use servers through the API or a browser."),
    "access:services": ScopeDef("Use services through the API or a browser."),
    "users:shares": ScopeDef(
        "Read and revoke a user's access to shared servers.", ("read:users:shares",)
    ),
    "read:users:shares": ScopeDef("Read servers shared with a user."),
    "groups:shares": ScopeDef(
        "Read and revoke a group's access to shared servers.", ("read:groups:shares",)
    ),
    "read:groups:shares": ScopeDef("Read servers shared with a group."),
    "read:shares": ScopeDef("Read who has shared access to servers."),
    "shares": ScopeDef(
        "Manage shared access to servers.",
        ("access:servers", "read:shares", "users:shares", "groups:shares"),
    ),
    "proxy": ScopeDef("Read the proxy's routing table and sync the hub with it."),
    "shutdown": ScopeDef("Shut the hub down."),
    "read:metrics": ScopeDef("Read Prometheus metrics."),
    # Atrium's own; JupyterHub has no audit log
    "read:audit": ScopeDef(
        "Read the audit log: who created, changed, blocked or deleted users, groups, "
        "tokens and servers, and when (an Atrium extension)."
    ),
}

META_SCOPES: Final = frozenset({"self", "inherit", "(no_scope)"})
FILTER_KINDS: Final = ("user", "server", "group", "service")

# Parsed form: base scope -> ALL, or {filter kind -> allowed values}
ALL: Final = "*"
Filters: TypeAlias = dict[str, frozenset[str]]
Parsed: TypeAlias = dict[str, str | Filters]


def split(scope: str) -> tuple[str, str | None, str | None]:
    """`read:users!user=ann` -> ('read:users', 'user', 'ann')."""
    base, sep, filt = scope.partition("!")
    if not sep:
        return base, None, None
    kind, eq, value = filt.partition("=")
    if not eq:
        return base, kind, None
    return base, kind, value


def validate(scope: object) -> str:
    """Check a scope a client asked for; BadRequest naming what is wrong."""
    if not isinstance(scope, str) or not scope or len(scope) > 512:
        raise BadRequest("each scope must be a non-empty string")
    base, kind, value = split(scope)
    if base not in SCOPES:
        raise BadRequest(f"unknown scope: {scope[:100]!r}")
    if kind is not None:
        if base in META_SCOPES:
            raise BadRequest(f"scope {base!r} cannot be filtered")
        if kind not in FILTER_KINDS or not value:
            raise BadRequest(
                f"bad filter in scope {scope[:100]!r}: use !user=NAME, !server=USER/NAME, "
                "!group=NAME or !service=NAME"
            )
    return scope


@lru_cache(maxsize=1024)
def expand_base(base: str) -> frozenset[str]:
    """A scope and every scope it implies (no filters)."""
    out = {base}
    for sub in SCOPES[base].subscopes:
        out |= expand_base(sub)
    return frozenset(out)


SELF_SCOPES: Final = frozenset().union(
    *(
        expand_base(s)
        for s in (
            "read:users",
            "users:shares",
            "read:shares",
            "users:activity",
            "servers",
            "tokens",
            "access:servers",
        )
    )
)


@lru_cache(maxsize=65536)
def expand(
    raw: frozenset[str], owner: str | None = None, server: str | None = None
) -> frozenset[str]:
    """Expand raw scopes held by `owner` (a user name) into flat scope strings.

    `self` becomes the owner's own permissions; the short filters `!user` and
    `!server` (used by the default `server` role) bind to the owner and the
    server the token belongs to. `inherit` is resolved by the caller, who knows
    the owner's scopes.
    """
    out: set[str] = set()
    for scope in raw:
        base, kind, value = split(scope)
        if base == "self":
            if owner is not None:
                out.update(f"{s}!user={owner}" for s in SELF_SCOPES)
            continue
        if base in ("inherit", "(no_scope)") or base not in SCOPES:
            continue
        if kind is not None and value is None:
            # short filters !user / !server bind to the owner
            if kind == "user" and owner is not None:
                value = owner
            elif kind == "server" and owner is not None and server is not None:
                kind, value = "server", f"{owner}/{server}"
            else:
                continue
        suffix = f"!{kind}={value}" if kind is not None else ""
        out.update(f"{s}{suffix}" for s in expand_base(base))
    return frozenset(out)


def parse(expanded: Iterable[str]) -> Parsed:
    """Group expanded scopes by base: ALL wins over any filter.

    The result for a frozenset is cached (requests with the same permissions share
    it), so callers must treat it as read-only.
    """
    if isinstance(expanded, frozenset):
        return _parse_cached(expanded)
    return _parse(expanded)


@lru_cache(maxsize=4096)
def _parse_cached(expanded: frozenset[str]) -> Parsed:
    return _parse(expanded)


def _parse(expanded: Iterable[str]) -> Parsed:
    parsed: dict[str, str | dict[str, set[str]]] = {}
    for scope in expanded:
        base, kind, value = split(scope)
        current = parsed.get(base)
        if kind is None or value is None:
            parsed[base] = ALL
        elif current == ALL:
            continue
        else:
            filters = current if isinstance(current, dict) else {}
            filters.setdefault(kind, set()).add(value)
            parsed[base] = filters
    return {
        base: v if v == ALL else {k: frozenset(vals) for k, vals in v.items()}  # type: ignore[union-attr]
        for base, v in parsed.items()
    }


def _covers(
    filters: Filters, kind: str, value: str, groups_of: Callable[[str], frozenset[str]]
) -> bool:
    """Does a filter set grant access to one filter entry of the other side?"""
    if value in filters.get(kind, ()):
        return True
    if kind == "server":
        user = value.partition("/")[0]
        if user in filters.get("user", ()):
            return True
        kind, value = "user", user
    if kind == "user" and "group" in filters:
        return bool(filters["group"] & groups_of(value))
    return False


def covered(held: Parsed, scope: str, groups_of: Callable[[str], frozenset[str]]) -> bool:
    """Is the expanded `scope` included in the parsed scopes `held`?"""
    base, kind, value = split(scope)
    entry = held.get(base)
    if entry is None:
        return False
    if entry == ALL:
        return True
    if kind is None or value is None:
        return False
    assert isinstance(entry, dict)
    return _covers(entry, kind, value, groups_of)


def intersect(
    a: frozenset[str], b: frozenset[str], groups_of: Callable[[str], frozenset[str]]
) -> frozenset[str]:
    """Scopes held under both `a` and `b`, keeping the narrower filter.

    `groups_of(user)` gives a user's groups, so that `users!group=x` on one
    side and `users!user=ann` on the other keep ann's access when she is in x.
    """
    pa, pb = parse(a), parse(b)
    out: set[str] = set()
    for base in pa.keys() & pb.keys():
        fa, fb = pa[base], pb[base]
        if fa == ALL and fb == ALL:
            out.add(base)
            continue
        if fa == ALL:
            assert isinstance(fb, dict)
            out.update(f"{base}!{k}={v}" for k, vals in fb.items() for v in vals)
            continue
        if fb == ALL:
            assert isinstance(fa, dict)
            out.update(f"{base}!{k}={v}" for k, vals in fa.items() for v in vals)
            continue
        assert isinstance(fa, dict)
        assert isinstance(fb, dict)
        for first, second in ((fa, fb), (fb, fa)):
            for kind, values in first.items():
                for value in values:
                    if _covers(second, kind, value, groups_of):
                        out.add(f"{base}!{kind}={value}")
    return frozenset(out)


def describe() -> dict[str, dict[str, object]]:
    """Scope table for docs and the API."""
    return {
        name: {"description": d.description, "subscopes": list(d.subscopes)}
        for name, d in SCOPES.items()
    }
