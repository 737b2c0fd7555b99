"""Services: programs that work with the hub (`c.Hub.services`, JupyterHub's shape).

A service has a name and an API token, and with them whatever its roles allow
(`c.Hub.load_roles` entries name it under `services`). Two kinds, as on JupyterHub:

- managed: the hub runs its `command` with its token, the hub API's URL and
  (with a `url`) where it must listen, in the environment; a service that exits
  is started again, after a pause that doubles while it keeps failing, and the
  hub stops it when it stops itself;
- external: something else runs it; it is configured with its `api_token`.

A service with a `url` is proxied at `<base_url>services/<name>/` and is an OAuth
client of the hub (`service-<name>`, its API token as the secret), so people
log in to it with their hub account. Logging in takes `access:services` on it,
which admins hold and others get from a role, as on JupyterHub; the person
confirms once on a page unless the service has `oauth_no_confirm`.

`parse_services` checks the config (a `ConfigError` names the entry and the
fault), `sync_services` makes the database match it at each start, and
`ServiceSupervisor` runs the managed ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.db.models import APIToken, OAuthClient, Service
from hub.errors import ConfigError
from hub.log import bounded
from hub.ops.credentials import drop_client
from hub.rbac import scopes
from hub.secrets_hash import hash_token, new_token, token_prefix

log = logging.getLogger(__name__)

KEYS = frozenset(
    {
        "name",
        "url",
        "command",
        "api_token",
        "admin",
        "environment",
        "cwd",
        "oauth_no_confirm",
        "oauth_client_id",
        "oauth_redirect_uri",
        "oauth_client_allowed_scopes",
        "info",
        "display",
    }
)
NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}")
MIN_TOKEN_LEN = 16
RESTART_DELAY = 1.0  # before starting a service that exited (doubling while it fails)
MAX_RESTART_DELAY = 60.0
STEADY = 60.0  # seconds up after which a service's next exit starts the delay afresh
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL at stop
# the hub's environment a service keeps (as a server does), the rest is not passed on
ENV_KEEP = (
    "PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_ROOT",
    "CONDA_DEFAULT_ENV",
    "LANG",
    "LC_ALL",
)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    url: str = ""
    command: tuple[str, ...] = ()
    api_token: str = ""
    admin: bool = False
    environment: Mapping[str, str] = field(default_factory=dict)
    cwd: str = ""
    oauth_no_confirm: bool = False
    oauth_client_id: str = ""
    oauth_redirect_uri: str = ""
    oauth_client_allowed_scopes: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)
    display: bool = True

    @property
    def managed(self) -> bool:
        return bool(self.command)

    @property
    def client_id(self) -> str:
        return self.oauth_client_id or f"service-{self.name}"

    @property
    def oauth(self) -> bool:
        """An OAuth client of the hub: proxied, or its OAuth settings given."""
        return bool(self.url or self.oauth_client_id or self.oauth_redirect_uri)

    def prefix(self, base_url: str) -> str:
        return f"{base_url}services/{self.name}/"

    def redirect_uri(self, base_url: str) -> str:
        return self.oauth_redirect_uri or f"{self.prefix(base_url)}oauth_callback"

    def access_scope(self) -> str:
        return f"access:services!service={self.name}"


def _fail(index: int, name: object, message: str) -> ConfigError:
    label = f"services[{index}]" + (f" ({bounded(str(name), 40)})" if isinstance(name, str) else "")
    return ConfigError(f"{label}: {message}")


def _strings(value: object) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) and v.strip() for v in value)


def _check_url(value: object, what: str, path_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    if value == "" or (path_ok and value.startswith("/") and not value.startswith("//")):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http:// or https:// URL, not {bounded(value, 80)!r}")
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise ValueError(f"{what} has a bad port: {bounded(value, 80)!r}") from None
    return value


def _one(index: int, spec: object) -> ServiceSpec:
    if not isinstance(spec, Mapping):
        raise _fail(index, None, "must be a dict like {'name': ..., 'url': ...}")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise _fail(
            index,
            None,
            "needs a name of letters, digits and . _ - (at most 64, starting with a letter "
            f"or digit), not {bounded(repr(name), 60)}",
        )
    unknown = set(spec) - KEYS
    if unknown:
        raise _fail(index, name, f"no such field(s): {', '.join(sorted(map(str, unknown)))}")
    try:
        url = _check_url(spec.get("url", "") or "", "url")
        command = spec.get("command", []) or []
        if isinstance(command, str):
            command = [command]
        if not _strings(command):
            raise ValueError("command must be a list of non-empty strings")
        token = spec.get("api_token", "") or ""
        if not isinstance(token, str) or (token and len(token) < MIN_TOKEN_LEN):
            raise ValueError(f"api_token must be a string of at least {MIN_TOKEN_LEN} characters")
        env = spec.get("environment", {}) or {}
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ValueError("environment must be a dict of strings to strings")
        for key in ("admin", "oauth_no_confirm", "display"):
            if not isinstance(spec.get(key, False), bool):
                raise ValueError(f"{key} must be True or False")
        cwd = spec.get("cwd", "") or ""
        if not isinstance(cwd, str):
            raise ValueError("cwd must be a string")
        client_id = spec.get("oauth_client_id", "") or ""
        if not isinstance(client_id, str) or (client_id and not client_id.startswith("service-")):
            raise ValueError("oauth_client_id must start with 'service-'")
        redirect = _check_url(
            spec.get("oauth_redirect_uri", "") or "", "oauth_redirect_uri", path_ok=True
        )
        allowed = spec.get("oauth_client_allowed_scopes", []) or []
        if not isinstance(allowed, list | tuple):
            raise ValueError("oauth_client_allowed_scopes must be a list of scopes")
        for scope in allowed:
            scopes.validate(scope)
        info = spec.get("info", {}) or {}
        if not isinstance(info, Mapping):
            raise ValueError("info must be a dict")
        orjson.dumps(info)  # shown by the API: it must be JSON
    except (ValueError, TypeError, orjson.JSONEncodeError) as e:
        raise _fail(index, name, str(e)) from None
    except Exception as e:  # a scope's own error (BadRequest)
        raise _fail(index, name, str(e)) from None
    service = ServiceSpec(
        name=name,
        url=url,
        command=tuple(command),
        api_token=token,
        admin=bool(spec.get("admin", False)),
        environment=dict(env),
        cwd=cwd,
        oauth_no_confirm=bool(spec.get("oauth_no_confirm", False)),
        oauth_client_id=client_id,
        oauth_redirect_uri=redirect,
        oauth_client_allowed_scopes=tuple(allowed),
        info=dict(info),
        display=bool(spec.get("display", True)),
    )
    if not service.managed and not service.api_token and service.oauth:
        raise _fail(index, name, "an external service with OAuth needs its api_token (the secret)")
    if service.oauth and not service.url and not service.oauth_redirect_uri:
        raise _fail(index, name, "OAuth without a url needs oauth_redirect_uri")
    return service


def parse_services(specs: Iterable[object]) -> list[ServiceSpec]:
    """The services of `c.Hub.services`, checked; ConfigError says which and why."""
    services = [_one(i, spec) for i, spec in enumerate(specs)]
    names: set[str] = set()
    tokens: set[str] = set()
    clients: set[str] = set()
    for i, s in enumerate(services):
        if s.name in names:
            raise _fail(i, s.name, "another service has this name")
        if s.api_token and s.api_token in tokens:
            raise _fail(i, s.name, "another service has the same api_token")
        if s.oauth and s.client_id in clients:
            raise _fail(i, s.name, "another service has the same oauth_client_id")
        names.add(s.name)
        tokens.add(s.api_token)
        clients.add(s.client_id)
    return services


# --- the database -------------------------------------------------------------------


def sync_services(session: Session, services: list[ServiceSpec], base_url: str) -> dict[str, str]:
    """Make the services table, their tokens and OAuth clients match the config.

    Each service's token is the configured one, or for a managed service without one
    a new one at each start (the old one stops working). Services no longer in the
    config go, with their tokens, their OAuth client and what people logged in to
    them with. Returns each service's token, for the managed ones' environment.
    """
    wanted = {s.name: s for s in services}
    tokens: dict[str, str] = {}
    existing = {row.name: row for row in session.scalars(select(Service))}
    for name, gone in existing.items():
        if name not in wanted:
            log.info("Removing service %s, no longer in the config", name)
            if gone.oauth_client_id:
                drop_client(session, gone.oauth_client_id)
            session.delete(gone)
    session.flush()
    for spec in services:
        row = existing.get(spec.name)
        if row is None:
            row = Service(name=spec.name)
            session.add(row)
        old_client = row.oauth_client_id
        row.admin = spec.admin
        row.url = spec.url or None
        row.oauth_client_id = spec.client_id if spec.oauth else None
        session.flush()
        if old_client and old_client != row.oauth_client_id:
            drop_client(session, old_client)
        session.execute(delete(APIToken).where(APIToken.service_id == row.id))
        token = spec.api_token or new_token()
        tokens[spec.name] = token
        session.add(
            APIToken(
                service_id=row.id,
                prefix=token_prefix(token),
                hashed=hash_token(token),
                scopes=["inherit"],
                note="from the config" if spec.api_token else "made at hub start",
            )
        )
        if spec.oauth:
            _put_client(session, spec, token, base_url)
    session.flush()
    return tokens


def _put_client(session: Session, spec: ServiceSpec, token: str, base_url: str) -> None:
    client = session.scalar(select(OAuthClient).where(OAuthClient.identifier == spec.client_id))
    if client is None:
        client = OAuthClient(identifier=spec.client_id)
        session.add(client)
    client.description = f"Service {spec.name}"
    client.secret_hash = hash_token(token)
    client.redirect_uri = spec.redirect_uri(base_url)
    client.allowed_scopes = sorted({spec.access_scope(), *spec.oauth_client_allowed_scopes})


def service_model(
    spec: ServiceSpec, roles: list[str], pid: int, base_url: str, visible: frozenset[str]
) -> dict[str, Any]:
    """JupyterHub's service model, with the keys `visible` names."""
    model: dict[str, Any] = {
        "kind": "service",
        "name": spec.name,
        "admin": spec.admin,
        "roles": roles,
        "url": spec.url,
        "prefix": spec.prefix(base_url) if spec.url else "",
        "command": list(spec.command),
        "pid": pid,
        "info": dict(spec.info),
        "display": spec.display,
    }
    return {k: v for k, v in model.items() if k in visible}


