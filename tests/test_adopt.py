"""A hub coming up adopts the servers the previous one left (`Orchestrator.adopt`).

End to end: a real `atrium` process with the built-in proxy starts servers, is
killed with SIGKILL (one server dies meanwhile, one is still starting), and a
new hub on the same directory keeps the live server (ready, reachable through
the proxy), reports the dead one stopped, and ends the unfinished start's
process. In process, with a spawner that only pretends: the rules for each
kind of server, and that adopting 300 servers polls 20 at a time.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from hub.db.models import Server, User
from hub.spawn import ADOPT_CONCURRENCY, INTERRUPTED, STOPPED_WHILE_DOWN
from hub.timeutil import utcnow
from spawners.base import Spawner
from tests.conftest import SYSTEM, HubFactory
from tests.pg import free_port
from tests.procs import AtriumProcess
from tests.spawner import pid_alive
from tests.waits import eventually

REPO = str(Path(__file__).parent.parent)
PASSWORD = "adopt-test-password"


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


class Client:
    def __init__(self, hub: AtriumProcess) -> None:
        self.hub = hub
        self.token = ""

    async def login(self) -> None:
        r = await self.call(
            "POST", "/users/admin/tokens", {"auth": {"username": "admin", "password": PASSWORD}}
        )
        self.token = r["token"]

    async def call(self, method: str, path: str, body: Any = None, status: int = 0) -> Any:
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        r = await AsyncHTTPClient().fetch(
            HTTPRequest(
                f"{self.hub.url}api{path}",
                method=method,
                headers=headers,
                body=None if method == "GET" else orjson.dumps(body) if body is not None else b"",
                allow_nonstandard_methods=True,
            ),
            raise_error=False,
        )
        assert r.code < 400, (method, path, r.code, r.body)
        if status:
            assert r.code == status, (method, path, r.code, r.body)
        return orjson.loads(r.body) if r.body else None

    async def server(self, name: str) -> dict[str, Any] | None:
        model = await self.call("GET", f"/users/{name}?include_stopped_servers=1")
        return model["servers"].get("")  # type: ignore[no-any-return]


def hub_config(tmp_path: Path) -> None:
    (tmp_path / "atrium_config.py").write_text(
        "c.Hub.spawner_class = 'tests.adoptspawner.StateSavingSpawner'\n"
        "c.ProcessSpawner.kill_at_exit = False\n"
        "c.Hub.slow_spawn_timeout = 0.5\n"
        f"c.Hub.hub_port = {free_port()}\n"
        f"c.Hub.proxy_api_url = 'http://127.0.0.1:{free_port()}'\n"
        "c.Hub.proxy_workers = 1\n"
        "c.Hub.proxy_stop_on_exit = True\n"
        f"c.Hub.proxy_pid_file = {str(tmp_path / 'proxy.pid')!r}\n"
    )


async def through_proxy(hub: AtriumProcess, path: str) -> str:
    """The `Server` header of what answers `path` on the hub's public port."""
    r = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{hub.port}{path}", raise_error=False, follow_redirects=False
    )
    return str(r.headers.get("Server", ""))


