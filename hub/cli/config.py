"""Where `hub-admin` finds its hub and API token.

Each setting is taken from the first place that has it:

1. the command line: `--url`, `--token`;
2. the environment: `ATRIUM_URL` / `ATRIUM_TOKEN`, then `JUPYTERHUB_API_URL` /
   `JUPYTERHUB_API_TOKEN` (set inside single-user servers and services);
3. a TOML config file: `$ATRIUM_CONFIG`, else `hub-admin.toml` in
   `$XDG_CONFIG_HOME/atrium/` (by default `~/.config/atrium/`), with the keys
   `url`, and `token` or `token_file` (a file holding only the token; a
   relative path is relative to the config file).

Like ssh with a private key, a file that holds a token (the config file with
`token`, or a `token_file`) is refused when other users may read it. A
`$ATRIUM_CONFIG` that does not exist is an error; a missing default file is not.
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hub.cli.errors import UsageError

URL_ENV = ("ATRIUM_URL", "JUPYTERHUB_API_URL")
TOKEN_ENV = ("ATRIUM_TOKEN", "JUPYTERHUB_API_TOKEN")
CONFIG_ENV = "ATRIUM_CONFIG"
CONFIG_KEYS = ("url", "token", "token_file")
MAX_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    url: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Connection:
    url: str
    token: str


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def default_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base else Path(env.get("HOME") or Path.home()) / ".config"
    return root / "atrium" / "hub-admin.toml"


def _check_private(path: Path, what: str) -> None:
    """Refuse a file holding a token that the group or others may read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UsageError(
            f"{what} {path} holds an API token but other users can read it "
            f"(mode {mode:04o}); run `chmod 600 {path}`"
        )


def _read(path: Path, what: str) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise UsageError(f"cannot read the {what} {path}: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"the {what} {path} is too large")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"the {what} {path} is not UTF-8 text") from None


def load(env: Mapping[str, str]) -> ConfigFile | None:
    """The config file's settings, None when there is no config file."""
    explicit = env.get(CONFIG_ENV, "").strip()
    path = Path(explicit).expanduser() if explicit else default_path(env)
    if not explicit and not path.is_file():
        return None
    text = _read(path, "config file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"the config file {path} is not valid TOML: {e}") from None
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(
            f"the config file {path} has unknown setting(s) {', '.join(unknown)}; "
            f"the settings are {', '.join(CONFIG_KEYS)}"
        )
    for key in CONFIG_KEYS:
        if key in data and not isinstance(data[key], str):
            raise UsageError(f"{key} in the config file {path} must be a string")
    if "token" in data and "token_file" in data:
        raise UsageError(f"the config file {path} sets both token and token_file; keep one")
    token: str | None = data.get("token")
    if token is not None:
        _check_private(path, "the config file")
    elif "token_file" in data:
        token_path = Path(data["token_file"]).expanduser()
        if not token_path.is_absolute():
            token_path = path.parent / token_path
        token = _read(token_path, "token file").strip()
        _check_private(token_path, "the token file")
        if not token:
            raise UsageError(f"the token file {token_path} is empty")
    url = data.get("url")
    return ConfigFile(path, url.strip() if url else None, token.strip() if token else None)


def connection(
    flag_url: str | None, flag_token: str | None, env: Mapping[str, str]
) -> tuple[Connection, ConfigFile | None]:
    """The hub's URL and the token, from the first place that has each (see above)."""
    url = flag_url or _first(env, URL_ENV)
    token = flag_token if flag_token is not None else _first(env, TOKEN_ENV)
    config = load(env) if not (url and token) else None
    if config is not None:
        url = url or config.url
        token = token if token else config.token
    where = str(config.path if config is not None else default_path(env))
    if not url:
        raise UsageError(
            "no hub to talk to: pass --url (or set ATRIUM_URL, or url in "
            f"{where}), or --db DB_URL to work offline"
        )
    if not token:
        raise UsageError(
            f"no API token: pass --token or set ATRIUM_TOKEN (or token_file in {where})"
        )
    return Connection(url, token), config
