"""A short-lived cache of resolved requesters, keyed by a hash of the token.

Resolving a token costs two queries and a trip to a database thread on every
API request; most requests come in bursts from the same few tokens. Entries
live `ttl` seconds at most, never past the token's own expiry. Any write
through this hub's API clears the cache (`invalidate`), so a revoked token, a
removed admin flag or a changed group takes effect on the very next request.
Changes made behind the hub's back (`hub-admin --db` on the database) take
effect within `ttl`. Unknown tokens are never cached, so guessing cannot fill it.
"""

from __future__ import annotations

import datetime
import hashlib
import time
from dataclasses import dataclass

from hub.rbac.access import Requester
from hub.timeutil import utcnow


@dataclass(frozen=True)
class _Entry:
    requester: Requester
    deadline: float  # time.monotonic()
    token_expires_at: datetime.datetime | None


class RequesterCache:
    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[bytes, _Entry] = {}

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> Requester | None:
        if self.ttl <= 0:
            return None
        key = self._key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() >= entry.deadline or (
            entry.token_expires_at is not None and utcnow() >= entry.token_expires_at
        ):
            del self._entries[key]
            return None
        return entry.requester

    def put(
        self, token: str, requester: Requester, token_expires_at: datetime.datetime | None
    ) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[self._key(token)] = _Entry(
            requester, time.monotonic() + self.ttl, token_expires_at
        )

    def invalidate(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
