"""The proxy on several cores and as several replicas.

- Route events (`hub.proxy.server.feed`): snapshots and changes applied to a
  table; bad events change nothing.
- `atrium proxy --workers N`: every worker has every route, including ones added
  later; activity and metrics from all of them reach the routes API and
  /metrics; a worker that dies is replaced; workers of a primary that dies exit;
  SIGHUP replaces the workers while traffic flows.
- Replicas: `atrium proxy --routes-from <hub>/hub/api/proxy/watch` follows the
  hub's table; two replicas stay consistent as servers start and stop; a
  replica restarted has its routes back within a second; the stream refuses
  other tokens.

Real processes throughout (the proxies are `atrium proxy` subprocesses, the
hub runs in-process with the test spawner), each stopped by its PID.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from hub.proxy.server.feed import FeedError, Follower
from hub.proxy.server.routes import RouteTable
from hub.proxy.supervisor import pid_alive
from tests.conftest import HubFactory, RunningHub, expect_error
from tests.proxyproc import ProxyProc, children
from tests.test_proxy_server import Backend, start_backend
from tests.waits import eventually

TOKEN = "scale-out-test-token-0123456789abcdef"
SPAWNER = "tests.spawner.ProcessSpawner"


async def fetch(url: str, **kw: Any) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, raise_error=False, request_timeout=10, **kw)


async def fresh_get(port: int, path: str) -> bytes:
    """One request on a new connection (so each may land on another worker)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return await asyncio.wait_for(reader.read(-1), 30)  # a bound for a busy machine
    finally:
        writer.close()


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, Backend]]:
    started = {name: start_backend(name) for name in ("hub", "ann", "bo")}
    yield started
    for backend in started.values():
        backend.server.stop()
        await backend.server.close_all_connections()


def backend_of(answer: bytes) -> str:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:200]
    return str(orjson.loads(body)["backend"])


# --- route events ------------------------------------------------------------------


def test_follower_applies_snapshots_and_changes() -> None:
    table = RouteTable()
    table.add("/", "http://127.0.0.1:1")  # a default route from --default-target
    follower = Follower(table)
    follower.apply(
        {
            "type": "SNAPSHOT",
            "routes": {
                "/user/ann/": {"target": "http://127.0.0.1:2", "data": {"user": "ann"}},
                "/user/bo": {"target": "http://127.0.0.1:3", "last_activity": 1000.0},
            },
        }
    )
    assert follower.synced
    assert set(table.routes()) == {"/", "/user/ann", "/user/bo"}  # default route kept
    assert table.get("/user/bo").last_activity == 1000.0  # type: ignore[union-attr]
    follower.apply_line(b'{"type": "ADDED", "prefix": "/user/cy", "target": "http://127.0.0.1:4"}')
    follower.apply_line(b'{"type": "DELETED", "prefix": "/user/ann"}')
    follower.apply_line(b'{"type": "HEARTBEAT"}')
    assert set(table.routes()) == {"/", "/user/bo", "/user/cy"}
    # a later snapshot removes what it does not list, keeps what is unchanged
    bo = table.get("/user/bo")
    follower.apply({"type": "SNAPSHOT", "routes": {"/user/bo": {"target": "http://127.0.0.1:3"}}})
    assert set(table.routes()) == {"/", "/user/bo"}
    assert table.get("/user/bo") is bo


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "EXPLODE"}',
        b'{"type": "ADDED", "target": "http://127.0.0.1:9"}',
        b'{"type": "ADDED", "prefix": "/x", "target": "ftp://nope"}',
        b'{"type": "ADDED", "prefix": "/x", "target": "http://127.0.0.1:9", "data": [1]}',
        b'{"type": "DELETED", "prefix": 7}',
        b'{"type": "SNAPSHOT", "routes": []}',
        # one bad route in a snapshot: none of it is applied
        b'{"type": "SNAPSHOT", "routes": {"/a": {"target": "http://127.0.0.1:9"}, "/b": {}}}',
    ],
)
def test_bad_route_events_change_nothing(line: bytes) -> None:
    table = RouteTable()
    table.add("/user/ann", "http://127.0.0.1:2")
    before = {p: (r.target, r.data) for p, r in table.routes().items()}
    with pytest.raises(FeedError):
        Follower(table).apply_line(line)
    assert {p: (r.target, r.data) for p, r in table.routes().items()} == before


# --- workers -----------------------------------------------------------------------


