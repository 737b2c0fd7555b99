"""The login in flight: state, nonce and PKCE verifier, from the start to the callback.

Where it is kept: in a signed cookie (`atrium-oauth-state`, the hub's cookie
secret, HMAC), scoped to the hub's path, httponly, SameSite=Lax (the provider's
redirect back is a top-level navigation, which carries it) and secure over https.
It lives `state_max_age` seconds (10 minutes by default) and is cleared by the
callback whatever happens. Keeping it in the browser rather than on the server
binds the login to the browser that started it (a callback link sent to someone
else finds no cookie) and needs no storage shared between hub processes.

The state in the callback must equal the cookie's. A state is used once: the hub
remembers used states (a hash of each, in memory, until it would have expired
anyway), so a callback replayed with a copied cookie is refused too. Hubs that
share one cookie secret behind a load balancer would each keep their own record;
the provider's authorization code is single-use as well, which is the second
lock on that door.

The cookie also names the authenticator that started the login, so that one
callback path serves several OAuth authenticators.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

STATE_COOKIE = "atrium-oauth-state"
MAX_STATE = 256  # characters; ours are 43


@dataclass(frozen=True)
class Pending:
    """What the callback needs to finish the login `state` names."""

    state: str
    ident: str  # the authenticator's id
    nonce: str
    verifier: str  # the PKCE code verifier
    next_url: str
    redirect_uri: str
    created: float

    @classmethod
    def new(cls, ident: str, next_url: str, redirect_uri: str, verifier: str) -> Pending:
        return cls(
            state=secrets.token_urlsafe(32),
            ident=ident,
            nonce=secrets.token_urlsafe(32),
            verifier=verifier,
            next_url=next_url[:2000],
            redirect_uri=redirect_uri,
            created=time.time(),
        )

    def dumps(self) -> str:
        return orjson.dumps(
            {
                "s": self.state,
                "a": self.ident,
                "n": self.nonce,
                "v": self.verifier,
                "x": self.next_url,
                "r": self.redirect_uri,
                "t": self.created,
            }
        ).decode()

    @classmethod
    def loads(cls, text: bytes) -> Pending | None:
        try:
            raw: Any = orjson.loads(text)
            pending = cls(
                state=str(raw["s"]),
                ident=str(raw["a"]),
                nonce=str(raw["n"]),
                verifier=str(raw["v"]),
                next_url=str(raw["x"]),
                redirect_uri=str(raw["r"]),
                created=float(raw["t"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        return pending

    def expired(self, max_age: float, now: float | None = None) -> bool:
        age = (time.time() if now is None else now) - self.created
        return age > max_age or age < -60


class UsedStates:
    """States already used, until they would have expired anyway."""

    def __init__(self) -> None:
        self._until: dict[bytes, float] = {}

    def use(self, state: str, until: float, now: float | None = None) -> bool:
        """Mark `state` used; False when it already was (a replay)."""
        now = time.time() if now is None else now
        if len(self._until) > 1000:
            self._until = {k: t for k, t in self._until.items() if t > now}
        key = hashlib.sha256(state.encode()).digest()
        if key in self._until and self._until[key] > now:
            return False
        self._until[key] = until
        return True


USED = UsedStates()


def same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
