"""`hub-admin server list|start|stop`.

`list` runs in both modes on SQLite and PostgreSQL over server rows written to
the database. `start` and `stop` run against hubs with a real process spawner
(tests/spawner.py): one user, a group, everyone, named servers, a failing
start among good ones, starts and stops slower than the hub's answer (the
progress stream and polling), a deadline that passes, a hub asking to retry
later (429), and the offline mode refusing.
"""

from __future__ import annotations

import datetime
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from hub.db.models import Server, User
from hub.timeutil import utcnow
from tests import test_cli
from tests.conftest import HubFactory, RunningHub
from tests.spawner import ProcessSpawner, pid_alive
from tests.test_cli import Result, Target, clean_env, free_port, run_cli

# the CLI's targets (a hub, or only its database), as in tests/test_cli.py
target = test_cli.target

SPAWNER = "tests.test_cli_servers.PickySpawner"


class PickySpawner(ProcessSpawner):
    """The test spawner, except that servers of users whose names begin with `fail`
    fail to start."""

    async def start(self) -> str:
        if self.user_name.startswith("fail"):
            raise RuntimeError("this user's server is set to fail")
        return await super().start()


def outcomes(r: Result) -> dict[str, list[str]]:
    """Server label -> the words of its progress line (outcome first), from stdout."""
    found: dict[str, list[str]] = {}
    for line in r.out.splitlines():
        words = line.split()
        if words and not line.startswith(("Started ", "Stopped ")):
            found[words[0]] = words[1:]
    return found


async def pids(hub: RunningHub, name: str) -> dict[str, int]:
    servers = (await hub.api("GET", f"/users/{name}")).json()["servers"]
    return {server: model["state"]["pid"] for server, model in servers.items()}


def env_for(hub: RunningHub) -> dict[str, str]:
    return clean_env(ATRIUM_URL=hub.url, ATRIUM_TOKEN=hub.admin_token)


# --- list, both modes -----------------------------------------------------------------


async def test_list(target: Target) -> None:
    assert (await target.run("user", "add", "ann", "bob", "cid")).code == 0
    assert (await target.run("group", "create", "lab", "ann", "cid")).code == 0
    started = utcnow() - datetime.timedelta(hours=1)

    def servers(session: Session) -> None:
        ids = {name: uid for name, uid in session.execute(select(User.name, User.id))}
        session.add_all(
            [
                Server(
                    user_id=ids["ann"],
                    name="",
                    started=started,
                    last_activity=started,
                    url="http://127.0.0.1:9",
                ),
                Server(user_id=ids["ann"], name="gpu", pending="spawn"),
                Server(user_id=ids["bob"], name="old"),
            ]
        )

    await target.db.run(servers)
    r = await target.run("server", "list")
    assert r.code == 0, r.err
    header, *rows = r.out.splitlines()
    assert header.split() == ["USER", "SERVER", "STATE", "URL", "STARTED", "LAST", "ACTIVITY"]
    table = {tuple(row.split()[:2]): row.split()[2:] for row in rows}
    stamp = started.isoformat()[:19] + "Z"
    assert table[("ann", "-")] == ["ready", "/user/ann/", stamp, stamp]
    assert table[("ann", "gpu")] == ["pending", "spawn", "/user/ann/gpu/", "-", "-"]
    assert table[("bob", "-")] == ["stopped", "-", "-", "-"]
    assert table[("bob", "old")] == ["stopped", "-", "-", "-"]
    assert ("cid", "-") in table

    r = await target.run("--json", "server", "list", "--group", "lab")
    assert r.code == 0, r.err
    listed = {(s["user"], s["server"]): s for s in r.json()}
    assert set(listed) == {("ann", ""), ("ann", "gpu"), ("cid", "")}
    assert listed[("ann", "")]["state"] == "ready"
    assert listed[("ann", "")]["url"] == "/user/ann/"
    assert set(listed[("ann", "")]) == {
        "user",
        "server",
        "state",
        "url",
        "started",
        "last_activity",
    }

    r = await target.run("--json", "server", "list", "--state", "pending")
    assert [(s["user"], s["server"]) for s in r.json()] == [("ann", "gpu")]
    r = await target.run("--json", "server", "list", "--user", "bob", "--server", "old")
    assert [(s["user"], s["server"], s["state"]) for s in r.json()] == [("bob", "old", "stopped")]
    r = await target.run("server", "list", "--user", "cid", "--state", "ready")
    assert r.out == ""
    assert "No servers found." in r.err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["server", "list", "--user", "nobody"], 1, "No such user: nobody"),
        (["server", "list", "--group", "nope"], 1, "No such group: nope"),
        (["server", "list", "--state", "sleeping"], 2, "argument --state: invalid choice"),
        (["server", "list", "--user", "a", "--all"], 2, "not allowed with argument"),
        (["server", "start"], 2, "one of the arguments --user --group --all is required"),
        (["server", "stop", "--all", "--parallel", "0"], 2, "must be greater than zero"),
        (["server", "stop", "--all", "--parallel", "101"], 2, "must be at most 100"),
        (["server", "reboot"], 2, "invalid choice: 'reboot'"),
    ],
)
async def test_list_and_usage_errors(
    target: Target, argv: list[str], code: int, message: str
) -> None:
    r = await target.run(*argv)
    assert r.code == code, r.err
    assert message in r.error
    assert r.out == ""


