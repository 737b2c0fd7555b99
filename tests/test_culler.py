"""Idle culling built into the hub (`hub.culler`), and JupyterHub's external culler.

The culler's passes are run with a chosen "now" (hours later), so timeouts of an
hour are tested without waiting an hour; one test lets the hub's own periodic
culler run with a one-second timeout. Servers are real processes (the test
spawner), stopped for real; the proxy's activity comes from the real built-in
proxy; kernels are culled inside a real `atrium-singleuser`.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient
from traitlets import TraitError

from hub.culler import Culler, CullPolicy, cull_once
from hub.spawnenv import server_env
from hub.timeutil import isoformat, parse_timestamp, utcnow
from tests.conftest import HubFactory, RunningHub, behind_atrium_proxy
from tests.kernelws import KernelSocket
from tests.spawner import pid_alive
from tests.test_singleuser import fetch, new_kernel, start_hub
from tests.waits import eventually

SPAWNER = "tests.spawner.ProcessSpawner"
HOUR = datetime.timedelta(hours=1)
MINUTE = datetime.timedelta(minutes=1)
POLICY = CullPolicy(timeout=3600, every=600, group_timeouts={"tas": 4 * 3600})


async def start(hub: RunningHub, user: str, server: str = "") -> int:
    """Start a server; its process id."""
    path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
    r = await hub.api("POST", path)
    assert r.status == 201, r.body
    spawners = hub.state.orchestrator.spawners.values()
    spawner = next(s for s in spawners if (s.user_name, s.server_name) == (user, server))
    return int(spawner.get_state()["pid"])


async def running(hub: RunningHub, user: str) -> list[str]:
    r = await hub.api("GET", f"/users/{user}")
    assert r.status == 200
    return sorted(name for name, s in r.json()["servers"].items() if s["ready"])


async def report_activity(
    hub: RunningHub, user: str, when: datetime.datetime, server: bool = True
) -> None:
    stamp = isoformat(when)
    body: dict[str, Any] = {"last_activity": stamp}
    if server:
        body["servers"] = {"": {"last_activity": stamp}}
    assert (await hub.api("POST", f"/users/{user}/activity", body)).status == 204


async def test_idle_servers_stop_after_their_users_timeout(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, allow_named_servers=True)
    for user in ("ann", "bob", "cy"):
        await hub.add_user(user)
    assert (await hub.api("POST", "/groups/tas", {"users": ["bob"]})).status == 201
    t0 = utcnow()
    ann = await start(hub, "ann")
    await start(hub, "bob")
    proj = await start(hub, "cy", "proj")
    # nothing is idle yet
    report = await cull_once(hub.state, POLICY, now=t0 + 30 * MINUTE)
    assert (report.idle, report.too_old) == ([], [])
    # ann's server reports use 50 minutes in: 40 minutes later it is not idle yet
    await report_activity(hub, "ann", t0 + 50 * MINUTE)
    report = await cull_once(hub.state, POLICY, now=t0 + 90 * MINUTE)
    assert report.idle == ["cy/proj"]
    assert not pid_alive(proj)
    assert await running(hub, "cy") == []
    assert await running(hub, "ann") == [""]
    # two hours in: ann's is idle for over an hour; bob, a teaching assistant, has four
    report = await cull_once(hub.state, POLICY, now=t0 + 2 * HOUR)
    assert report.idle == ["ann"]
    assert not pid_alive(ann)
    assert await running(hub, "bob") == [""]
    report = await cull_once(hub.state, POLICY, now=t0 + 4 * HOUR + MINUTE)
    assert report.idle == ["bob"]
    assert await running(hub, "bob") == []
    # the stops are in the audit log, done by the culler
    entries = (await hub.api("GET", "/audit?action=server.stop")).json()
    assert {(e["actor"], e["target"]) for e in entries} >= {
        ("atrium-culler", "ann"),
        ("atrium-culler", "bob"),
        ("atrium-culler", "cy/proj"),
    }
    # a server stopped meanwhile is left alone: nothing to do
    report = await cull_once(hub.state, POLICY, now=t0 + 9 * HOUR)
    assert (report.idle, report.too_old, report.failed) == ([], [], [])


async def test_servers_older_than_max_age_stop_even_in_use(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    t0 = utcnow()
    pid = await start(hub, "ann")
    policy = CullPolicy(timeout=3600, every=600, max_age=1800)
    await report_activity(hub, "ann", t0 + 29 * MINUTE)
    report = await cull_once(hub.state, policy, now=t0 + 29 * MINUTE)
    assert report.too_old == []
    report = await cull_once(hub.state, policy, now=t0 + 31 * MINUTE)
    assert (report.idle, report.too_old) == ([], ["ann"])
    assert not pid_alive(pid)


async def test_idle_users_are_removed_when_asked(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    for user in ("ann", "bob", "cy", "dee"):
        await hub.add_user(user)
    assert (await hub.api("POST", "/users/boss", {"admin": True})).status == 201
    assert (await hub.api("POST", "/groups/tas", {"users": ["dee"]})).status == 201
    t0 = utcnow()
    await start(hub, "bob")
    await report_activity(hub, "cy", t0 + 55 * MINUTE, server=False)
    policy = CullPolicy(timeout=3600, every=600, users=True, group_timeouts={"tas": 4 * 3600})
    # without `users`, nobody goes; bob's server, idle, is stopped
    report = await cull_once(hub.state, POLICY, now=t0 + 90 * MINUTE)
    assert (report.idle, report.users) == (["bob"], [])
    # with it, the users idle as long go: ann (never active) and bob
    report = await cull_once(hub.state, policy, now=t0 + 90 * MINUTE)
    assert report.users == ["ann", "bob"]
    names = {u["name"] for u in (await hub.api("GET", "/users")).json()}
    assert {"cy", "dee", "boss", "admin"} == names
    # cy was active 55 minutes in; dee, a teaching assistant, has four hours
    report = await cull_once(hub.state, policy, now=t0 + 2 * HOUR)
    assert report.users == ["cy"]
    report = await cull_once(hub.state, policy, now=t0 + 5 * HOUR)
    assert report.users == ["dee"]
    # admins are never removed
    names = {u["name"] for u in (await hub.api("GET", "/users")).json()}
    assert names == {"boss", "admin"}
    entries = (await hub.api("GET", "/audit?action=user.delete")).json()
    assert {e["actor"] for e in entries} == {"atrium-culler"}


async def test_activity_seen_by_the_proxy_counts(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = await hub_factory(**behind_atrium_proxy(tmp_path))
    await hub.add_user("ann")
    await start(hub, "ann")
    public = f"http://127.0.0.1:{hub.app.settings.port}"

    async def last_activity() -> datetime.datetime:
        server = (await hub.api("GET", "/users/ann")).json()["servers"][""]
        return parse_timestamp(server["last_activity"])

    before = await last_activity()
    await asyncio.sleep(0.05)
    r = await AsyncHTTPClient().fetch(f"{public}/user/ann/", raise_error=False)
    assert r.code == 404  # from the test server (http.server has no such file): it got there
    # only the culler's pass reads the proxy: not yet seen
    assert await last_activity() == before
    await cull_once(hub.state, POLICY)
    seen = await last_activity()
    assert seen > before
    user = (await hub.api("GET", "/users/ann")).json()
    assert parse_timestamp(user["last_activity"]) >= seen
    # an hour and a half after that request the server is idle (no more traffic)
    report = await cull_once(hub.state, POLICY, now=seen + 90 * MINUTE)
    assert report.idle == ["ann"]


async def test_the_hubs_culler_runs_by_itself(hub_factory: HubFactory) -> None:
    config = "c.Culler.enabled = True\nc.Culler.timeout = 1\nc.Culler.every = 1\n"
    hub = await hub_factory(spawner_class=SPAWNER, config=config)
    await hub.add_user("ann")
    pid = await start(hub, "ann")

    async def stopped() -> bool:  # stopped, not stopping: no server listed at all
        return (await hub.api("GET", "/users/ann")).json()["servers"] == {}

    await eventually(stopped, timeout=60)
    assert not pid_alive(pid)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("c.Culler.timeout = 0", "c.Culler.timeout must be at least 1 second"),
        ("c.Culler.every = -5", "c.Culler.every must be 0 or more seconds"),
        ("c.Culler.max_age = -1", "c.Culler.max_age must be 0 or more seconds"),
        ("c.Culler.concurrency = 0", "c.Culler.concurrency must be 1 or more"),
        ("c.Culler.group_timeouts = {'tas': 0}", "group_timeouts['tas'] must be at least 1"),
        ("c.Culler.group_timeouts = {'tas': 'long'}", "group_timeouts"),
        ("c.Culler.timout = 60", "unknown setting c.Culler.timout; did you mean c.Culler.timeout"),
    ],
)
def test_bad_settings_stop_the_hub_with_a_clear_message(
    setting: str, complaint: str, tmp_path: Path
) -> None:
    config = tmp_path / "atrium_config.py"
    config.write_text(f"c.Culler.enabled = True\n{setting}\n")
    result = subprocess.run(
        [sys.executable, "-m", "hub.app", "--config", str(config), "--port", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "atrium.sqlite").exists()  # refused before anything was made


def test_policy_from_settings() -> None:
    assert Culler().policy() is None  # off unless enabled
    policy = Culler(enabled=True, timeout=7200, group_timeouts={"tas": 600}).policy()
    assert policy is not None
    assert policy.every == 300  # half the shortest timeout
    assert policy.timeout_for(frozenset()) == 7200
    assert policy.timeout_for(frozenset({"tas"})) == 7200  # never less than `timeout`
    policy = Culler(enabled=True, timeout=86400, every=30).policy()
    assert policy is not None
    assert policy.every == 30
    with pytest.raises(TraitError, match=r"c\.Culler\.concurrency must be 1 or more"):
        Culler(concurrency=-1)


async def test_jupyterhub_idle_culler_works_against_the_hub(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    pid = await start(hub, "ann")
    env = {**os.environ, "JUPYTERHUB_API_TOKEN": hub.admin_token}
    culler = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jupyterhub_idle_culler",
        f"--url={hub.url}api",
        "--timeout=1",
        "--cull-every=1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        async def stopped() -> bool:  # stopped, not stopping: no server listed at all
            assert culler.returncode is None, "jupyterhub-idle-culler exited"
            return (await hub.api("GET", "/users/ann")).json()["servers"] == {}

        await eventually(stopped, timeout=60)
    finally:
        os.killpg(culler.pid, signal.SIGTERM)
        out, _ = await asyncio.wait_for(culler.communicate(), timeout=30)
    assert not pid_alive(pid)
    text = out.decode("utf-8", "replace")
    assert "Culling server" in text, text[-2000:]
    assert "Traceback" not in text, text[-2000:]


def test_kernel_timeout_is_in_the_servers_environment() -> None:
    from hub.ops.context import HubContext

    env = server_env(HubContext(kernel_cull_timeout=900), "http://hub:8081", "ann", "", "t")
    assert env["ATRIUM_KERNEL_CULL_TIMEOUT"] == "900"
    env = server_env(HubContext(), "http://hub:8081", "ann", "", "t")
    assert "ATRIUM_KERNEL_CULL_TIMEOUT" not in env


async def test_idle_kernels_are_culled_inside_the_server_busy_ones_are_not(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub, public = await start_hub(hub_factory, tmp_path, "c.Culler.kernel_timeout = 2\n")
    await hub.add_user("ann")
    r = await hub.api("POST", "/users/ann/server")
    assert r.status == 201, r.body[:300]
    token = await hub.token_for("ann")

    async def kernel_ids() -> list[str]:
        r = await fetch(f"{public}/user/ann/api/kernels", token)
        assert r.code == 200
        return [k["id"] for k in orjson.loads(r.body)]

    async def server_activity() -> datetime.datetime:
        server = (await hub.api("GET", "/users/ann")).json()["servers"][""]
        return parse_timestamp(server["last_activity"])

    # a kernel busy for 8 s without a word of output: neither it nor its server is idle
    busy = await new_kernel(public, "ann", token)
    ws_url = f"ws://127.0.0.1:{hub.app.settings.port}/user/ann/api/kernels/{busy}/channels"
    sock = await KernelSocket.open(ws_url, token)
    try:
        reply, _ = await sock.execute("import time")
        assert reply["content"]["status"] == "ok"
        await sock.send(
            "shell", sock.message("execute_request", {"code": "time.sleep(8)", "silent": False})
        )
        began = utcnow()

        async def reported_while_busy() -> bool:
            return await server_activity() > began + datetime.timedelta(seconds=4)

        await eventually(reported_while_busy, timeout=30)
        assert busy in await kernel_ids()  # past its 2 s, but busy
    finally:
        sock.close()
    # once it is done and nobody uses it, it goes
    other = await new_kernel(public, "ann", token)

    async def culled() -> bool:
        ids = await kernel_ids()
        return busy not in ids and other not in ids

    await eventually(culled, timeout=60)
