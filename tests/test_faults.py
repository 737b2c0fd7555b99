"""Restarts and faults, with the part really killed or broken.

- The hub SIGKILLed under an open notebook connection (real single-user server, real
  kernel, websocket through the built-in proxy) and started again on its database.
- The database failing under the hub: SQLite locked by another connection past the
  hub's busy timeout; a PostgreSQL server of the test's own stopped while a write is
  under way, then started again.
- Spawner faults. Covered elsewhere, so not repeated here: start() raising and a start
  timing out (tests/test_api_servers.py::test_failing_spawner,
  ::test_failure_after_202, tests/test_cli_servers.py::test_a_start_past_its_timeout),
  stop() raising (tests/test_api_servers.py::test_failed_stop_leaves_server_running).
  Here: poll() raising.
- The hub SIGKILLed while a server is starting: no process of that server outlives it
  unknown to the next hub, checked in the process table, not only by recorded PIDs
  (tests/test_adopt.py checks the recorded PIDs, with other servers around).
- The proxy killed with its workers: the hub brings it back with every route; and a
  worker slot takes no connection before its worker listens. How long the restore
  takes, beside JupyterHub's, is measured by benchmarks/faults/proxy_restore.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from hub.db.engine import Database
from hub.db.migrate import upgrade
from hub.db.models import User
from tests.conftest import (
    HubFactory,
    LogCapture,
    RunningHub,
    behind_atrium_proxy,
    expect_error,
    running_postgres,
)
from tests.kernelws import KernelSocket
from tests.pg import PostgresServer, free_port
from tests.procs import AtriumProcess
from tests.spawner import ProcessSpawner, pid_alive, started_pids
from tests.test_adopt import PASSWORD, Client, kill, stop_proxy
from tests.waits import eventually

REPO = str(Path(__file__).parent.parent)
READY = 90  # seconds for a hub process to answer, with its proxy, on a busy machine


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite unless a test says otherwise (the PostgreSQL test has a server of its own)."""
    return sqlite_db_url


# --- helpers ------------------------------------------------------------------------------


def processes_with_env(*markers: str) -> set[int]:
    """PIDs of running processes whose environment holds every `VAR=value` in `markers`."""
    wanted = [m.encode() for m in markers]
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if all(m in env for m in wanted) and pid_alive(int(entry)):
            found.add(int(entry))
    return found


def hub_config(tmp_path: Path, hub_port: int, spawner: str, extra: str = "") -> None:
    """A hub with the built-in proxy on fixed ports, so that a second hub on the same
    directory finds the proxy and the servers find the hub where they found the first."""
    (tmp_path / "atrium_config.py").write_text(
        f"c.Hub.spawner_class = {spawner!r}\n"
        "c.ProcessSpawner.kill_at_exit = False\n"
        f"c.Hub.hub_port = {hub_port}\n"
        f"c.Hub.proxy_api_url = 'http://127.0.0.1:{free_port()}'\n"
        "c.Hub.proxy_workers = 1\n"
        "c.Hub.proxy_stop_on_exit = True\n"
        # starting `atrium proxy` imports the whole hub: slow on a busy machine
        "c.Hub.proxy_start_timeout = 60\n"
        f"c.Hub.proxy_pid_file = {str(tmp_path / 'proxy.pid')!r}\n" + extra
    )


def kill_group(pid: int) -> None:
    """End a server this test started and everything in its session (start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def successor(first: AtriumProcess, tmp_path: Path, env: dict[str, str]) -> AtriumProcess:
    """The next hub on the first one's directory and port, finding the proxy it left."""
    return AtriumProcess(tmp_path, port=first.port, env=env, proxy_ports=False, ready_timeout=READY)


async def anns_server(hub: AtriumProcess) -> tuple[Client, dict[str, Any]]:
    """Start `hub` and log in as its admin: the client, and ann's server as the hub has it."""
    await hub.start()
    api = Client(hub)
    await api.login()
    server = await api.server("ann")
    assert server is not None
    return api, server


async def fetch(url: str, token: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"token {token}"} if token else {}
    return await AsyncHTTPClient().fetch(
        HTTPRequest(url, headers=headers, request_timeout=90, **kw), raise_error=False
    )


# --- 1. the hub killed under an open notebook connection -----------------------------------


