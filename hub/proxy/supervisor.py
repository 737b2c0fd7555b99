"""The hub's side of the proxy: routes for servers, reconciling, the proxy process.

- `ProxyLink` adds a route when a server becomes ready and deletes it when the
  server stops (`hub.spawn.Orchestrator` calls it), and reconciles the proxy's
  table with the database at start-up and every `c.Hub.proxy_check_interval`
  seconds: missing routes of running servers are added, routes the hub made
  (data `"atrium": true`) for servers no longer running are deleted, routes
  anyone else made are never touched, and the default route `/` -> hub is put
  back if it is missing.
- `ProxyProcess` starts the proxy (`atrium proxy` or configurable-http-proxy,
  same flags) in its own session, or adopts one a previous hub left running
  (its API answers with our token; its PID comes from `c.Hub.proxy_pid_file`).
  `ProxyLink` watches it and restarts it, restoring every route, within a
  fraction of a second of it exiting. At hub shutdown the proxy keeps running
  unless `c.Hub.proxy_stop_on_exit`, so restarting the hub drops no connection.

- `RouteBroadcast` holds the table the hub wants and streams every change to
  the proxy replicas that follow it (`atrium proxy --routes-from`, served by
  `hub.api.proxy` at /hub/api/proxy/watch). With `c.Hub.proxy_api_url` empty
  that stream is the only way routes reach the proxies (several replicas, as on
  Kubernetes); with it set, the hub also drives that one proxy's routes API.

`hub.proxy.client` speaks the routes API; `hub.app` wires this together.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.db.engine import Database
from hub.db.models import Server, User
from hub.errors import ConfigError
from hub.metrics import PROXY_ADD, PROXY_DELETE, PROXY_ERRORS, PROXY_ROUTES
from hub.ops.context import HubContext
from hub.proxy.client import (
    ProxyAPIError,
    ProxyAuthError,
    ProxyClient,
    ProxyError,
    ProxyUnavailable,
    normalize_prefix,
)
from hub.proxy.server.feed import encode as encode_event
from hub.timeutil import parse_timestamp

if TYPE_CHECKING:
    from hub.settings import Hub

log = logging.getLogger(__name__)

# routes the hub made carry this key set to true in their data; others are not ours
MARKER = "atrium"
DEFAULT_PREFIX = "/"
# how often the supervisor checks that the proxy process is alive
WATCH_INTERVAL = 0.2
# route changes sent at once when restoring a whole table
CONCURRENT_CHANGES = 16

# the proxy alone (hub/proxy/__main__.py), not `-m hub.app proxy`, which imports the whole
# hub first: seconds on a busy machine, at every start and restart of the proxy
ATRIUM_PROXY_CMD = [sys.executable, "-m", "hub.proxy"]
CHP_CMD = ["configurable-http-proxy"]


class ProxyStartFailed(ConfigError):
    """The proxy could not be started or adopted; the hub refuses to start and says why."""


def connect_host(ip: str) -> str:
    """How to reach a server listening on `ip` from this machine."""
    if ip in ("", "0.0.0.0"):  # noqa: S104 (a comparison, not a bind)
        return "127.0.0.1"
    if ip == "::":
        return "[::1]"
    return f"[{ip}]" if ":" in ip else ip


def server_prefix(ctx: HubContext, user_name: str, server_name: str) -> str:
    """The route prefix of a server, as the proxy stores it (decoded, no trailing slash)."""
    return normalize_prefix(unquote(ctx.user_url(user_name, server_name)))


def server_route_data(user_name: str, server_name: str) -> dict[str, Any]:
    return {"user": user_name, "server_name": server_name, MARKER: True}


Watcher = Callable[[bytes | None], None]


class RouteBroadcast:
    """The routes the hub wants, as route events (`hub.proxy.server.feed`) for followers.

    A watcher is called with each encoded event, and with None when the hub shuts
    down. Unchanged routes send nothing, so a periodic reconcile is quiet.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, dict[str, Any]]] = {}
        self.watchers: set[Watcher] = set()

    def put(self, prefix: str, target: str, data: dict[str, Any]) -> None:
        if self.routes.get(prefix) == (target, data):
            return
        self.routes[prefix] = (target, data)
        PROXY_ROUTES.set(len(self.routes))
        self._send({"type": "ADDED", "prefix": prefix, "target": target, "data": data})

    def remove(self, prefix: str) -> None:
        if self.routes.pop(prefix, None) is not None:
            PROXY_ROUTES.set(len(self.routes))
            self._send({"type": "DELETED", "prefix": prefix})

    def replace(self, routes: dict[str, tuple[str, dict[str, Any]]]) -> None:
        for prefix in [p for p in self.routes if p not in routes]:
            self.remove(prefix)
        for prefix, (target, data) in routes.items():
            self.put(prefix, target, data)

    def snapshot(self) -> bytes:
        return encode_event(
            {
                "type": "SNAPSHOT",
                "routes": {p: {"target": t, "data": d} for p, (t, d) in self.routes.items()},
            }
        )

    def subscribe(self, watcher: Watcher) -> Callable[[], None]:
        self.watchers.add(watcher)
        return lambda: self.watchers.discard(watcher)

    def close(self) -> None:
        for watcher in list(self.watchers):
            watcher(None)
        self.watchers.clear()

    def _send(self, event: dict[str, Any]) -> None:
        line = encode_event(event)
        for watcher in list(self.watchers):
            watcher(line)


