"""What every backend can do: one method per operation, plain JSON-shaped data out.

Both backends return the hub API's models (`dict`s in JupyterHub's shapes), so
commands render the same data whichever backend served it. A new command adds
a method here and to both backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Model = dict[str, Any]

# users fetched per request when walking a list; the hub caps pages at its own limit
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


class Backend(Protocol):
    def list_users(self, query: UserListQuery) -> list[Model]: ...

    def get_user(self, name: str) -> Model: ...

    def create_users(self, names: Sequence[str], admin: bool) -> list[Model]: ...

    def update_user(self, name: str, patch: Model) -> Model: ...

    def delete_user(self, name: str) -> None: ...

    def create_token(
        self, user: str, note: str | None, expires_in: int | None, scopes: Sequence[str] | None
    ) -> Model: ...

    def list_tokens(self, user: str) -> list[Model]: ...

    def revoke_token(self, user: str, token_id: str) -> None: ...

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