async def test_workers_share_routes_activity_and_metrics(
    backends: dict[str, Backend], proxies: list[ProxyProc]
) -> None:
    hub, ann = backends["hub"], backends["ann"]
    proxy = await ProxyProc("--workers=3", f"--default-target={hub.url}").start(2)
    proxies.append(proxy)
    assert len(proxy.workers) == 2
    added_at = time.time()
    await proxy.client().add_route("/user/ann", ann.url, {"user": "ann"})
    # many connections, spread by the kernel over the three processes: all routed
    answers = await asyncio.gather(*(fresh_get(proxy.port, "/user/ann/x") for _ in range(60)))
    assert {backend_of(a) for a in answers} == {"ann"}
    assert backend_of(await fresh_get(proxy.port, "/elsewhere")) == "hub"

    async def all_counted() -> bool:
        text = (await fetch(f"http://127.0.0.1:{proxy.api_port}/metrics")).body.decode()
        return 'atrium_proxy_requests_total{outcome="proxied"} 61.0' in text

    await eventually(all_counted)  # workers report every second
    text = (await fetch(f"http://127.0.0.1:{proxy.api_port}/metrics")).body.decode()
    assert "atrium_proxy_request_duration_seconds_count 61.0" in text
    assert "atrium_proxy_routes 2.0" in text  # not multiplied by the processes
    routes = await proxy.client().get_routes()
    activity = routes["/user/ann"]["last_activity"]
    assert activity > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(added_at - 1))

    # a route removed is gone from every process
    await proxy.client().delete_route("/user/ann")
    answers = await asyncio.gather(*(fresh_get(proxy.port, "/user/ann/x") for _ in range(30)))
    assert {backend_of(a) for a in answers} == {"hub"}


async def test_a_dead_worker_is_replaced_and_workers_die_with_the_primary(
    backends: dict[str, Backend], proxies: list[ProxyProc]
) -> None:
    ann = backends["ann"]
    proxy = await ProxyProc("--workers=2").start(1)
    proxies.append(proxy)
    await proxy.client().add_route("/user/ann", ann.url)
    (worker,) = proxy.workers
    os.kill(worker, signal.SIGKILL)

    async def replaced() -> bool:
        return not pid_alive(worker) and "atrium_proxy_processes 2.0" in await proxy.metrics()

    await eventually(replaced)
    (new_worker,) = children(proxy.pid)
    proxy.workers.add(new_worker)
    answers = await asyncio.gather(*(fresh_get(proxy.port, "/user/ann/x") for _ in range(40)))
    assert {backend_of(a) for a in answers} == {"ann"}  # the new one has the routes too

    # the primary killed outright: its workers notice and exit by themselves
    assert proxy.proc is not None
    proxy.proc.kill()
    await proxy.proc.wait()

    async def orphans_gone() -> bool:
        return not pid_alive(new_worker)

    await eventually(orphans_gone)


async def test_sighup_replaces_workers_while_traffic_flows(
    backends: dict[str, Backend], proxies: list[ProxyProc]
) -> None:
    ann = backends["ann"]
    # the old worker's drain outlasts the download even on a busy machine: what is
    # checked is that the reload itself drops nothing
    proxy = await ProxyProc(
        "--workers=2", f"--default-target={ann.url}", "--drain-timeout=60"
    ).start(1)
    proxies.append(proxy)
    await proxy.client().add_route("/user/ann", ann.url)
    old_workers = set(proxy.workers)
    # a long download in flight when the reload starts
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /stream?mb=30 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await reader.readexactly(1000)
    download = asyncio.ensure_future(reader.read(-1))
    results: list[str] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            results.append(backend_of(await fresh_get(proxy.port, "/user/ann/x")))

    flowing = asyncio.ensure_future(traffic())
    assert proxy.proc is not None
    proxy.proc.send_signal(signal.SIGHUP)

    async def reloaded() -> bool:
        now = children(proxy.pid)
        return len(now) == 1 and not (now & old_workers)

    await eventually(reloaded, timeout=90)  # the old worker may drain for up to 60 s
    proxy.workers |= children(proxy.pid)
    await asyncio.sleep(0.3)
    stop.set()
    await flowing
    assert len(results) > 20
    assert set(results) == {"ann"}
    rest = await asyncio.wait_for(download, 30)
    writer.close()
    assert len(rest) > 30 * 1024 * 1024 - 2000  # the download finished whole
    assert proxy.proc.returncode is None


# --- replicas following the hub ----------------------------------------------------


def replica_settings(tmp_path: Path) -> dict[str, Any]:
    """A hub that drives no proxy API: replicas follow /hub/api/proxy/watch."""
    return {
        "proxy": "atrium",
        "proxy_should_start": False,
        "proxy_api_url": "",
        "spawner_class": SPAWNER,
        "proxy_check_interval": 60.0,
    }


