"""The hub's side of the proxy, against a real configurable-http-proxy (npm).

`ProxyClient` speaks CHP's routes API; a hub with `c.Hub.proxy = "chp"` starts
CHP, routes `/user/<name>/` to each running server (requests really go through
the proxy to the test spawner's `http.server` processes), removes the route
when the server stops, reconciles the table with the database without touching
routes it did not make, restarts CHP when it dies, and leaves it running at
shutdown for the next hub to adopt. `scripts/test.sh` installs CHP into
`.scratch/chp`; with CI=true a missing CHP fails these tests.

Every process started here is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from hub.proxy.client import (
    ProxyAuthError,
    ProxyClient,
    ProxyUnavailable,
    normalize_prefix,
)
from hub.proxy.supervisor import MARKER, ProxyLink, ProxyStartFailed, pid_alive
from tests.conftest import HubFactory, LogCapture, RunningHub, expect_error, missing_part
from tests.pg import free_port
from tests.procs import AtriumProcess
from tests.spawner import started_pids
from tests.waits import eventually

REPO = Path(__file__).resolve().parent.parent
CHP = REPO / ".scratch" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
SPAWNER = "tests.spawner.ProcessSpawner"
TOKEN = "proxy-token-for-tests-0123456789abcdef"


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


@pytest.fixture(scope="module", params=["chp", "atrium"])
def proxy_kind(request: pytest.FixtureRequest) -> str:
    """Every test here runs against configurable-http-proxy and against `atrium proxy`."""
    return str(request.param)


@pytest.fixture(scope="module")
def proxy_cmd(proxy_kind: str) -> list[str]:
    if proxy_kind == "atrium":
        return [sys.executable, "-m", "hub.app", "proxy"]
    if not (CHP.exists() and shutil.which("node")):
        missing_part(
            "configurable-http-proxy (npm install --prefix .scratch/chp configurable-http-proxy@5)"
        )
    return [str(CHP)]


def kill(pid: int) -> None:
    """Kill a process we started and reap it if it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def proxy_pids(tmp_path: Path) -> Iterator[list[int]]:
    """PIDs of proxies a test started; killed afterwards, with any in its pid file.
    (Ask for it before `hub_factory`, so that hubs are closed before this runs.)"""
    pids: list[int] = []
    yield pids
    pid_file = tmp_path / "proxy.pid"
    if pid_file.exists():
        pids.append(int(pid_file.read_text()))
    for pid in pids:
        if pid_alive(pid):
            kill(pid)


async def fetch(url: str) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, raise_error=False, request_timeout=10)


@dataclass
class RunningProxy:
    pid: int
    api_url: str
    public_url: str

    def client(self, token: str = TOKEN) -> ProxyClient:
        return ProxyClient(self.api_url, token, timeout=5)