# which keys of a service model each scope reveals (as on JupyterHub)
SERVICE_KEYS: dict[str, frozenset[str]] = {
    "read:services": frozenset(
        {"kind", "name", "admin", "url", "prefix", "command", "pid", "info", "display"}
    ),
    "read:services:name": frozenset({"kind", "name", "admin"}),
    "read:roles:services": frozenset({"kind", "name", "roles", "admin"}),
}


# --- running the managed ones -------------------------------------------------------

PR_SET_PDEATHSIG = 1
try:  # loaded here, not in the child between fork and exec
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover (not Linux)
    _LIBC = None


def _die_with_the_hub() -> None:
    """In the service's process before it runs its command: SIGTERM when the hub's
    process ends, even killed outright (Linux), so no service outlives its hub to hold
    the port the next hub's copy needs, with a token that no longer works."""
    if _LIBC is not None and hasattr(_LIBC, "prctl"):
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def service_env(
    spec: ServiceSpec, token: str, hub_url: str, base_url: str, public_url: str = ""
) -> dict[str, str]:
    """A managed service's environment: the kept part of the hub's, its own
    `environment`, then the hub's variables (which win)."""
    env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
    env.update(spec.environment)
    api_url = f"{hub_url}{base_url}hub/api"
    access = orjson.dumps([spec.access_scope()]).decode()
    env.update(
        {
            "JUPYTERHUB_SERVICE_NAME": spec.name,
            "JUPYTERHUB_API_TOKEN": token,
            "JPY_API_TOKEN": token,
            "JUPYTERHUB_API_URL": api_url,
            "JUPYTERHUB_BASE_URL": base_url,
            "JUPYTERHUB_HOST": "",
            "JUPYTERHUB_PUBLIC_URL": "",
            "JUPYTERHUB_PUBLIC_HUB_URL": f"{public_url}{base_url}hub/" if public_url else "",
        }
    )
    if spec.url:
        prefix = spec.prefix(base_url)
        env["JUPYTERHUB_SERVICE_URL"] = spec.url
        env["JUPYTERHUB_SERVICE_PREFIX"] = prefix
        if public_url:
            env["JUPYTERHUB_PUBLIC_URL"] = f"{public_url}{prefix}"
    if spec.oauth:
        env.update(
            {
                "JUPYTERHUB_CLIENT_ID": spec.client_id,
                "JUPYTERHUB_OAUTH_CALLBACK_URL": spec.redirect_uri(base_url),
                "JUPYTERHUB_OAUTH_SCOPES": access,
                "JUPYTERHUB_OAUTH_ACCESS_SCOPES": access,
                "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": orjson.dumps(
                    list(spec.oauth_client_allowed_scopes)
                ).decode(),
            }
        )
    return env