def hub_token(hub: RunningHub) -> str:
    return Path(hub.app.settings.proxy_auth_token_file).read_text().strip()


def watch_url(hub: RunningHub) -> str:
    return f"{hub.url}api/proxy/watch"


async def test_replicas_follow_the_hub(
    hub_factory: HubFactory, proxies: list[ProxyProc], tmp_path: Path
) -> None:
    hub = await hub_factory(**replica_settings(tmp_path))
    token = hub_token(hub)
    replicas = [
        await ProxyProc(f"--routes-from={watch_url(hub)}", token=token).start() for _ in range(2)
    ]
    proxies.extend(replicas)
    for replica in replicas:
        routes = await replica.client().get_routes()
        assert set(routes) == {"/"}  # the hub's default route, from the hub's snapshot
        r = await fetch(replica.url + "/hub/api/")
        assert r.code == 200
        assert b"version" in r.body

    await hub.add_user("ann")
    await hub.add_user("bo")
    for name in ("ann", "bo"):
        assert (await hub.api("POST", f"/users/{name}/server")).status == 201

    async def both_have(prefixes: set[str]) -> bool:
        tables = [set(await r.client().get_routes()) for r in replicas]
        return all(t == prefixes for t in tables)

    await eventually(lambda: both_have({"/", "/user/ann", "/user/bo"}))
    for replica in replicas:
        r = await fetch(replica.url + "/user/ann/")
        assert r.headers["Server"].startswith("SimpleHTTP")  # ann's own server process
    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    await eventually(lambda: both_have({"/", "/user/bo"}))

    # a replica restarted gets the whole table from its first snapshot
    await replicas[0].stop()
    restarted = ProxyProc(f"--routes-from={watch_url(hub)}", token=token)
    restarted.port, restarted.api_port = replicas[0].port, replicas[0].api_port
    await restarted.start()
    proxies.append(restarted)
    # the table came with its first snapshot, before it listened: no waiting for a check
    assert "/user/bo" in await restarted.client().get_routes()
    r = await fetch(restarted.url + "/user/bo/")
    assert r.headers["Server"].startswith("SimpleHTTP")

    # the hub's view, for admins and tools
    routes = (await hub.api("GET", "/proxy")).json()
    assert set(routes) == {"/", "/user/bo"}
    assert routes["/user/bo"]["user"] == "bo"


async def test_a_replica_reconnects_when_the_stream_breaks(
    hub_factory: HubFactory, proxies: list[ProxyProc], tmp_path: Path
) -> None:
    hub = await hub_factory(**replica_settings(tmp_path))
    replica = await ProxyProc(f"--routes-from={watch_url(hub)}", token=hub_token(hub)).start()
    proxies.append(replica)
    await hub.add_user("ann")
    # every stream cut from the hub's side (as when the hub restarts)
    assert hub.state.proxy is not None
    hub.state.proxy.broadcast.close()
    assert (await hub.api("POST", "/users/ann/server")).status == 201

    async def has_ann() -> bool:
        return "/user/ann" in await replica.client().get_routes()

    took = await eventually(has_ann)
    assert took < 2  # reconnected at once and took the new snapshot


async def test_the_route_stream_refuses_other_tokens(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = await hub_factory(**replica_settings(tmp_path))
    url = watch_url(hub)
    for headers in ({}, {"Authorization": "token not-the-proxy-token"}):
        r = await fetch(url, headers=headers)
        assert r.code == 403
        assert orjson.loads(r.body)["status"] == 403
        assert hub_token(hub).encode() not in r.body
    await hub.add_user("ann")
    r = await hub.api("GET", "/proxy/watch", token=await hub.token_for("ann"))
    expect_error(r, 403, "proxy scope")
    # a hub without a proxy has no stream
    plain = await hub_factory()
    expect_error(await plain.api("GET", "/proxy"), 404, "no proxy")


async def test_hub_settings_for_replicas_are_checked(hub_factory: HubFactory) -> None:
    from hub.errors import ConfigError

    with pytest.raises(ConfigError, match="proxy_api_url is empty"):
        await hub_factory(proxy="atrium", proxy_api_url="")


async def test_a_test_proxy_that_cannot_start_is_not_left_behind() -> None:
    """ProxyProc's own clean-up: a proxy whose port is taken fails the start at once and
    leaves no process, even though no fixture ever saw it."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        proxy = ProxyProc()
        proxy.port = taken.getsockname()[1]
        with pytest.raises(AssertionError, match="the proxy exited"):
            await proxy.start()
        assert proxy.proc is not None
        await asyncio.wait_for(proxy.proc.wait(), timeout=30)
    finally:
        taken.close()