async def test_a_hub_killed_under_an_open_kernel_websocket(tmp_path: Path) -> None:
    hub_port = free_port()
    users_root = tmp_path / "users"
    hub_config(
        tmp_path,
        hub_port,
        "tests.singleuser_spawner.TreeSpawner",
        f"c.TreeSpawner.users_root = {str(users_root)!r}\n"
        "c.TreeSpawner.start_timeout = 120\n"
        "c.Hub.slow_spawn_timeout = 5\n",
    )
    env = {"PYTHONPATH": REPO, "ATRIUM_ADMIN_PASSWORD": PASSWORD}
    first = AtriumProcess(tmp_path, env=env, proxy_ports=False, ready_timeout=READY)
    second: AtriumProcess | None = None
    server_pid = kernel_pid = 0
    sock: KernelSocket | None = None
    try:
        await first.start()
        api = Client(first)
        await api.login()
        await api.call("POST", "/users", {"usernames": ["ann"]})
        await api.call("POST", "/users/ann/server")  # 201, or 202 on a busy machine

        async def ready() -> bool:
            return bool(((await api.server("ann")) or {}).get("ready"))

        await eventually(ready, timeout=150)
        server = await api.server("ann")
        assert server is not None
        server_pid = int(server["state"]["pid"])
        token = (await api.call("POST", "/users/ann/tokens", {"note": "faults"}))["token"]
        public = f"http://127.0.0.1:{first.port}"
        r = await fetch(f"{public}/user/ann/api/kernels", token, method="POST", body=b"{}")
        assert r.code == 201, r.body[:300]
        kernel_id = str(orjson.loads(r.body)["id"])
        ws_url = f"ws://127.0.0.1:{first.port}/user/ann/api/kernels/{kernel_id}/channels"
        sock = await KernelSocket.open(ws_url, token)
        # the first answer waits for the kernel to be up
        reply, out = await sock.execute("import os; x = 6; print(os.getpid())", timeout=120)
        assert reply["content"]["status"] == "ok"
        kernel_pid = int(out)
        assert pid_alive(kernel_pid)

        await kill(first)  # the hub alone; the proxy it started keeps running
        with pytest.raises(ConnectionRefusedError):  # nothing listens on the hub's port
            await asyncio.open_connection("127.0.0.1", hub_port)
        # the proxy does, and says the hub is not there
        r = await fetch(first.url + "api/")
        assert r.code == 503, r.body[:300]
        # the open websocket still reaches the kernel, whose state is intact
        reply, out = await sock.execute("x = x * 7; print(x)")
        assert (reply["content"]["status"], out) == ("ok", "42\n")

        second = successor(first, tmp_path, env)
        api, server = await anns_server(second)
        assert (server["ready"], server["pending"]) == (True, None)
        assert int(server["state"]["pid"]) == server_pid
        assert pid_alive(server_pid)
        assert "/user/ann" in await api.call("GET", "/proxy")
        # the same websocket, never dropped, on the same kernel
        reply, out = await sock.execute("print(x, os.getpid())")
        assert (reply["content"]["status"], out) == ("ok", f"42 {kernel_pid}\n")
        # new requests through the proxy: the server's API, checked against the new hub
        r = await fetch(f"{public}/user/ann/api/kernels", token)
        assert r.code == 200, r.body[:300]
        assert kernel_id in r.body.decode()
        r = await fetch(f"{public}/user/ann/api/contents", token)
        assert r.code == 200, r.body[:300]
        r = await fetch(f"{public}/user/ann/api/contents", "not-a-token")
        assert r.code == 403
        # a new websocket through the proxy
        other = await KernelSocket.open(ws_url, token)
        try:
            reply, out = await other.execute("print(x + 1)")
            assert (reply["content"]["status"], out) == ("ok", "43\n")
        finally:
            other.close()
        sock.close()
        sock = None
        await api.call("DELETE", "/users/ann/server", status=204)
        assert not pid_alive(server_pid)

        async def kernel_gone() -> bool:
            return not pid_alive(kernel_pid)

        await eventually(kernel_gone, timeout=30)
        assert await second.stop() == 0
        assert "Traceback" not in second.stderr
    finally:
        if sock is not None:
            sock.close()
        for hub in (first, second):
            if hub is not None and hub.proc is not None and hub.proc.returncode is None:
                await kill(hub)
        for pid in (server_pid, kernel_pid):
            if pid and pid_alive(pid):
                kill_group(pid)
        await stop_proxy(tmp_path / "proxy.pid")