@dataclass
class Running:
    spec: ServiceSpec
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    task: asyncio.Task[None] | None = None


class ServiceSupervisor:
    """Runs the managed services, restarts those that exit, stops them at shutdown."""

    def __init__(
        self, services: list[ServiceSpec], tokens: Mapping[str, str], base_url: str
    ) -> None:
        self.tokens = dict(tokens)
        self.base_url = base_url
        self.running = {s.name: Running(s) for s in services if s.managed}
        self.stopping = False

    def pid(self, name: str) -> int:
        one = self.running.get(name)
        if one is None or one.process is None or one.process.returncode is not None:
            return 0
        return one.process.pid

    def start(self, hub_url: str) -> None:
        """Start every managed service (`hub_url`: where services reach the hub)."""
        for one in self.running.values():
            one.task = asyncio.ensure_future(self._keep_running(one, hub_url))

    async def _spawn(self, one: Running, hub_url: str) -> asyncio.subprocess.Process:
        spec = one.spec
        env = service_env(spec, self.tokens[spec.name], hub_url, self.base_url)
        return await asyncio.create_subprocess_exec(
            *spec.command,
            env=env,
            cwd=spec.cwd or None,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with its children
            preexec_fn=_die_with_the_hub,  # only prctl runs between fork and exec
        )

    async def _keep_running(self, one: Running, hub_url: str) -> None:
        delay = RESTART_DELAY
        name = one.spec.name
        while not self.stopping:
            began = time.monotonic()
            try:
                one.process = await self._spawn(one, hub_url)
            except OSError as e:
                log.error("Service %s could not start: %s", name, e)
            else:
                if self.stopping:  # stopped while it was being started
                    await self._stop_one(one)
                    return
                one.starts += 1
                log.info("Service %s started (pid %s)", name, one.process.pid)
                code = await one.process.wait()
                if self.stopping:
                    return
                log.error("Service %s exited with status %s", name, code)
            if time.monotonic() - began > STEADY:
                delay = RESTART_DELAY
            log.info("Starting service %s again in %.0f s", name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)

    async def stop(self) -> None:
        """SIGTERM to each service's process group, SIGKILL after STOP_GRACE."""
        self.stopping = True
        for one in self.running.values():
            if one.task is not None and (one.process is None or one.process.returncode is not None):
                one.task.cancel()  # waiting to start again
        await asyncio.gather(*(self._stop_one(o) for o in self.running.values()))
        tasks = [o.task for o in self.running.values() if o.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop_one(self, one: Running) -> None:
        process = one.process
        if process is None or process.returncode is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
        log.info("Service %s stopped", one.spec.name)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
