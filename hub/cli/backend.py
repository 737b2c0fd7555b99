"""What every backend can do: one method per operation, plain JSON-shaped data out.

Both backends return the hub API's models (`dict`s in JupyterHub's shapes), so
commands render the same data whichever backend served it. A new command adds
a method here and to both backends.

Starting and stopping servers is not here: only a running hub can do that, so
`hub.cli.servers` asks the REST backend (`hub.cli.rest.RestBackend`) directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Model = dict[str, Any]

# items fetched per request when walking a list; the hub caps pages at its own limit
PAGE_SIZE = 200
USER_STATES = ("active", "ready", "inactive")
USER_SORTS = ("id", "name", "last_activity", "server")


@dataclass(frozen=True)
class UserListQuery:
    state: str | None = None
    name_filter: str | None = None
    sort: str = "id"  # a key of USER_SORTS, prefixed with - to reverse
    offset: int = 0
    limit: int | None = None  # None: every user from `offset` on
    include_stopped: bool = False  # list stopped servers in each user's `servers` too


@dataclass(frozen=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None  # one action, or a noun's actions: `user.`
    target: str | None = None
    since: str | None = None  # ISO 8601, UTC unless it says otherwise
    limit: int = 50


class Backend(Protocol):
    # --- users
    def list_users(self, query: UserListQuery) -> list[Model]: ...

    def get_user(self, name: str) -> Model: ...

    def create_users(self, names: Sequence[str], admin: bool) -> list[Model]: ...

    def update_user(self, name: str, patch: Model) -> Model: ...

    def delete_user(self, name: str) -> None: ...

    def import_roster(self, text: str, apply: bool, skip_errors: bool) -> Model: ...

    # --- groups
    def list_groups(self) -> list[Model]: ...

    def get_group(self, name: str) -> Model: ...

    def create_group(self, name: str, users: Sequence[str]) -> Model: ...

    def delete_group(self, name: str) -> None: ...

    def change_members(self, group: str, users: Sequence[str], add: bool) -> Model: ...

    # --- tokens
    def create_token(
        self, user: str, note: str | None, expires_in: int | None, scopes: Sequence[str] | None
    ) -> Model: ...

    def list_tokens(self, user: str) -> list[Model]: ...

    def revoke_token(self, user: str, token_id: str) -> None: ...

    # --- audit log
    def list_audit(self, query: AuditQuery) -> list[Model]: ...

    def close(self) -> None: ...


def token_body(note: str | None, expires_in: int | None, scopes: Sequence[str] | None) -> Model:
    """The token request body both backends send: only the fields given."""
    body: Model = {}
    if note is not None:
        body["note"] = note
    if expires_in is not None:
        body["expires_in"] = expires_in
    if scopes:
        body["scopes"] = list(scopes)
    return body