@pytest.fixture
async def chp(proxy_cmd: list[str], proxy_pids: list[int]) -> AsyncIterator[RunningProxy]:
    """A proxy on loopback with the token TOKEN (no default target)."""
    port, api_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        *proxy_cmd,
        "--ip=127.0.0.1",
        f"--port={port}",
        "--api-ip=127.0.0.1",
        f"--api-port={api_port}",
        "--log-level=error",
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": TOKEN},
        stdin=asyncio.subprocess.DEVNULL,
    )
    proxy_pids.append(proc.pid)
    proxy = RunningProxy(proc.pid, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{port}")

    async def answers() -> bool:
        try:
            await proxy.client().get_routes()
        except ProxyUnavailable:
            return False
        return True

    await eventually(answers)
    yield proxy
    proc.kill()
    await proc.wait()


def chp_hub_settings(tmp_path: Path, proxy_cmd: list[str], **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "proxy": "atrium" if "hub.app" in proxy_cmd else "chp",
        "proxy_cmd": [*proxy_cmd, "--log-level=error"],
        "port": free_port(),
        "proxy_api_url": f"http://127.0.0.1:{free_port()}",
        "proxy_pid_file": str(tmp_path / "proxy.pid"),
        "proxy_stop_on_exit": True,
        "spawner_class": SPAWNER,
    }
    settings.update(extra)
    return settings


def proxy_token(hub: RunningHub) -> str:
    return Path(hub.app.settings.proxy_auth_token_file).read_text().strip()


def proxy_of(hub: RunningHub) -> ProxyLink:
    assert hub.state.proxy is not None
    return hub.state.proxy


def public_url(hub: RunningHub) -> str:
    return f"http://127.0.0.1:{hub.app.settings.port}"


# --- ProxyClient against CHP ----------------------------------------------------------


async def test_routes_add_list_delete(chp: RunningProxy) -> None:
    client = chp.client()
    assert await client.get_routes() == {}
    await client.add_route("/user/ann/", "http://127.0.0.1:9999", {"user": "ann", MARKER: True})
    routes = await client.get_routes()
    # stored without the trailing slash, data flattened next to target and last_activity
    assert set(routes) == {"/user/ann"}
    route = routes["/user/ann"]
    assert route["target"] == "http://127.0.0.1:9999"
    assert route["user"] == "ann"
    assert route[MARKER] is True
    assert route["last_activity"]
    # adding again replaces; a prefix given without the slash is the same route
    await client.add_route("/user/ann", "http://127.0.0.1:9998")
    routes = await client.get_routes()
    assert set(routes) == {"/user/ann"}
    assert routes["/user/ann"]["target"] == "http://127.0.0.1:9998"
    assert "user" not in routes["/user/ann"]
    # names with non-ASCII letters, + and @ round-trip (the proxy stores them decoded)
    for prefix in ["/user/josé/", "/user/a+b@c.d/srv-1/"]:
        await client.add_route(prefix, "http://127.0.0.1:9997")
        assert normalize_prefix(prefix) in await client.get_routes()
    assert await client.delete_route("/user/ann/") is True
    assert await client.delete_route("/user/ann") is False  # gone: not an error
    assert await client.delete_route("/user/josé") is True
    assert set(await client.get_routes()) == {"/user/a+b@c.d/srv-1"}


async def test_bad_token_and_unreachable_proxy(chp: RunningProxy) -> None:
    for token in ["wrong-token", ""]:
        with pytest.raises(ProxyAuthError) as info:
            await chp.client(token).get_routes()
        assert "403" in str(info.value)
        assert TOKEN not in str(info.value)
        with pytest.raises(ProxyAuthError):
            await chp.client(token).add_route("/x", "http://127.0.0.1:1")
    assert await chp.client().get_routes() == {}  # nothing was added
    dead = ProxyClient(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=5)
    with pytest.raises(ProxyUnavailable) as unavailable:
        await dead.get_routes()
    assert unavailable.value.reason == "the proxy is not answering"
    assert dead.api_url in str(unavailable.value)
    assert TOKEN not in str(unavailable.value) + repr(dead)


def test_normalize_prefix() -> None:
    assert normalize_prefix("/") == "/"
    assert normalize_prefix("") == "/"
    assert normalize_prefix("/user/ann/") == "/user/ann"
    assert normalize_prefix("user/ann") == "/user/ann"


# --- the hub with CHP -----------------------------------------------------------------


async def test_user_server_is_reached_through_the_proxy(
    proxy_pids: list[int], hub_factory: HubFactory, proxy_cmd: list[str], tmp_path: Path
) -> None:
    hub = await hub_factory(**chp_hub_settings(tmp_path, proxy_cmd))
    proxy = proxy_of(hub)
    client = proxy.client
    routes = await client.get_routes()
    assert routes["/"]["target"] == proxy.hub_url  # the default route goes to the hub
    # the hub's API through the proxy
    r = await fetch(public_url(hub) + "/hub/api/")
    assert r.code == 200
    assert b"version" in r.body

    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    server_url = (await hub.api("GET", "/users/ann")).json()["servers"][""]["url"]
    assert server_url == "/user/ann/"
    routes = await client.get_routes()
    route = routes["/user/ann"]
    assert route["user"] == "ann"
    assert route["server_name"] == ""
    assert route[MARKER] is True
    # a request for /user/ann/ through the proxy is answered by ann's server process
    through = await fetch(public_url(hub) + "/user/ann/")
    direct = await fetch(route["target"] + "/user/ann/")
    assert through.headers["Server"].startswith("SimpleHTTP")
    assert (through.code, through.body) == (direct.code, direct.body)

    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    assert "/user/ann" not in await client.get_routes()
    # with the route gone, /user/ann/ falls through to the hub
    after = await fetch(public_url(hub) + "/user/ann/")
    assert not after.headers.get("Server", "").startswith("SimpleHTTP")


async def test_named_server_routes(
    proxy_pids: list[int], hub_factory: HubFactory, proxy_cmd: list[str], tmp_path: Path
) -> None:
    hub = await hub_factory(**chp_hub_settings(tmp_path, proxy_cmd, allow_named_servers=True))
    await hub.add_user("bo@lab")
    assert (await hub.api("POST", "/users/bo@lab/servers/gpu-1")).status == 201
    routes = await proxy_of(hub).client.get_routes()
    assert routes["/user/bo@lab/gpu-1"]["server_name"] == "gpu-1"
    through = await fetch(public_url(hub) + "/user/bo@lab/gpu-1/")
    assert through.headers["Server"].startswith("SimpleHTTP")
    assert (await hub.api("DELETE", "/users/bo@lab/servers/gpu-1")).status == 204
    assert "/user/bo@lab/gpu-1" not in await proxy_of(hub).client.get_routes()


async def test_a_start_fails_clearly_when_the_route_cannot_be_added(
    hub_factory: HubFactory, hub_logs: LogCapture, request: pytest.FixtureRequest
) -> None:
    # an external proxy (not started by the hub) that is not there: a port held bound but
    # never listening, so connections are refused and no server started meanwhile (the
    # user's, on a port of its own choosing) can be given it
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    request.addfinalizer(holder.close)
    hub = await hub_factory(
        proxy="chp",
        proxy_should_start=False,
        proxy_api_url=f"http://127.0.0.1:{holder.getsockname()[1]}",
        spawner_class=SPAWNER,
    )
    await hub.add_user("ann")
    before = len(started_pids)
    message = expect_error(await hub.api("POST", "/users/ann/server"), 500, "proxy")
    assert "not answering" in message
    assert "stopped" in message
    # the server process that did start was stopped, and the server is not running
    assert len(started_pids) == before + 1
    assert not pid_alive(started_pids[-1])
    model = (await hub.api("GET", "/users/ann?include_stopped_servers=1")).json()
    assert model["servers"][""]["ready"] is False
    assert model["servers"][""]["pending"] is None
    hub_logs.assert_no_secrets(proxy_token(hub))


async def test_reconcile_adds_missing_removes_stale_keeps_foreign(
    proxy_pids: list[int], hub_factory: HubFactory, proxy_cmd: list[str], tmp_path: Path
) -> None:
    hub = await hub_factory(**chp_hub_settings(tmp_path, proxy_cmd))
    proxy = proxy_of(hub)
    client = proxy.client
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    target = (await client.get_routes())["/user/ann"]["target"]
    # behind the hub's back: ann's route lost, a stale hub route, foreign routes
    await client.delete_route("/user/ann")
    await client.delete_route("/")
    await client.add_route("/user/ghost", "http://127.0.0.1:1", {"user": "ghost", MARKER: True})
    await client.add_route("/user/other", "http://127.0.0.1:2", {"user": "other"})
    await client.add_route("/services/x", "http://127.0.0.1:3")

    changes = await proxy.reconcile()
    assert sorted(changes.added) == ["/", "/user/ann"]
    assert changes.removed == ["/user/ghost"]
    routes = await client.get_routes()
    assert set(routes) == {"/", "/user/ann", "/user/other", "/services/x"}
    assert routes["/user/ann"]["target"] == target
    assert routes["/"]["target"] == proxy.hub_url
    # a second pass changes nothing
    changes = await proxy.reconcile()
    assert (changes.added, changes.removed) == ([], [])


async def test_periodic_check_puts_a_lost_route_back(
    proxy_pids: list[int], hub_factory: HubFactory, proxy_cmd: list[str], tmp_path: Path
) -> None:
    hub = await hub_factory(**chp_hub_settings(tmp_path, proxy_cmd, proxy_check_interval=0.2))
    client = proxy_of(hub).client
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    await client.delete_route("/user/ann")

    async def back() -> bool:
        return "/user/ann" in await client.get_routes()

    await eventually(back)


async def test_a_killed_proxy_is_restarted_with_its_routes(
    proxy_pids: list[int], hub_factory: HubFactory, proxy_cmd: list[str], tmp_path: Path
) -> None:
    hub = await hub_factory(**chp_hub_settings(tmp_path, proxy_cmd))
    process = proxy_of(hub).process
    assert process is not None
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    old_pid = process.pid
    assert old_pid is not None
    assert int((tmp_path / "proxy.pid").read_text()) == old_pid

    # traffic to ann's server all along: before, during and after the kill
    outcomes: list[tuple[float, bool]] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            try:
                r = await fetch(public_url(hub) + "/user/ann/")
                ok = r.headers.get("Server", "").startswith("SimpleHTTP")
            except (OSError, HTTPClientError):  # refused or cut while no proxy listens
                ok = False
            outcomes.append((time.monotonic(), ok))
            await asyncio.sleep(0.01)

    flowing = asyncio.ensure_future(traffic())
    await asyncio.sleep(0.3)
    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)

    async def restored() -> bool:
        return process.pid not in (None, old_pid) and bool(outcomes) and outcomes[-1][1]

    await eventually(restored)
    back_at = time.monotonic()
    await asyncio.sleep(0.5)
    stop.set()
    await flowing
    assert process.pid is not None
    proxy_pids.append(process.pid)
    assert not pid_alive(old_pid)
    assert int((tmp_path / "proxy.pid").read_text()) == process.pid
    assert all(ok for t, ok in outcomes if t < killed_at)  # served before the kill
    after = [ok for t, ok in outcomes if t > back_at]
    assert after
    assert all(after)  # and every request once it was back, routes included