@dataclass(frozen=True)
class RouteChanges:
    """What one reconcile pass changed (prefixes)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _DbServer:
    prefix: str
    user_name: str
    server_name: str
    url: str | None
    busy: bool  # starting or stopping: its route is being changed by that work


def _db_servers(session: Session, ctx: HubContext) -> list[_DbServer]:
    """Servers running, starting or stopping, with their route prefixes."""
    rows = session.execute(
        select(Server.name, Server.url, Server.pending, User.name)
        .join(User, Server.user_id == User.id)
        .where(or_(Server.started.is_not(None), Server.pending.is_not(None)))
    ).all()
    return [
        _DbServer(server_prefix(ctx, user, name), user, name, url, pending is not None)
        for name, url, pending, user in rows
    ]


async def _limited(coros: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run route changes a few at a time; returns results or exceptions."""
    gate = asyncio.Semaphore(CONCURRENT_CHANGES)

    async def one(coro: Coroutine[Any, Any, Any]) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


def pid_alive(pid: int) -> bool:
    """Is this process running? Reaps it if it is our exited child; a zombie is not running."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (adopted from an earlier hub): ask the kernel
    else:
        return done == 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class ProxyProcessConfig:
    cmd: list[str]
    ip: str  # public address the proxy listens on
    port: int
    api_ip: str
    api_port: int
    base_url: str
    token: str
    pid_file: Path | None
    start_timeout: float = 10.0
    stop_on_exit: bool = False
    extra_args: tuple[str, ...] = ()  # after the flags above (--workers for atrium proxy)


class ProxyProcess:
    """Starts, adopts, checks and stops the proxy process."""

    def __init__(self, config: ProxyProcessConfig, client: ProxyClient) -> None:
        self.config = config
        self.client = client
        self.pid: int | None = None

    def command(self, hub_url: str) -> list[str]:
        c = self.config
        return [
            *c.cmd,
            "--ip",
            c.ip,
            "--port",
            str(c.port),
            "--api-ip",
            c.api_ip,
            "--api-port",
            str(c.api_port),
            "--default-target",
            hub_url,
            "--error-target",
            f"{hub_url}{c.base_url}hub/error",
            *c.extra_args,
        ]

    async def _probe(self) -> bool:
        """True if our proxy answers; raises ProxyStartFailed if something else does."""
        try:
            await self.client.get_routes(limit=2.0)
        except ProxyUnavailable:
            return False
        except ProxyAuthError:
            raise ProxyStartFailed(
                f"a proxy is already running at {self.client.api_url} but does not accept this "
                "hub's token (CONFIGPROXY_AUTH_TOKEN or c.Hub.proxy_auth_token_file); stop it or "
                "give the hub the same token"
            ) from None
        except ProxyAPIError as e:
            raise ProxyStartFailed(
                f"something that is not a proxy answers at {self.client.api_url} "
                f"(HTTP {e.status}); set c.Hub.proxy_api_url to a free port"
            ) from None
        return True

    def _read_pid_file(self) -> int | None:
        path = self.config.pid_file
        if path is None:
            return None
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid > 0 and pid_alive(pid) else None

    async def ensure_running(self, hub_url: str) -> None:
        """Adopt the proxy if one of ours answers, else start one and wait until it answers."""
        if await self._probe():
            self.pid = self._read_pid_file()
            log.info(
                "Adopted the proxy already running at %s (pid %s)",
                self.client.api_url,
                self.pid or "unknown",
            )
            return
        await self._spawn(hub_url)

    async def _spawn(self, hub_url: str) -> None:
        cmd = self.command(hub_url)
        env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": self.config.token}
        try:
            # its own session: a Ctrl-C at the hub's terminal or the hub exiting leave it be
            pid = await asyncio.to_thread(
                os.posix_spawnp,
                cmd[0],
                cmd,
                env,
                setsid=True,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
            )
        except OSError as e:
            raise ProxyStartFailed(
                f"cannot run the proxy command {cmd[0]!r}: {e.strerror or e} (see c.Hub.proxy_cmd)"
            ) from None
        self.pid = pid
        log.info("Started the proxy (pid %s): %s", pid, " ".join(cmd))
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            if not pid_alive(pid):
                self.pid = None
                raise ProxyStartFailed(
                    f"the proxy exited at start (command {' '.join(cmd)}); see its output above"
                )
            if await self._probe():
                break
            if time.monotonic() > deadline:
                self._kill(pid, signal.SIGKILL)
                self.pid = None
                raise ProxyStartFailed(
                    f"the proxy did not answer at {self.client.api_url} within "
                    f"{self.config.start_timeout:g} seconds (c.Hub.proxy_start_timeout)"
                )
            await asyncio.sleep(0.05)
        self._write_pid_file(pid)

    def _write_pid_file(self, pid: int) -> None:
        if self.config.pid_file is None:
            return
        try:
            self.config.pid_file.write_text(f"{pid}\n")
        except OSError as e:
            log.warning("Cannot write the proxy's pid file %s: %s", self.config.pid_file, e)

    async def alive(self) -> bool:
        if self.pid is not None:
            return pid_alive(self.pid)
        # adopted without a PID: it is alive while its API answers
        try:
            await self.client.get_routes(limit=2.0)
        except ProxyUnavailable:
            return False
        except ProxyError:
            return True
        return True

    @staticmethod
    def _kill(pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the proxy (SIGTERM, then SIGKILL) if we know its PID."""
        pid = self.pid
        if pid is None:
            return
        self._kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while pid_alive(pid):
            if time.monotonic() > deadline:
                self._kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.05)
        self.pid = None
        if self.config.pid_file is not None:
            self.config.pid_file.unlink(missing_ok=True)
        log.info("Stopped the proxy (pid %s)", pid)


