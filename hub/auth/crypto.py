"""Encryption of what the hub keeps for a user but must not store in the clear.

Auth state (an identity provider's access and refresh tokens) is encrypted with
keys from the environment, never from the config file or the database:
`ATRIUM_CRYPT_KEY` (JupyterHub's `JUPYTERHUB_CRYPT_KEY` is read too), one or
more 32-byte keys, hex or base64 (`openssl rand -hex 32`), separated by `;`.
The first key encrypts; every key decrypts, so a key can be rotated by putting
the new one first. Without a key, auth state is not kept.

TOTP secrets (native accounts' second factor) are encrypted with a key derived
from the cookie secret, which every hub has: rotating the cookie secret means
people enrol their authenticator app again.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) does the work.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.errors import ConfigError

KEY_ENV = "ATRIUM_CRYPT_KEY"
KEY_ENV_COMPAT = "JUPYTERHUB_CRYPT_KEY"


class DecryptError(Exception):
    """Stored data no key can open (a key was removed, or the data was changed)."""


def _parse_key(text: str) -> bytes:
    text = text.strip()
    raw: bytes | None = None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise ConfigError(
            f"{KEY_ENV} must hold 32-byte keys, hex or base64, separated by ';' "
            "(make one with: openssl rand -hex 32)"
        )
    return raw


class Crypter:
    """Encrypts with the first key, decrypts with any."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("a Crypter needs at least one key")
        self._fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(k)) for k in keys])

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Crypter | None:
        """The auth-state crypter from ATRIUM_CRYPT_KEY (or JUPYTERHUB_CRYPT_KEY); None
        when neither is set. ConfigError names a malformed key (never shows it)."""
        env = os.environ if environ is None else environ
        value = env.get(KEY_ENV) or env.get(KEY_ENV_COMPAT) or ""
        parts = [p for p in value.replace(",", ";").split(";") if p.strip()]
        if not parts:
            return None
        return cls([_parse_key(p) for p in parts])

    @classmethod
    def derived(cls, secret: bytes, purpose: str) -> Crypter:
        """A crypter whose key is derived from `secret` (the cookie secret) for one purpose."""
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=f"atrium {purpose}".encode()
        ).derive(secret)
        return cls([key])

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise DecryptError("no key opens this data") from None

    def encrypt_json(self, value: Any) -> bytes:
        return self.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt_json(self, token: bytes) -> Any:
        return json.loads(self.decrypt(token))