async def test_offline_cannot_start_or_stop(db_url: str) -> None:
    assert (await run_cli("--db", db_url, "user", "add", "ann")).code == 0
    for verb in ("start", "stop"):
        r = await run_cli("--db", db_url, "server", verb, "--user", "ann")
        assert r.code == 2
        assert f"server {verb} needs a running hub (the hub runs the servers)" in r.error
        assert r.out == ""


# --- start and stop through a hub ------------------------------------------------------


async def test_start_and_stop_one_user(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, allow_named_servers=True)
    await hub.add_user("ann")
    env = env_for(hub)
    r = await run_cli("server", "start", "--user", "ann", env=env)
    assert r.code == 0, r.err
    assert outcomes(r)["ann"][0] == "ready"
    assert r.out.splitlines()[-1].startswith("Started 1 of 1 servers in ")
    (pid,) = (await pids(hub, "ann")).values()
    assert pid_alive(pid)

    r = await run_cli("server", "start", "--user", "ann", env=env)
    assert r.code == 0, r.err
    assert outcomes(r)["ann"][:2] == ["already", "running"]
    assert await pids(hub, "ann") == {"": pid}

    r = await run_cli("server", "start", "--user", "ann", "--server", "lab", env=env)
    assert r.code == 0, r.err
    assert outcomes(r)["ann/lab"][0] == "ready"
    assert set(await pids(hub, "ann")) == {"", "lab"}

    r = await run_cli("--json", "server", "stop", "--user", "ann", env=env)
    assert r.code == 0, r.err
    (result,) = r.json()
    assert (result["user"], result["server"], result["ok"], result["result"]) == (
        "ann",
        "",
        True,
        "stopped",
    )
    assert "ann" in r.err  # the progress line goes to stderr with --json
    assert not pid_alive(pid)
    assert set(await pids(hub, "ann")) == {"lab"}

    r = await run_cli("server", "stop", "--user", "ann", env=env)
    assert outcomes(r)["ann"][:2] == ["already", "stopped"]
    r = await run_cli("server", "stop", "--user", "ann", "--server", "lab", env=env)
    assert outcomes(r)["ann/lab"][0] == "stopped"
    assert await pids(hub, "ann") == {}