@contextlib.contextmanager
def _timed(histogram: Any, operation: str) -> Iterator[None]:
    """Time a routes API call into `histogram` by outcome; count its failures."""
    began = time.perf_counter()
    status = "failure"
    try:
        yield
        status = "success"
    finally:
        histogram.labels(status=status).observe(time.perf_counter() - began)
        if status == "failure":
            PROXY_ERRORS.labels(operation=operation).inc()


class ProxyLink:
    """The hub's routes in the proxy, kept in step with the database.

    `client` is None when no proxy API is driven (`c.Hub.proxy_api_url` empty):
    then proxies follow `broadcast` only. `token` is the secret the hub and its
    proxies share; followers present it at /hub/api/proxy/watch.
    """

    def __init__(
        self,
        client: ProxyClient | None,
        db: Database,
        ctx: HubContext,
        check_interval: float = 30.0,
        process: ProxyProcess | None = None,
        token: str = "",
    ) -> None:
        self.client = client
        self.db = db
        self.ctx = ctx
        self.check_interval = check_interval
        self.process = process
        self.token = token
        self.hub_url = ""
        self.broadcast = RouteBroadcast()
        # /services/<name>/ -> the service's url, for every service with one (c.Hub.services)
        self.service_routes: dict[str, str] = {}
        # held while a route changes together with the database (see hub.spawn)
        self.lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- routes of servers (called by hub.spawn) ---------------------------------------

    async def add_server(self, user_name: str, server_name: str, url: str) -> None:
        prefix = server_prefix(self.ctx, user_name, server_name)
        data = server_route_data(user_name, server_name)
        if self.client is not None:
            with _timed(PROXY_ADD, "add"):
                await self.client.add_route(prefix, url, data)
        self.broadcast.put(prefix, url, data)
        log.debug("Route %s -> %s added", prefix, url)

    async def route_activity(self) -> list[tuple[str, str, datetime.datetime]]:
        """(user, server name, last activity) of every server route the proxy has (the
        hub's own routes, by their data), for the culler; [] without a routes API."""
        if self.client is None:
            return []
        found = []
        for route in (await self.client.get_routes()).values():
            user, server_name = route.get("user"), route.get("server_name", "")
            if not route.get(MARKER) or not isinstance(user, str):
                continue
            try:
                when = parse_timestamp(route.get("last_activity"))
            except ValueError:
                continue  # a proxy that does not track activity
            found.append((user, str(server_name or ""), when))
        return found

    async def remove_server(self, user_name: str, server_name: str) -> None:
        prefix = server_prefix(self.ctx, user_name, server_name)
        self.broadcast.remove(prefix)
        if self.client is not None:
            with _timed(PROXY_DELETE, "delete"):
                await self.client.delete_route(prefix)
        log.debug("Route %s removed", prefix)

    # --- reconcile ----------------------------------------------------------------------

    def _hub_route(self) -> tuple[str, dict[str, Any]]:
        return self.hub_url, {"hub": True, MARKER: True}

    def _fixed_routes(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The routes that do not follow servers: `/` -> hub, and the services'."""
        fixed = {
            prefix: (url, {"service": prefix.rstrip("/").rpartition("/")[2], MARKER: True})
            for prefix, url in self.service_routes.items()
        }
        if self.hub_url:
            fixed[DEFAULT_PREFIX] = self._hub_route()
        return fixed

    async def reconcile(self) -> RouteChanges:
        """Make the proxy's table match the database's running servers (see module doc)."""
        async with self.lock:
            servers = await self.db.run(_db_servers, self.ctx)
            busy = {s.prefix for s in servers if s.busy}
            wanted = {s.prefix: s for s in servers if not s.busy and s.url}
            table = {
                p: (s.url, server_route_data(s.user_name, s.server_name))
                for p, s in wanted.items()
                if s.url
            }
            fixed = self._fixed_routes()
            table.update(fixed)
            # a route being changed by a start or stop is left as that work leaves it
            table.update({p: r for p, r in self.broadcast.routes.items() if p in busy})
            self.broadcast.replace(table)
            if self.client is None:
                return RouteChanges()
            routes = await self.client.get_routes()
            to_add: dict[str, tuple[str, dict[str, Any]]] = {}
            for prefix, s in wanted.items():
                have = routes.get(prefix)
                if have is None or have.get("target") != s.url or not have.get(MARKER):
                    to_add[prefix] = table[prefix]
            for prefix, (target, data) in fixed.items():
                have = routes.get(prefix)
                if have is None or have.get("target") != target:
                    # the hub owns `/`, as on JupyterHub, and the services' prefixes:
                    # missing or pointing elsewhere, they are reset
                    to_add[prefix] = (target, data)
            to_remove = [
                prefix
                for prefix, data in routes.items()
                if data.get(MARKER) is True
                and prefix not in fixed
                and prefix not in wanted
                and prefix not in busy
            ]
            client = self.client
            calls: list[Coroutine[Any, Any, Any]] = [
                client.add_route(p, t, d) for p, (t, d) in to_add.items()
            ]
            calls += [client.delete_route(p) for p in to_remove]
            results = await _limited(calls)
        failed = [r for r in results if isinstance(r, BaseException)]
        n = len(to_add)
        changes = RouteChanges(
            added=[p for p, r in zip(to_add, results[:n], strict=True) if r is None],
            removed=[p for p, r in zip(to_remove, results[n:], strict=True) if r is True],
        )
        if changes.added or changes.removed:
            log.info(
                "Proxy routes reconciled: %d added, %d removed",
                len(changes.added),
                len(changes.removed),
            )
        if failed:
            raise failed[0]
        return changes

    # --- life cycle ---------------------------------------------------------------------

    async def start(self, hub_url: str) -> None:
        """Start or adopt the proxy, restore the routes, and begin checking.

        `hub_url` is where the proxy reaches the hub (`http://127.0.0.1:8081`): the
        target of the default route and the base of the error pages.
        """
        self.hub_url = hub_url.rstrip("/")
        if self.process is not None:
            await self.process.ensure_running(self.hub_url)
            await self.reconcile()
            self._own(self._watch())
        else:
            try:
                await self.reconcile()
            except ProxyError as e:
                # an external proxy may come up after the hub: the periodic check catches up
                log.warning("The proxy's routes could not be checked at start-up: %s", e)
        self._own(self._check_periodically())

    def _own(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.reconcile()
            except ProxyError as e:
                PROXY_ERRORS.labels(operation="check").inc()
                log.warning("Checking the proxy's routes failed: %s", e)
            except Exception:
                PROXY_ERRORS.labels(operation="check").inc()
                log.exception("Checking the proxy's routes failed")

    async def _watch(self) -> None:
        """Restart the proxy as soon as it exits, and put every route back."""
        assert self.process is not None
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if await self.process.alive():
                continue
            log.warning("The proxy (pid %s) is gone; restarting it", self.process.pid)
            self.process.pid = None
            try:
                await self.process.ensure_running(self.hub_url)
                changes = await self.reconcile()
            except Exception as e:
                log.error("Restarting the proxy failed: %s; trying again", e)
                await asyncio.sleep(1.0)
                continue
            log.info("The proxy is back with %d routes restored", len(changes.added))

    async def shutdown(self) -> None:
        """Stop checking; stop the proxy only if configured to (it keeps users connected)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.broadcast.close()
        if self.process is None:
            return
        if self.process.config.stop_on_exit:
            await self.process.stop()
        elif self.process.pid is not None:
            log.info(
                "The proxy (pid %s) keeps serving users; the next hub adopts it "
                "(to stop it: kill %s, or c.Hub.proxy_stop_on_exit = True)",
                self.process.pid,
                self.process.pid,
            )


def _api_address(api_url: str) -> tuple[str, int]:
    parts = urlsplit(api_url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ConfigError(
            f"c.Hub.proxy_api_url must be http://HOST:PORT for a proxy the hub starts, "
            f"not {api_url!r}"
        )
    return parts.hostname, parts.port


def atrium_proxy_args(settings: Hub) -> tuple[str, ...]:
    """Flags only `atrium proxy` has: its processes, and logging like the hub's."""
    level = logging.getLogger().getEffectiveLevel()
    name = next(
        (n for n, v in (("debug", 10), ("info", 20), ("warn", 30)) if level <= v),
        "error",
    )
    return (
        "--workers",
        str(proxy_workers(settings.proxy_workers)),
        "--log-format",
        settings.log_format,
        "--log-level",
        name,
    )


def proxy_workers(setting: int) -> int:
    """c.Hub.proxy_workers, with 0 meaning one per CPU (at most 4)."""
    if setting > 0:
        return setting
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def proxy_from_settings(
    settings: Hub, token: str, db: Database, ctx: HubContext
) -> ProxyLink | None:
    """The proxy link for these settings; None when `c.Hub.proxy` is 'none'."""
    s = settings
    if s.proxy == "none":
        return None
    s.check_combinations()
    if not s.proxy_api_url:
        return ProxyLink(None, db, ctx, s.proxy_check_interval, None, token)
    client = ProxyClient(s.proxy_api_url, token, timeout=s.proxy_api_timeout)
    process = None
    if s.proxy_should_start:
        api_ip, api_port = _api_address(s.proxy_api_url)
        default_cmd = ATRIUM_PROXY_CMD if s.proxy == "atrium" else CHP_CMD
        config = ProxyProcessConfig(
            cmd=list(s.proxy_cmd) or default_cmd,
            ip=s.ip,
            port=s.port,
            api_ip=api_ip,
            api_port=api_port,
            base_url=s.base_url,
            token=token,
            pid_file=Path(s.proxy_pid_file) if s.proxy_pid_file else None,
            start_timeout=s.proxy_start_timeout,
            stop_on_exit=s.proxy_stop_on_exit,
            extra_args=atrium_proxy_args(s) if s.proxy == "atrium" and not s.proxy_cmd else (),
        )
        process = ProxyProcess(config, client)
    return ProxyLink(client, db, ctx, s.proxy_check_interval, process, token)