async def test_a_hub_killed_and_restarted_adopts_its_servers(tmp_path: Path) -> None:
    hub_config(tmp_path)
    env = {"PYTHONPATH": REPO, "ATRIUM_ADMIN_PASSWORD": PASSWORD}
    first = AtriumProcess(tmp_path, env=env, proxy_ports=False)
    pids: list[int] = []
    second: AtriumProcess | None = None
    try:
        await first.start()
        api = Client(first)
        await api.login()
        await api.call("POST", "/users", {"usernames": ["ann", "bob", "carl"]})
        await api.call("POST", "/users/ann/server", status=201)
        await api.call("POST", "/users/bob/server", status=201)
        # carl's start is still under way when the hub dies
        await api.call("POST", "/users/carl/server", {"start_delay": 120}, status=202)
        ann, bob = (await api.server("ann")) or {}, (await api.server("bob")) or {}
        pids += [ann["state"]["pid"], bob["state"]["pid"]]

        async def carl_saved() -> bool:
            return bool(((await api.server("carl")) or {}).get("state", {}).get("pid"))

        await eventually(carl_saved)
        carl = (await api.server("carl")) or {}
        assert carl["pending"] == "spawn"
        pids.append(carl["state"]["pid"])
        assert all(pid_alive(pid) for pid in pids)
        assert (await through_proxy(first, "/user/ann/")).startswith("SimpleHTTP")
        assert {"/user/ann", "/user/bob"} <= set(await api.call("GET", "/proxy"))

        await kill(first)
        os.kill(pids[1], signal.SIGKILL)  # bob's server dies while no hub runs

        async def bob_dead() -> bool:
            return not pid_alive(pids[1])

        await eventually(bob_dead)
        assert pid_alive(pids[0])
        assert pid_alive(pids[2])

        second = AtriumProcess(tmp_path, port=first.port, env=env, proxy_ports=False)
        await second.start()
        api = Client(second)
        await api.login()
        # ann's server kept running: ready, and reachable through the proxy
        ann = (await api.server("ann")) or {}
        assert (ann["ready"], ann["pending"], ann["state"]["pid"]) == (True, None, pids[0])
        assert pid_alive(pids[0])
        assert (await through_proxy(second, "/user/ann/")).startswith("SimpleHTTP")
        # bob's is reported stopped, and no longer routed (the proxy kept running)
        bob = (await api.server("bob")) or {}
        assert (bob["ready"], bob["pending"], bob["stopped"]) == (False, None, True)
        routes = await api.call("GET", "/proxy")
        assert "/user/ann" in routes
        assert "/user/bob" not in routes
        # carl's unfinished start left no process behind
        carl = (await api.server("carl")) or {}
        assert (carl["ready"], carl["pending"], carl["stopped"]) == (False, None, True)
        assert not pid_alive(pids[2])
        # the adopted server stops as any other; bob's starts again
        await api.call("DELETE", "/users/ann/server", status=204)
        assert not pid_alive(pids[0])
        await api.call("POST", "/users/bob/server", status=201)
        pids.append(((await api.server("bob")) or {})["state"]["pid"])
        await api.call("DELETE", "/users/bob/server", status=204)
        assert await second.stop() == 0
        assert "Servers of the previous hub: 1 running, 1 had stopped, 1 unfinished" in (
            second.stderr
        )
        assert "stopped while the hub was down" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        for hub in (first, second):
            if hub is not None and hub.proc is not None and hub.proc.returncode is None:
                await kill(hub)
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)  # a server this test started
        await stop_proxy(tmp_path / "proxy.pid")


async def kill(hub: AtriumProcess) -> None:
    """SIGKILL the hub by its PID. Its output is not collected: the proxy it started
    outlives it with the same stdout and stderr, so they do not end."""
    proc = hub.proc
    assert proc is not None
    proc.kill()

    # not proc.wait(): on Python 3.11 it also waits for the pipes to close
    async def reaped() -> bool:
        return proc.returncode is not None

    await eventually(reaped)
    assert proc.returncode == -signal.SIGKILL


async def stop_proxy(pid_file: Path) -> None:
    """The proxy a hub of this test started, if a failure left it running."""
    from hub.proxy.supervisor import pid_alive as process_alive

    try:
        pid = int(pid_file.read_text().split()[0])  # noqa: ASYNC240 (a few bytes)
    except FileNotFoundError:
        return
    if process_alive(pid):
        os.kill(pid, signal.SIGTERM)

        async def gone() -> bool:
            return not process_alive(pid)

        await eventually(gone)


# --- in process: the rules, with a spawner that only pretends ---------------------------


