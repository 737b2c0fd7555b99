"""ID tokens: checked against the provider's keys before any claim is believed.

`Keys` keeps the provider's JWKS (fetched when first needed, kept `max_age`
seconds, fetched again once when a token names a key it does not hold: the
provider rotated its keys). `check_id_token` verifies, in this order: the
header's algorithm is on the allow-list (never `none`, never a symmetric one
unless configured), the signature with the key the header names, then the
claims (OpenID Connect Core 3.1.3.7): `iss` is the provider's issuer, `aud`
holds the client id (and `azp` is the client id when there are several
audiences, or whenever present), `exp`, `iat` and `nbf` with a small leeway for
clocks, and `nonce` equals the one this login sent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Collection
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from hub.auth.oauth.http import ProviderError, bad_answer, get_json

MAX_TOKEN = 64 * 1024  # characters


class IdTokenError(Exception):
    """The ID token must not be believed; the reason is for the log."""


def _header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise IdTokenError("not a compact JWS")
    part = token.split(".", 1)[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError):
        raise IdTokenError("unreadable header") from None
    if not isinstance(header, dict):
        raise IdTokenError("unreadable header")
    return header


class Keys:
    """A provider's signing keys (its JWKS), cached."""

    def __init__(self, provider: str, url: str, max_age: float, wait: float) -> None:
        self.provider = provider
        self.url = url
        self.max_age = max_age
        self.wait = wait
        self._keys: KeySet | None = None
        self._fetched = 0.0

    async def _fetch(self) -> KeySet:
        document = await get_json(self.provider, self.url, wait=self.wait)
        try:
            keys = KeySet.import_key_set(document)
        except (JoseError, ValueError, TypeError, KeyError) as e:
            raise ProviderError(
                bad_answer(self.provider), f"JWKS at {self.url}: {type(e).__name__}"
            ) from None
        self._keys = keys
        self._fetched = time.monotonic()
        return keys

    async def key_for(self, kid: str | None, alg: str) -> Any:
        """The key `kid` names (the only one, if there is no kid); fetched again once
        when unknown. IdTokenError when the provider has no such key."""
        keys = self._keys
        fresh = False
        if keys is None or time.monotonic() - self._fetched > self.max_age:
            keys = await self._fetch()
            fresh = True
        found = _pick(keys, kid, alg)
        if found is None and not fresh:
            found = _pick(await self._fetch(), kid, alg)
        if found is None:
            raise IdTokenError(f"no key with kid {str(kid)[:40]!r} in the provider's JWKS")
        return found


def _pick(keys: KeySet, kid: str | None, alg: str) -> Any:
    candidates = [k for k in keys.keys if kid is None or k.kid == kid]
    candidates = [k for k in candidates if k.get("use") in (None, "sig")]
    candidates = [k for k in candidates if k.get("alg") in (None, alg)]
    if kid is None and len(candidates) > 1:
        # no kid: only a provider with one signing key of this kind is unambiguous
        kinds = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
        candidates = [k for k in candidates if k.key_type == kinds.get(alg[:2], "")]
    return candidates[0] if len(candidates) == 1 or (kid and candidates) else None


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    raise IdTokenError("aud missing or malformed")


def _number(claims: dict[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise IdTokenError(f"{name} missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdTokenError(f"{name} is not a number")
    return float(value)


def check_claims(
    claims: dict[str, Any],
    *,
    issuers: Collection[str],
    client_id: str,
    nonce: str | None,
    leeway: float,
    max_age: float,
    now: float | None = None,
) -> None:
    """Claims checks (IdTokenError names the first that fails). `nonce` None: none is
    expected (a refreshed token), though one present is not checked against anything."""
    now = time.time() if now is None else now
    if claims.get("iss") not in issuers:
        raise IdTokenError(f"iss {str(claims.get('iss'))[:80]!r} is not the provider's")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise IdTokenError("sub missing")
    audiences = _audiences(claims)
    if client_id not in audiences:
        raise IdTokenError("aud does not name this hub's client id")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise IdTokenError("azp is not this hub's client id")
    exp = _number(claims, "exp", required=True)
    iat = _number(claims, "iat", required=True)
    nbf = _number(claims, "nbf", required=False)
    assert exp is not None
    assert iat is not None
    if exp + leeway < now:
        raise IdTokenError("expired")
    if iat - leeway > now:
        raise IdTokenError("issued in the future")
    if now - iat > max_age + leeway:
        raise IdTokenError("issued too long ago")
    if nbf is not None and nbf - leeway > now:
        raise IdTokenError("not valid yet (nbf)")
    if nonce is not None:
        got = claims.get("nonce")
        if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
            raise IdTokenError("nonce does not match this login's")


async def check_id_token(
    token: str,
    keys: Keys,
    *,
    algorithms: Collection[str],
    issuers: Collection[str],
    client_id: str,
    nonce: str | None,
    leeway: float,
    max_age: float,
    client_secret: str = "",
) -> dict[str, Any]:
    """The ID token's claims, once signature and claims are checked; IdTokenError
    otherwise (ProviderError when the keys cannot be fetched). HS256/384/512, when
    allowed, are keyed with the client secret (OpenID Connect Core 10.1)."""
    header = _header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none" or alg not in algorithms:
        raise IdTokenError(f"algorithm {str(alg)[:20]!r} is not allowed")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise IdTokenError("kid is not a string")
    if alg.startswith("HS"):
        if len(client_secret) < 32:
            raise IdTokenError("HMAC-signed, but the client secret is too short to trust it")
        key: Any = OctKey.import_key(client_secret.encode())
    else:
        key = await keys.key_for(kid, alg)
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except (JoseError, ValueError, TypeError) as e:
        raise IdTokenError(f"signature: {type(e).__name__}") from None
    claims = dict(decoded.claims)
    check_claims(
        claims,
        issuers=issuers,
        client_id=client_id,
        nonce=nonce,
        leeway=leeway,
        max_age=max_age,
    )
    return claims