async def test_group_and_all_with_a_failure(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    for name in ("ann", "bob", "fail1", "dee", "eve"):
        await hub.add_user(name)
    body = {"users": ["ann", "bob", "fail1", "eve"]}
    assert (await hub.api("POST", "/groups/class", body)).status == 201
    assert (await hub.api("PATCH", "/users/eve", {"blocked": True})).status == 200
    env = env_for(hub)

    r = await run_cli("server", "start", "--group", "class", "--parallel", "2", env=env)
    assert r.code == 1
    lines = outcomes(r)
    assert lines["ann"][0] == lines["bob"][0] == "ready"
    assert lines["fail1"][0] == "failed"
    assert "this user's server is set to fail" in " ".join(lines["fail1"])
    assert lines["eve"][:2] == ["skipped", "0.0s"]
    assert "dee" not in lines
    summary = r.out.splitlines()[-1]
    assert summary.startswith("Started 2 of 3 servers in ")
    assert "(1 failed, 2 ready, 1 skipped)" in summary
    assert r.error == "hub-admin: error: 1 of 3 servers failed to start"
    for name in ("ann", "bob"):
        assert pid_alive((await pids(hub, name))[""])
    assert await pids(hub, "dee") == {}
    assert await pids(hub, "fail1") == {}

    running = [(await pids(hub, n))[""] for n in ("ann", "bob")]
    r = await run_cli("server", "stop", "--all", env=env)
    assert r.code == 0, r.err
    lines = outcomes(r)
    assert lines["ann"][0] == lines["bob"][0] == "stopped"
    assert lines["dee"][:2] == ["already", "stopped"]
    assert r.out.splitlines()[-1].startswith("Stopped 6 of 6 servers in ")
    assert not any(pid_alive(pid) for pid in running)


async def test_slow_starts_and_stops_are_followed(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        slow_spawn_timeout=0.05,
        slow_stop_timeout=0.05,
        config="c.ProcessSpawner.start_delay = 1\nc.ProcessSpawner.stop_delay = 1\n",
    )
    await hub.add_user("ann")
    await hub.add_user("bob")
    env = env_for(hub)
    r = await run_cli("server", "start", "--all", env=env)
    assert r.code == 0, r.err
    lines = outcomes(r)
    assert lines["ann"][0] == lines["bob"][0] == lines["admin"][0] == "ready"
    # the CLI came back when the servers were ready, not when the hub answered 202
    for name in ("ann", "bob"):
        model = (await hub.api("GET", f"/users/{name}")).json()
        assert model["servers"][""]["ready"] is True
    r = await run_cli("server", "stop", "--user", "ann", env=env)
    assert r.code == 0, r.err
    assert outcomes(r)["ann"][0] == "stopped"
    assert (await hub.api("GET", "/users/ann")).json()["servers"] == {}


async def test_a_start_past_its_timeout(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        slow_spawn_timeout=0.05,
        config="c.ProcessSpawner.start_delay = 60\n",
    )
    await hub.add_user("ann")
    r = await run_cli("server", "start", "--user", "ann", "--timeout", "1", env=env_for(hub))
    assert r.code == 1
    assert outcomes(r)["ann"][:2] == ["timed", "out"]
    assert "not done within 1 seconds" in r.out
    assert r.error == "hub-admin: error: 1 of 1 servers failed to start"


async def test_unreachable_hub_and_bad_token(hub: RunningHub) -> None:
    port = free_port()
    r = await run_cli(
        "--url", f"http://127.0.0.1:{port}/hub/", "--token", "t" * 20,
        "server", "start", "--all",
    )  # fmt: skip
    assert r.code == 1
    assert "cannot reach the hub at" in r.error
    assert "connection refused" in r.error
    r = await run_cli("--url", hub.url, "--token", "t" * 20, "server", "stop", "--user", "admin")
    assert r.code == 1
    assert "Missing or invalid credentials" in r.error
    assert "t" * 20 not in r.err


async def test_too_many_starts_are_retried() -> None:
    """A hub that answers 429 (too many starts at once) is asked again after Retry-After."""
    posts: list[str] = []

    class Users(web.RequestHandler):
        def get(self) -> None:
            self.finish(json.dumps({"name": "ann", "servers": {}}))

    class Start(web.RequestHandler):
        def post(self) -> None:
            posts.append(self.request.headers.get("Authorization", ""))
            if len(posts) == 1:
                self.set_status(429)
                self.set_header("Retry-After", "0")
                self.finish(json.dumps({"status": 429, "message": "Too many servers starting"}))
            else:
                self.set_status(201)
                self.finish()

    app = web.Application([(r"/hub/api/users/ann", Users), (r"/hub/api/users/ann/server", Start)])
    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server = HTTPServer(app)
    server.add_sockets(sockets)
    try:
        token = "t" * 20
        r = await run_cli(
            "--url", f"http://127.0.0.1:{port}/hub/", "--token", token,
            "server", "start", "--user", "ann",
        )  # fmt: skip
    finally:
        server.stop()
        await server.close_all_connections()
    assert r.code == 0, r.err
    assert outcomes(r)["ann"][0] == "ready"
    assert posts == [f"token {token}"] * 2