async def test_proxy_outlives_the_hub_and_the_next_hub_adopts_it(
    proxy_pids: list[int], tmp_path: Path, db_url: str, proxy_cmd: list[str]
) -> None:
    settings = chp_hub_settings(tmp_path, proxy_cmd, proxy_stop_on_exit=False)
    first = HubFactory(tmp_path, db_url)
    hub = await first(**settings)
    process = proxy_of(hub).process
    assert process is not None
    pid = process.pid
    assert pid is not None
    proxy_pids.append(pid)
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    # shut the hub down as `atrium` does on SIGTERM, leaving users' servers running
    server, state = first.started.pop()
    server.stop()
    await state.orchestrator.shutdown()
    await proxy_of(hub).shutdown()
    await server.close_all_connections()
    state.db.close()

    # the proxy still runs and still takes ann to her server
    assert pid_alive(pid)
    r = await fetch(public_url(hub) + "/user/ann/")
    assert r.headers["Server"].startswith("SimpleHTTP")

    second = HubFactory(tmp_path, db_url)
    try:
        settings["proxy_stop_on_exit"] = True
        hub2 = await second(**settings)
        process2 = proxy_of(hub2).process
        assert process2 is not None
        assert process2.pid == pid  # adopted, not started anew
        routes = await proxy_of(hub2).client.get_routes()
        assert routes["/"]["target"] == proxy_of(hub2).hub_url  # now the new hub
        assert "/user/ann" in routes
        # the new hub can stop ann's server; its route goes
        assert (await hub2.api("DELETE", "/users/ann/server")).status == 204
        assert "/user/ann" not in await proxy_of(hub2).client.get_routes()
    finally:
        await second.close()
    # stop_on_exit: the adopting hub stopped the proxy by its PID
    assert not pid_alive(pid)
    assert not (tmp_path / "proxy.pid").exists()


