"""Hashing for credentials: API tokens (salted SHA-256) and passwords (argon2id).

Tokens are 192 random bits, so one round of salted SHA-256 cannot be
brute-forced; passwords are chosen by people and get argon2id, run off the
event loop by the caller because it is deliberately slow.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TOKEN_PREFIX_LEN = 8
_password_hasher = PasswordHasher()  # argon2id with the library's current parameters


def new_token() -> str:
    """A new API token: 48 hex characters."""
    return secrets.token_hex(24)


def token_prefix(token: str) -> str:
    return token[:TOKEN_PREFIX_LEN]


def hash_token(token: str, salt: str | None = None) -> str:
    salt = salt if salt is not None else secrets.token_hex(8)
    digest = hashlib.sha256(f"{salt}:{token}".encode()).hexdigest()
    return f"sha256${salt}${digest}"


def token_matches(token: str, hashed: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    try:
        algorithm, salt, _digest = hashed.split("$", 2)
    except ValueError:
        return False
    if algorithm != "sha256":
        return False
    return hmac.compare_digest(hash_token(token, salt), hashed)


def hash_password(password: str) -> str:
    return _password_hasher.hash(password)


def password_matches(password: str, hashed: str | None) -> bool:
    """Check a password; always does the full work so timing reveals nothing."""
    if hashed is None:
        # burn the same time as a real check for unknown users
        hashed = _dummy_hash()
        password = password + "\0"
    try:
        return _password_hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    """A generated password a person can type: 4 groups of 5 characters."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


@functools.cache
def _dummy_hash() -> str:
    return _password_hasher.hash(secrets.token_hex(16))