# --- 2. database faults --------------------------------------------------------------------


def count_users(session: Session, names: list[str]) -> int:
    return int(session.scalar(select(func.count()).where(User.name.in_(names))) or 0)


async def test_a_locked_sqlite_database_is_a_503_and_recovers(
    hub_factory: HubFactory, sqlite_db_url: str, hub_logs: LogCapture
) -> None:
    hub = await hub_factory()
    path = sqlite_db_url.removeprefix("sqlite:///")
    names = ["ann", "bob", "carl"]
    # another program holds the write lock longer than the hub's busy timeout (5 s)
    holder = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        r = await hub.api("POST", "/users", {"usernames": names})
        message = expect_error(r, 503, "retry")
        assert r.headers.get("Retry-After", "").isdigit(), r.headers
        for leak in ("Traceback", hub.admin_token, path, "sqlite", "locked"):
            assert leak not in r.body.decode(), leak
        # a single-user write too
        expect_error(await hub.api("POST", "/users/dee"), 503, "retry")
    finally:
        holder.rollback()
        holder.close()
    assert "database is busy" in message or "unavailable" in message
    # nothing was half-written
    assert await hub.db.run(count_users, [*names, "dee"]) == 0
    # released: the same request succeeds on the same hub
    r = await hub.api("POST", "/users", {"usernames": names})
    assert r.status == 201, r.body[:300]
    assert await hub.db.run(count_users, names) == 3
    hub_logs.assert_no_secrets(hub.admin_token)
    assert "Traceback" not in hub_logs.text()
    assert "database unavailable" in hub_logs.text()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test alone: it is stopped and started under the hub."""
    with running_postgres("atrium-pg-faults-", fast_stop=True) as server:
        yield server


@pytest.mark.postgres
async def test_postgres_stopped_mid_write_is_a_503_and_recovers(
    tmp_path: Path, own_postgres: PostgresServer, hub_logs: LogCapture
) -> None:
    url = own_postgres.create_database("atrium")
    db = Database(url)
    upgrade(db.engine)
    db.close()
    factory = HubFactory(tmp_path, url)
    blocker: psycopg.Connection[Any] | None = None
    try:
        hub = await factory()
        names = ["ann", "bob", "carl", "dee"]
        # another session inserts carl and does not commit: the hub's bulk insert of all
        # four writes ann and bob, then waits on carl's row
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        blocker = psycopg.connect(dsn)
        blocker.execute(
            "INSERT INTO users (name, admin, blocked, created, full_name, email, cookie_id)"
            " VALUES ('carl', false, false, now(), '', '', 'blocker-cookie')"
        )
        write = asyncio.create_task(hub.api("POST", "/users", {"usernames": names}))

        async def hub_waits_on_the_row() -> bool:
            with psycopg.connect(own_postgres.admin_dsn, autocommit=True) as conn:
                waiting = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO users%'"
                ).fetchone()
            return bool(waiting and waiting[0])

        await eventually(hub_waits_on_the_row, timeout=30)
        assert not write.done()
        own_postgres.stop(fast=True)  # the database goes down in the middle of the write
        r = await asyncio.wait_for(write, timeout=60)
        expect_error(r, 503, "retry in a few seconds")
        assert r.headers.get("Retry-After", "").isdigit(), r.headers
        assert "127.0.0.1" not in r.body.decode()
        assert "Traceback" not in r.body.decode()
        # while it is down, writes are 503s too
        r = await hub.api("POST", "/users/eve")
        expect_error(r, 503, "retry")
        assert r.headers.get("Retry-After")
        blocker.close()
        blocker = None

        own_postgres.start()

        async def back() -> bool:
            return (await hub.api("GET", "/users/admin")).status == 200

        await eventually(back, timeout=60)
        # nothing half-written: neither the hub's rows nor the other session's
        assert await hub.db.run(count_users, [*names, "eve"]) == 0
        # the same request succeeds on the same hub
        r = await hub.api("POST", "/users", {"usernames": names})
        assert r.status == 201, r.body[:300]
        assert await hub.db.run(count_users, names) == 4
        assert "Traceback" not in hub_logs.text()
        hub_logs.assert_no_secrets(hub.admin_token)
    finally:
        if blocker is not None:
            with contextlib.suppress(psycopg.Error):
                blocker.close()
        await factory.close()


# --- 3. spawner faults ---------------------------------------------------------------------


class PollFailingSpawner(ProcessSpawner):
    """The test spawner, except that poll() raises while `failing_polls` is above 0 (a
    cluster API or process table that does not answer)."""

    failing_polls = 0

    async def poll(self) -> int | None:
        if PollFailingSpawner.failing_polls > 0:
            PollFailingSpawner.failing_polls -= 1
            raise RuntimeError("the spawner could not reach its backend")
        return await super().poll()


async def test_a_poll_that_raises_leaves_nothing_stuck_and_no_stray_process(
    hub_factory: HubFactory, hub_logs: LogCapture
) -> None:
    hub: RunningHub = await hub_factory(spawner_class="tests.test_faults.PollFailingSpawner")
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    old_pid = int((await hub.api("GET", "/users/ann")).json()["servers"][""]["state"]["pid"])
    try:
        # a start of a server recorded as running polls it first; the poll raises
        PollFailingSpawner.failing_polls = 1
        r = await hub.api("POST", "/users/ann/server")
        assert PollFailingSpawner.failing_polls == 0  # the poll did happen
        expect_error(r, 503, "could not check whether the server is still running")
        assert r.headers.get("Retry-After", "").isdigit(), r.headers
        # not taken for an exit: the same server, still running and known to the hub,
        # and no second one started beside it
        server = (await hub.api("GET", "/users/ann")).json()["servers"][""]
        assert (server["ready"], server["pending"]) == (True, None)
        assert int(server["state"]["pid"]) == old_pid
        assert pid_alive(old_pid)
        assert started_pids[-1] == old_pid
        assert "Polling ann" in hub_logs.text()  # the spawner's error, for operators
        assert "Traceback" not in r.body.decode()
        # the poll answers again: the server is running, and stops and starts as usual
        expect_error(await hub.api("POST", "/users/ann/server"), 400, "running")
        assert (await hub.api("DELETE", "/users/ann/server")).status == 204
        assert not pid_alive(old_pid)
        assert (await hub.api("POST", "/users/ann/server")).status == 201
        latest = (await hub.api("GET", "/users/ann")).json()["servers"][""]
        assert (latest["ready"], latest["pending"], latest["failure"]) == (True, None, None)
        assert pid_alive(started_pids[-1])
    finally:
        PollFailingSpawner.failing_polls = 0
        for pid in (old_pid, started_pids[-1]):
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- 4. the hub killed while a server starts ------------------------------------------------


async def test_a_hub_killed_mid_spawn_leaves_no_unknown_process(tmp_path: Path) -> None:
    hub_port = free_port()
    hub_config(tmp_path, hub_port, "tests.adoptspawner.StateSavingSpawner")
    env = {"PYTHONPATH": REPO, "ATRIUM_ADMIN_PASSWORD": PASSWORD}
    marker = f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub_port}/hub/api"
    first = AtriumProcess(tmp_path, env=env, proxy_ports=False, ready_timeout=READY)
    second: AtriumProcess | None = None
    seen: set[int] = set()
    try:
        await first.start()
        api = Client(first)
        await api.login()
        await api.call("POST", "/users", {"usernames": ["ann"]})
        await api.call("POST", "/users/ann/server", {"start_delay": 120}, status=202)

        async def launched() -> bool:
            seen.update(processes_with_env("JUPYTERHUB_USER=ann", marker))
            return bool(seen)

        await eventually(launched, timeout=30)
        # the hub dies while the process runs and does not answer yet
        await kill(first)
        assert any(pid_alive(pid) for pid in seen)

        second = successor(first, tmp_path, env)
        api, server = await anns_server(second)
        assert server["pending"] is None
        assert server["ready"] or server["stopped"]
        running = processes_with_env("JUPYTERHUB_USER=ann", marker)
        if server["ready"]:  # adopted: the one process the hub knows of
            assert running == {int(server["state"]["pid"])}
        else:  # stopped: nothing of it left
            assert running == set(), f"processes left unknown to the hub: {running}"
            assert "restarted while the server was starting" in server["failure"]
        # and it starts again
        await api.call("POST", "/users/ann/server", status=201)
        server = await api.server("ann")
        assert server is not None
        pid = int(server["state"]["pid"])
        seen.add(pid)
        assert processes_with_env("JUPYTERHUB_USER=ann", marker) == {pid}
        await api.call("DELETE", "/users/ann/server", status=204)
        assert processes_with_env("JUPYTERHUB_USER=ann", marker) == set()
        assert await second.stop() == 0
        assert "Traceback" not in second.stderr
    finally:
        for hub in (first, second):
            if hub is not None and hub.proc is not None and hub.proc.returncode is None:
                await kill(hub)
        for pid in seen | processes_with_env("JUPYTERHUB_USER=ann", marker):
            if pid_alive(pid):
                kill_group(pid)
        await stop_proxy(tmp_path / "proxy.pid")


# --- 5. the proxy killed ---------------------------------------------------------------------


def session_of(pid: int) -> set[int]:
    """Running processes in the session `pid` leads (a proxy runs in a session of its own:
    its primary process and its workers)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [part.decode() for part in f.read().split(b"\0") if part]