class PretendSpawner(Spawner):
    """Servers that exist only as their state: {"alive": bool, "fail": "poll"|"stop"}."""

    polling = 0
    peak = 0  # most polls under way at once
    stops: list[tuple[str, bool]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state: dict[str, Any] = {}

    def load_state(self, state: dict[str, Any]) -> None:
        self.state = dict(state)

    def get_state(self) -> dict[str, Any]:
        return dict(self.state)

    def clear_state(self) -> None:
        self.state = {}

    async def poll(self) -> int | None:
        cls = PretendSpawner
        cls.polling += 1
        cls.peak = max(cls.peak, cls.polling)
        try:
            await asyncio.sleep(0.01)
        finally:
            cls.polling -= 1
        if self.state.get("fail") == "poll":
            raise RuntimeError("the cluster API did not answer")
        return None if self.state.get("alive") else 1

    async def stop(self, now: bool = False) -> None:
        if self.state.get("fail") == "stop":
            raise RuntimeError("it would not stop")
        PretendSpawner.stops.append((self.user_name, now))


@pytest.fixture
def pretend() -> type[PretendSpawner]:
    PretendSpawner.polling = PretendSpawner.peak = 0
    PretendSpawner.stops = []
    return PretendSpawner


def record(
    session: Session, name: str, pending: str | None, started: bool, state: dict[str, Any]
) -> None:
    user = session.scalars(select(User).where(User.name == name)).one()
    session.add(
        Server(
            user_id=user.id,
            name="",
            url="http://127.0.0.1:1" if started else None,
            pending=pending,
            started=utcnow() if started else None,
            state=state,
            user_options={},
        )
    )


def servers_by_user(session: Session) -> dict[str, tuple[str | None, bool, str | None]]:
    rows = session.execute(select(User.name, Server).join(Server)).all()
    return {name: (s.pending, s.started is not None, s.failure) for name, s in rows}


async def test_what_adopting_does_to_each_server(
    hub_factory: HubFactory, pretend: type[PretendSpawner]
) -> None:
    hub = await hub_factory(spawner_class="tests.test_adopt.PretendSpawner")
    cases = {
        "alive": ("", True, {"alive": True}),
        "dead": ("", True, {"alive": False}),
        "unknown": ("", True, {"alive": False, "fail": "poll"}),
        "starting": ("spawn", False, {"pid": 1}),
        "stuck": ("spawn", False, {"fail": "stop"}),
        "stopping": ("stop", True, {"alive": True}),
        "idle": ("", False, {}),
    }
    from hub.ops import users as user_ops

    await hub.db.run(user_ops.create_users, hub.ctx, SYSTEM, list(cases), False)
    for name, (pending, started, state) in cases.items():
        await hub.db.run(record, name, pending or None, started, state)

    orchestrator = hub.state.orchestrator
    await orchestrator.adopt()
    after = await hub.db.run(servers_by_user)
    assert after == {
        "alive": (None, True, None),
        "dead": (None, False, STOPPED_WHILE_DOWN),
        "unknown": (None, True, None),  # not known to be gone: kept
        "starting": (None, False, INTERRUPTED),
        "stuck": ("spawn", False, None),  # left pending: a later stop tries again
        "stopping": (None, False, None),
        "idle": (None, False, None),  # never recorded as running: not touched
    }
    assert sorted(pretend.stops) == [("starting", True), ("stopping", False)]
    kept = {spawner.user_name for spawner in orchestrator.spawners.values()}
    assert kept == {"alive", "unknown"}


async def test_adopting_many_servers_polls_a_few_at_a_time(
    hub_factory: HubFactory, pretend: type[PretendSpawner]
) -> None:
    hub = await hub_factory(spawner_class="tests.test_adopt.PretendSpawner")
    names = [f"u{i}" for i in range(300)]
    from hub.ops import users as user_ops

    await hub.db.run(user_ops.create_users, hub.ctx, SYSTEM, names, False)

    def record_all(session: Session) -> None:
        for i, name in enumerate(names):
            record(session, name, None, True, {"alive": i % 3 != 0})

    await hub.db.run(record_all)
    await hub.state.orchestrator.adopt()
    assert pretend.peak == ADOPT_CONCURRENCY
    after = await hub.db.run(servers_by_user)
    assert sum(started for _, started, _ in after.values()) == 200
    assert len(hub.state.orchestrator.spawners) == 200