async def test_a_proxy_with_another_token_is_not_adopted(
    hub_factory: HubFactory, chp: RunningProxy, proxy_kind: str
) -> None:
    with pytest.raises(ProxyStartFailed, match="does not accept this hub's token"):
        await hub_factory(proxy=proxy_kind, proxy_api_url=chp.api_url, spawner_class=SPAWNER)
    assert await chp.client().get_routes() == {}


async def test_a_missing_proxy_command_is_a_clear_error(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    with pytest.raises(ProxyStartFailed, match="cannot run the proxy command"):
        await hub_factory(
            proxy="chp",
            proxy_cmd=[str(tmp_path / "no-such-proxy")],
            proxy_api_url=f"http://127.0.0.1:{free_port()}",
        )


async def test_atrium_serves_behind_the_proxy(
    tmp_path: Path, proxy_kind: str, proxy_cmd: list[str]
) -> None:
    """The real `atrium` command: hub on hub_port, the proxy on the public port before it."""
    api_port = free_port()
    (tmp_path / "atrium_config.py").write_text(
        f"c.Hub.proxy = {proxy_kind!r}\n"
        f"c.Hub.proxy_cmd = [*{proxy_cmd!r}, '--log-level=error']\n"
        f"c.Hub.proxy_api_url = 'http://127.0.0.1:{api_port}'\n"
        f"c.Hub.hub_port = {free_port()}\n"
        "c.Hub.proxy_stop_on_exit = True\n"
    )
    hub = AtriumProcess(tmp_path, proxy_ports=False)
    try:
        await hub.start()  # waits for /hub/api/ on the public port, i.e. through CHP
        pid_file = tmp_path / "atrium_proxy.pid"

        async def pid_written() -> bool:  # CHP may answer before the hub notes its PID
            return pid_file.exists() and pid_file.read_text().endswith("\n")

        await eventually(pid_written)
        pid = int(pid_file.read_text())
        assert pid_alive(pid)
        routes = await ProxyClient(
            f"http://127.0.0.1:{api_port}", (tmp_path / "atrium_proxy_token").read_text().strip()
        ).get_routes()
        assert "/" in routes
    finally:
        code = await hub.stop()
        leftover = tmp_path / "atrium_proxy.pid"
        if leftover.exists():
            kill(int(leftover.read_text()))
    assert code == 0, hub.stderr
    assert not pid_alive(pid)
