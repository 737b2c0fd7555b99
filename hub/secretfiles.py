"""The hub's own secrets: the cookie secret and the proxy's auth token.

Each is read from the environment if set there, else from its file, which is
created on first start with mode 0600. A secret file that group or others can
read is refused with a message saying how to fix it: a leaked cookie secret
lets anyone forge a login.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from hub.errors import ConfigError

log = logging.getLogger(__name__)

COOKIE_SECRET_ENV = "ATRIUM_COOKIE_SECRET"  # noqa: S105 (a variable name)
PROXY_TOKEN_ENV = "CONFIGPROXY_AUTH_TOKEN"  # noqa: S105 (a variable name)


@dataclass(frozen=True)
class HubSecrets:
    cookie_secret: bytes
    proxy_token: str


def _check_mode(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
            f"it holds a secret. Fix with: chmod 600 {path}"
        )


def load_or_create(path: Path, env_var: str, nbytes: int) -> str:
    """A hex secret from `env_var`, or from `path`, created if missing."""
    from_env = os.environ.get(env_var, "").strip()
    if from_env:
        return from_env
    if path.exists():
        _check_mode(path)
        value = path.read_text().strip()
        if not value:
            raise ConfigError(f"{path} is empty; delete it to have a new secret generated")
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(nbytes)
    # create with 0600 from the start: no window where it is world-readable
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    log.info("Generated a new secret in %s", path)
    return value


def load_secrets(cookie_secret_file: Path, proxy_token_file: Path) -> HubSecrets:
    cookie = load_or_create(cookie_secret_file, COOKIE_SECRET_ENV, 32)
    try:
        cookie_bytes = bytes.fromhex(cookie)
    except ValueError:
        raise ConfigError(
            f"the cookie secret (from {COOKIE_SECRET_ENV} or {cookie_secret_file}) must be hex"
        ) from None
    if len(cookie_bytes) < 32:
        raise ConfigError("the cookie secret must be at least 32 bytes (64 hex characters)")
    proxy = load_or_create(proxy_token_file, PROXY_TOKEN_ENV, 32)
    return HubSecrets(cookie_bytes, proxy)
