"""Who is asking and what they may do: the `Requester` a request carries.

Handlers declare the scope they need (`hub.api.base.needs_scope`); the
per-resource check (`allows`) then decides whether a named user, server or group
is visible to this requester (not visible -> 404, as JupyterHub does).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from hub.rbac import scopes
from hub.rbac.roles import ADMIN_SCOPES
from hub.rbac.scopes import Parsed


@dataclass(frozen=True)
class Requester:
    kind: Literal["user", "service"]
    name: str
    id: int
    admin: bool
    scopes: frozenset[str]
    token_id: int | None = None
    groups: frozenset[str] = frozenset()
    parsed: Parsed = field(default_factory=dict, compare=False)
    # the login session that issued the token, if any (shown by whoami, as in JupyterHub)
    session_id: str | None = None
    # when the token used expires (naive UTC); None for no expiry or no token
    token_expires_at: datetime.datetime | None = None

    @classmethod
    def build(
        cls,
        kind: Literal["user", "service"],
        name: str,
        id: int,
        admin: bool,
        effective: frozenset[str],
        *,
        token_id: int | None = None,
        groups: frozenset[str] = frozenset(),
        session_id: str | None = None,
        token_expires_at: datetime.datetime | None = None,
    ) -> Requester:
        return cls(
            kind,
            name,
            id,
            admin,
            effective,
            token_id,
            groups,
            scopes.parse(effective),
            session_id,
            token_expires_at,
        )

    def has(self, base: str) -> bool:
        """Holds `base` for at least some resource."""
        return base in self.parsed

    def has_any(self, bases: Iterable[str]) -> bool:
        return any(b in self.parsed for b in bases)

    def is_full_admin(self) -> bool:
        """Holds every scope of the admin role, unfiltered."""
        return all(self.parsed.get(s) == scopes.ALL for s in ADMIN_SCOPES)

    def allows(
        self,
        base: str,
        *,
        user: str | None = None,
        server: str | None = None,
        group: str | None = None,
        service: str | None = None,
        user_groups: Iterable[str] = (),
    ) -> bool:
        """Does this requester hold `base` for the given resource?

        `server` is `user/name`; `user_groups` are the groups of the user that
        owns the resource, for `!group=` filters.
        """
        entry = self.parsed.get(base)
        if entry is None:
            return False
        if entry == scopes.ALL:
            return True
        assert isinstance(entry, dict)
        if group is not None:
            return group in entry.get("group", ())
        if service is not None:
            return service in entry.get("service", ())
        if server is not None:
            if server in entry.get("server", ()):
                return True
            user = server.partition("/")[0]
        if user is not None:
            if user in entry.get("user", ()):
                return True
            wanted = entry.get("group")
            return bool(wanted and wanted.intersection(user_groups))
        return False

    def user_filter(self, base: str) -> tuple[bool, frozenset[str], frozenset[str]]:
        """For list queries: (all users?, allowed user names, allowed group names)."""
        entry = self.parsed.get(base)
        if entry is None:
            return False, frozenset(), frozenset()
        if entry == scopes.ALL:
            return True, frozenset(), frozenset()
        assert isinstance(entry, dict)
        return False, entry.get("user", frozenset()), entry.get("group", frozenset())
