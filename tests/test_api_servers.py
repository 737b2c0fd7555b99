"""Starting and stopping servers through the API, with a real process spawner.

POST answers 201 when the server is ready within `slow_spawn_timeout` and 202
while it is still starting; DELETE answers 204 when it stopped and 202 while it
is stopping. Failures leave the server stopped, never stuck pending, and the
spawner's processes are really gone after a stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado.httpclient import AsyncHTTPClient

from hub.db.models import Server, User
from tests.conftest import (
    HubFactory,
    LogCapture,
    RunningHub,
    api_state,
    assert_bad_inputs_change_nothing,
    expect_error,
)
from tests.spawner import pid_alive, started_pids

SPAWNER = "tests.spawner.ProcessSpawner"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def servers(hub: RunningHub, name: str, stopped: bool = False) -> dict[str, Any]:
    query = "?include_stopped_servers=1" if stopped else ""
    r = await hub.api("GET", f"/users/{name}{query}")
    assert r.status == 200
    return r.json()["servers"]  # type: ignore[no-any-return]


async def answers(url: str) -> bool:
    r = await AsyncHTTPClient().fetch(url, raise_error=False, request_timeout=5)
    return r.code == 200


async def test_no_spawner_configured(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class="")
    await hub.add_user("ann")
    await hub.add_user("bob")
    ann = await hub.token_for("ann")
    r = await hub.api("POST", "/users/ann/server", token=ann)
    expect_error(r, 503, "spawner")
    assert r.headers["Retry-After"]
    assert await servers(hub, "ann", stopped=True) == {}
    # who comes before what: unknown and invisible users are 404 as on any hub
    expect_error(await hub.api("POST", "/users/nobody/server"), 404)
    expect_error(await hub.api("POST", "/users/bob/server", token=ann), 404)
    # nothing to stop
    assert (await hub.api("DELETE", "/users/ann/server", token=ann)).status == 204


async def test_start_and_stop(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    assert (await hub.api("GET", "/info")).json()["spawner"] == {"class": SPAWNER}
    await hub.add_user("ann")
    ann = await hub.token_for("ann")

    r = await hub.api("POST", "/users/ann/server", token=ann)
    assert r.status == 201
    model = (await hub.api("GET", "/users/ann")).json()
    assert model["server"] == "/user/ann/"
    assert model["pending"] is None
    server = model["servers"][""]
    assert server["ready"] is True
    assert server["pending"] is None
    assert server["stopped"] is False
    assert server["url"] == "/user/ann/"
    assert server["progress_url"] == "/hub/api/users/ann/server/progress"
    assert server["started"]
    pid, port = server["state"]["pid"], server["state"]["port"]
    assert pid_alive(pid)
    assert await answers(f"http://127.0.0.1:{port}/")
    # the owner sees her server, but not the spawner's state
    own = (await hub.api("GET", "/users/ann", token=ann)).json()["servers"][""]
    assert own["ready"] is True
    assert "state" not in own

    expect_error(await hub.api("POST", "/users/ann/server", token=ann), 400, "already running")
    assert (await servers(hub, "ann"))[""]["state"]["pid"] == pid

    r = await hub.api("DELETE", "/users/ann/server", token=ann)
    assert r.status == 204
    assert not pid_alive(pid)
    assert (await hub.api("GET", "/users/ann")).json()["server"] is None
    assert await servers(hub, "ann") == {}
    stopped = (await servers(hub, "ann", stopped=True))[""]
    assert (stopped["stopped"], stopped["ready"], stopped["pending"]) == (True, False, None)
    for flag in ("0", "false"):
        model = (await hub.api("GET", f"/users/ann?include_stopped_servers={flag}")).json()
        assert model["servers"] == {}
    # stopping a stopped server is fine
    assert (await hub.api("DELETE", "/users/ann/server", token=ann)).status == 204

    # and it starts again, as a new process; options in JupyterHub 6's request shape
    body = {"user_options": {"start_delay": 0.1}, "display_name": "Ann's"}
    assert (await hub.api("POST", "/users/ann/server", body, token=ann)).status == 201
    assert (await servers(hub, "ann"))[""]["user_options"] == {"start_delay": 0.1}
    again = (await servers(hub, "ann"))[""]["state"]["pid"]
    assert again != pid
    assert pid_alive(again)
    assert (await hub.api("DELETE", "/users/ann/server", token=ann)).status == 204
    assert not pid_alive(again)


async def test_slow_start_and_stop(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        slow_spawn_timeout=0.2,
        slow_stop_timeout=0.2,
        config="c.ProcessSpawner.stop_delay = 0.8\n",
    )
    await hub.add_user("ann")
    await hub.add_user("carl")

    r = await hub.api("POST", "/users/ann/server", {"start_delay": 1.0})
    assert r.status == 202
    model = (await hub.api("GET", "/users/ann")).json()
    assert model["pending"] == "spawn"
    assert model["servers"][""]["pending"] == "spawn"
    assert model["servers"][""]["ready"] is False
    assert model["servers"][""]["user_options"] == {"start_delay": 1.0}
    # starting while it starts: still 202, as on JupyterHub 6
    assert (await hub.api("POST", "/users/ann/server")).status == 202

    async def listed(state: str) -> list[str]:
        return [u["name"] for u in (await hub.api("GET", f"/users?state={state}")).json()]

    assert await listed("active") == ["ann"]
    assert await listed("ready") == []
    assert await listed("inactive") == ["admin", "carl"]

    async def ready() -> bool:
        return bool((await servers(hub, "ann")).get("", {}).get("ready"))

    await eventually(ready)
    pid = (await servers(hub, "ann"))[""]["state"]["pid"]
    assert await listed("ready") == ["ann"]

    r = await hub.api("DELETE", "/users/ann/server")
    assert r.status == 202
    assert (await servers(hub, "ann"))[""]["pending"] == "stop"
    assert (await hub.api("DELETE", "/users/ann/server")).status == 202
    expect_error(await hub.api("POST", "/users/ann/server"), 400, "pending stop")

    async def gone() -> bool:
        return await servers(hub, "ann") == {}

    await eventually(gone)
    assert not pid_alive(pid)
    assert await listed("inactive") == ["admin", "ann", "carl"]


async def test_stop_while_starting(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, slow_spawn_timeout=0.3)
    await hub.add_user("ann")

    r = await hub.api("POST", "/users/ann/server", {"start_delay": 30})
    assert r.status == 202
    pid = started_pids[-1]
    assert pid_alive(pid)
    r = await hub.api("DELETE", "/users/ann/server")
    assert r.status == 204
    assert not pid_alive(pid)
    assert await servers(hub, "ann") == {}

    # a start request still waiting when the server is stopped hears about it
    orchestrator = hub.state.orchestrator
    orchestrator.timeouts = dataclasses.replace(orchestrator.timeouts, slow_spawn=5.0)
    post = asyncio.ensure_future(hub.api("POST", "/users/ann/server", {"start_delay": 30}))

    async def pending() -> bool:
        return (await servers(hub, "ann")).get("", {}).get("pending") == "spawn"

    await eventually(pending)
    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    expect_error(await post, 409, "stopped before it finished starting")
    assert not pid_alive(started_pids[-1])

    # nothing is stuck: a normal start works
    assert (await hub.api("POST", "/users/ann/server")).status == 201


async def test_failing_spawner(hub_factory: HubFactory, hub_logs: LogCapture) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        slow_spawn_timeout=5,
        config="c.ProcessSpawner.start_timeout = 1.0\n",
    )
    await hub.add_user("ann")

    for options, fragment in [
        ({"failure": "exception"}, "told to fail"),
        ({"failure": "exit"}, "exited with status 3"),
        ({"failure": "never_answer"}, "did not start within 1 second"),
    ]:
        count = len(started_pids)
        expect_error(await hub.api("POST", "/users/ann/server", options), 500, fragment)
        server = (await servers(hub, "ann", stopped=True))[""]
        assert (server["pending"], server["ready"], server["stopped"]) == (None, False, True)
        assert fragment in server["failure"]  # what went wrong, until the next start
        assert all(not pid_alive(pid) for pid in started_pids[count:])
    assert fragment in hub_logs.text()

    # not stuck: the next start works
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    assert (await servers(hub, "ann"))[""]["failure"] is None
    assert (await hub.api("DELETE", "/users/ann/server")).status == 204


async def test_failure_after_202(hub_factory: HubFactory, hub_logs: LogCapture) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        slow_spawn_timeout=0.2,
        config="c.ProcessSpawner.start_timeout = 0.6\n",
    )
    await hub.add_user("ann")
    r = await hub.api("POST", "/users/ann/server", {"failure": "never_answer"})
    assert r.status == 202
    pid = started_pids[-1]

    async def not_pending() -> bool:
        return (await servers(hub, "ann", stopped=True))[""]["pending"] is None

    await eventually(not_pending)
    assert (await servers(hub, "ann", stopped=True))[""]["stopped"] is True
    assert not pid_alive(pid)
    assert "did not start within 0.6 seconds" in hub_logs.text()


async def test_failed_stop_leaves_server_running(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, config="c.ProcessSpawner.fail_stop = 1\n")
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    pid = (await servers(hub, "ann"))[""]["state"]["pid"]

    expect_error(await hub.api("DELETE", "/users/ann/server"), 500, "failed to stop")
    server = (await servers(hub, "ann"))[""]
    assert (server["ready"], server["pending"]) == (True, None)
    assert pid_alive(pid)
    # the next attempt works
    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    assert not pid_alive(pid)


async def test_crashed_server_can_start_again(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    pid = (await servers(hub, "ann"))[""]["state"]["pid"]
    os.kill(pid, signal.SIGKILL)

    async def dead() -> bool:
        return not pid_alive(pid)

    await eventually(dead)
    # the hub notices the process is gone instead of answering "already running"
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    new_pid = (await servers(hub, "ann"))[""]["state"]["pid"]
    assert new_pid != pid
    assert pid_alive(new_pid)


async def test_named_servers(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER, allow_named_servers=True, named_server_limit_per_user=2
    )
    await hub.add_user("ann")
    ann = await hub.token_for("ann")

    assert (await hub.api("POST", "/users/ann/servers/lab", token=ann)).status == 201
    model = (await hub.api("GET", "/users/ann")).json()
    assert model["server"] is None  # the default server is not running
    lab = model["servers"]["lab"]
    assert (lab["name"], lab["display_name"], lab["full_name"]) == ("lab", "lab", "ann/lab")
    assert lab["url"] == "/user/ann/lab/"
    assert lab["progress_url"] == "/hub/api/users/ann/servers/lab/progress"
    lab_pid = lab["state"]["pid"]
    expect_error(await hub.api("POST", "/users/ann/servers/lab", token=ann), 400, "running")

    # the limit counts named servers, running or not
    assert (await hub.api("POST", "/users/ann/servers/gpu", token=ann)).status == 201
    expect_error(await hub.api("POST", "/users/ann/servers/third", token=ann), 400, "maximum")
    assert (await hub.api("DELETE", "/users/ann/servers/gpu", token=ann)).status == 204
    assert (await servers(hub, "ann", stopped=True))["gpu"]["stopped"] is True
    expect_error(await hub.api("POST", "/users/ann/servers/third", token=ann), 400, "maximum")
    body = {"remove": True}
    assert (await hub.api("DELETE", "/users/ann/servers/gpu", body, token=ann)).status == 204
    assert "gpu" not in await servers(hub, "ann", stopped=True)
    assert (await hub.api("POST", "/users/ann/servers/third", token=ann)).status == 201

    # remove a running server: stopped, then gone
    assert (await hub.api("DELETE", "/users/ann/servers/lab", body, token=ann)).status == 204
    assert not pid_alive(lab_pid)
    assert set(await servers(hub, "ann", stopped=True)) == {"third"}

    expect_error(await hub.api("DELETE", "/users/ann/server", body, token=ann), 400, "default")
    expect_error(await hub.api("DELETE", "/users/ann/servers/nosuch", token=ann), 404)
    # the default server and named ones live side by side
    assert (await hub.api("POST", "/users/ann/server", token=ann)).status == 201
    assert set(await servers(hub, "ann")) == {"", "third"}


async def test_named_servers_disabled(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    expect_error(await hub.api("POST", "/users/ann/servers/lab"), 400, "not enabled")
    expect_error(await hub.api("DELETE", "/users/ann/servers/lab"), 400, "not enabled")
    assert await servers(hub, "ann", stopped=True) == {}


async def test_server_activity(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    started = (await servers(hub, "ann"))[""]["last_activity"]

    soon = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 600)) + ".000000Z"
    body = {"servers": {"": {"last_activity": soon}}}
    assert (await hub.api("POST", "/users/ann/activity", body)).status == 204
    model = (await hub.api("GET", "/users/ann")).json()
    assert model["servers"][""]["last_activity"] == soon
    assert model["last_activity"] == soon
    # older activity for the server moves nothing back
    body = {"servers": {"": {"last_activity": started}}}
    assert (await hub.api("POST", "/users/ann/activity", body)).status == 204
    assert (await servers(hub, "ann"))[""]["last_activity"] == soon


async def test_delete_user_stops_servers(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, allow_named_servers=True)
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    assert (await hub.api("POST", "/users/ann/servers/lab")).status == 201
    pids = [s["state"]["pid"] for s in (await servers(hub, "ann")).values()]
    assert (await hub.api("DELETE", "/users/ann")).status == 204
    assert not any(pid_alive(pid) for pid in pids)
    expect_error(await hub.api("GET", "/users/ann"), 404)


def _server_bad_input() -> list[tuple[str, str, Any, int, str]]:
    return [
        ("POST", "/users/ann/server", b"{", 400, "JSON"),
        ("POST", "/users/ann/server", [], 400, "object"),
        ("POST", "/users/ann/server", "x", 400, "object"),
        ("POST", "/users/ann/server", {"k": "\u0000"}, 400, "NUL"),
        ("POST", "/users/ann/server", {f"k{i}": i for i in range(101)}, 400, "user options"),
        ("POST", "/users/ann/server", {"user_options": [1]}, 400, "user_options"),
        ("POST", "/users/ann/server", {"user_options": {}, "display_name": 5}, 400, "display"),
        ("POST", "/users/nobody/server", None, 404, "No such user"),
        ("POST", "/users/nobody/servers/lab", None, 404, "No such user"),
        ("POST", "/users/ann/servers/bad%20name", None, 400, "server name"),
        ("POST", "/users/ann/servers/%2E%2E", None, 400, "server name"),
        ("POST", "/users/ann/servers/a%2Fb", None, 400, "server name"),
        ("POST", "/users/ann/servers/" + "x" * 65, None, 400, "too long"),
        ("POST", "/users/ann/servers/%3Cscript%3E", None, 400, "server name"),
        ("POST", "/users/ann/servers/lab%E2%80%AE", None, 400, "server name"),
        ("POST", "/users/ann/servers/lab%00", None, 400, "control"),
        ("DELETE", "/users/ann/server", b"{", 400, "JSON"),
        ("DELETE", "/users/ann/server", [], 400, "object"),
        ("DELETE", "/users/ann/server", {"remove": "yes"}, 400, "remove"),
        ("DELETE", "/users/ann/server", {"remove": True}, 400, "default"),
        ("DELETE", "/users/ann/server", {"now": True}, 400, "remove"),
        ("DELETE", "/users/nobody/server", None, 404, "No such user"),
        ("DELETE", "/users/ann/servers/nosuch", None, 404, "no server named"),
        ("PUT", "/users/ann/server", {}, 405, ""),
    ]


async def test_bad_input_changes_nothing(hub_factory: HubFactory, hub_logs: LogCapture) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, allow_named_servers=True)
    await hub.add_user("ann")
    await hub.add_user("bob")
    await assert_bad_inputs_change_nothing(hub, list(_server_bad_input()))

    # ann may not touch bob's servers, and cannot tell whether he exists
    ann = await hub.token_for("ann")
    before = await api_state(hub)
    for method in ("POST", "DELETE"):
        for path in ("/users/bob/server", "/users/bob/servers/lab", "/users/nobody/server"):
            expect_error(await hub.api(method, path, token=ann), 404)
    assert await api_state(hub) == before
    hub_logs.assert_no_secrets(hub.admin_token, ann)


async def test_restarted_hub_finds_its_servers(hub_factory: HubFactory) -> None:
    first = await hub_factory(spawner_class=SPAWNER)
    await first.add_user("ann")
    assert (await first.api("POST", "/users/ann/server")).status == 201
    pid = (await servers(first, "ann"))[""]["state"]["pid"]

    # a new hub on the same database knows the server only from its stored state
    second = await hub_factory(spawner_class=SPAWNER)
    expect_error(await second.api("POST", "/users/ann/server"), 400, "already running")
    assert (await second.api("DELETE", "/users/ann/server")).status == 204
    assert not pid_alive(pid)


async def test_work_left_pending_by_a_dead_hub(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    await hub.add_user("bob")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    pid = (await servers(hub, "ann"))[""]["state"]["pid"]
    assert (await hub.api("POST", "/users/bob/server")).status == 201
    assert (await hub.api("DELETE", "/users/bob/server")).status == 204

    def left_pending(session: Session, name: str, pending: str) -> None:
        server = session.scalars(select(Server).join(User).where(User.name == name)).one()
        server.pending = pending

    # as if a hub had died while stopping ann's server and while starting bob's
    await hub.db.run(left_pending, "ann", "stop")
    await hub.db.run(left_pending, "bob", "spawn")
    second = await hub_factory(spawner_class=SPAWNER)
    assert (await second.api("DELETE", "/users/ann/server")).status == 204
    assert not pid_alive(pid)
    assert (await second.api("POST", "/users/bob/server")).status == 201
    assert (await servers(second, "bob"))[""]["ready"] is True