async def test_a_proxy_killed_with_its_workers_comes_back_with_every_route(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = await hub_factory(
        **behind_atrium_proxy(
            tmp_path,
            # the proxy alone, as `atrium proxy --workers 2` runs it
            proxy_cmd=[sys.executable, "-m", "hub.proxy", "--workers=2", "--log-level=error"],
        )
    )
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    names = ["ann", "bob", "cy"]
    for name in names:
        await hub.add_user(name)
        assert (await hub.api("POST", f"/users/{name}/server")).status == 201
    pid_file = tmp_path / "proxy.pid"
    old = int(pid_file.read_text())

    async def routes_answer() -> bool:
        for name in names:
            try:
                r = await fetch(f"{public}/user/{name}/")
            except OSError:
                return False
            if not r.headers.get("Server", "").startswith("SimpleHTTP"):
                return False
        return True

    def workers_of(pid: int) -> set[int]:
        return session_of(pid) - {pid}

    async def has_workers(pid: int) -> bool:
        return bool(workers_of(pid))

    assert await routes_answer()
    await eventually(lambda: has_workers(old))
    victims = session_of(old)
    assert len(victims) == 2  # the primary and its worker
    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    async def all_dead() -> bool:
        return not any(pid_alive(pid) for pid in victims)

    await eventually(all_dead)

    async def back() -> bool:
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            return False
        return pid != old and pid_alive(pid) and await routes_answer()

    await eventually(back, timeout=60)
    new = int(pid_file.read_text())
    await eventually(lambda: has_workers(new), timeout=60)
    # each of many fresh connections (spread by the kernel over the primary and the
    # worker) reaches its server
    for _ in range(10):
        assert await routes_answer()
    # the workers run the proxy alone, not the whole hub's entry point
    for worker in workers_of(new):
        command = cmdline(worker)
        assert "hub.proxy" in command, command
        assert "hub.app" not in command, command
    routes = (await hub.api("GET", "/proxy")).json()
    assert {f"/user/{name}" for name in names} <= set(routes)


def test_a_worker_slot_takes_no_connection_before_its_worker_listens() -> None:
    """After a proxy (re)start the primary serves at once; a connection must not wait in
    the queue of a worker slot whose worker is still starting."""
    from hub.proxy.server.metrics import ProxyMetrics
    from hub.proxy.server.routes import RouteTable
    from hub.proxy.server.workers import WorkerPool

    primary = socket.socket()
    primary.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    primary.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    primary.bind(("127.0.0.1", 0))
    primary.listen(128)
    primary.settimeout(10)
    pool = WorkerPool(RouteTable(), ProxyMetrics(), [], 3, [primary])
    clients: list[socket.socket] = []
    accepted: list[socket.socket] = []
    try:
        port = primary.getsockname()[1]
        for _ in range(40):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        # every one reaches the primary (with the slots listening, the kernel would have
        # queued about two in three of them where nothing accepts yet)
        for _ in clients:
            accepted.append(primary.accept()[0])
        assert len(accepted) == 40
    finally:
        for sock in [*clients, *accepted, primary]:
            sock.close()
        for sockets in pool.slots:
            for sock in sockets:
                sock.close()
