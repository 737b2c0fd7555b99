"""The progress API: `GET /hub/api/users/{name}/server[s/{server}]/progress`.

Real HTTP against a hub with the process spawner. The servers here wait for a
file to appear before they listen (or exit with status 3 when told to), so each
test decides when a start ends: watchers, including a late one, see every event
from "Server requested" to the ready or failed event.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from hub.api.servers import ProgressAPIHandler
from tests.conftest import HubFactory, RunningHub, expect_error
from tests.spawner import pid_alive, started_pids
from tests.waits import eventually

# listens once `<dir>/go` exists; exits with status 3 once `<dir>/fail` does
# (no braces: ProcessSpawner formats each part of the command with the port)
GATED_SERVER = """
import functools, http.server, os, sys, time
gate = sys.argv[2]
while not os.path.exists(os.path.join(gate, 'go')):
    if os.path.exists(os.path.join(gate, 'fail')):
        raise SystemExit(3)
    time.sleep(0.02)
class Quiet(http.server.SimpleHTTPRequestHandler):
    log_message = lambda *args: None
handler = functools.partial(Quiet, directory=gate)
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler).serve_forever()
"""


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    path = tmp_path / "gate"
    path.mkdir()
    return path


async def gated_hub(hub_factory: HubFactory, gate: Path, **settings: Any) -> RunningHub:
    cmd = [sys.executable, "-c", GATED_SERVER, "{port}", str(gate)]
    hub = await hub_factory(
        spawner_class="tests.spawner.ProcessSpawner",
        slow_spawn_timeout=0.1,
        config=f"c.ProcessSpawner.cmd = {cmd!r}\nc.ProcessSpawner.progress_interval = 0.1\n",
        **settings,
    )
    await hub.add_user("ann")
    await hub.add_user("bob")
    return hub


@dataclass
class Watcher:
    """One client of the event stream, parsing `data:` events and `:` comments."""

    events: list[dict[str, Any]] = field(default_factory=list)
    comments: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    code: int = 0
    _buffer: bytes = b""

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    self.events.append(orjson.loads(line[len(b"data: ") :]))
                elif line.startswith(b":"):
                    self.comments += 1

    def header(self, line: str) -> None:
        name, _, value = line.partition(":")
        if value:
            self.headers[name.strip().lower()] = value.strip()

    def messages(self) -> list[str]:
        return [e["message"] for e in self.events]


async def follow(hub: RunningHub, path: str, watcher: Watcher, token: str | None = None) -> None:
    """Read the stream at `/hub/api<path>` into `watcher` until the hub ends it."""
    r = await AsyncHTTPClient().fetch(
        HTTPRequest(
            hub.url + "api" + path,
            headers={"Authorization": f"token {token or hub.admin_token}"},
            streaming_callback=watcher.feed,
            header_callback=watcher.header,
            request_timeout=60,
        ),
        raise_error=False,
    )
    watcher.code = r.code


def watch(hub: RunningHub, path: str, token: str | None = None) -> tuple[Watcher, Any]:
    watcher = Watcher()
    return watcher, asyncio.ensure_future(follow(hub, path, watcher, token))


async def has_events(watcher: Watcher, count: int) -> None:
    async def enough() -> bool:
        return len(watcher.events) >= count

    await eventually(enough)


@pytest.fixture
def keepalive_often() -> Iterator[None]:
    interval = ProgressAPIHandler.keepalive_interval
    ProgressAPIHandler.keepalive_interval = 0.05
    yield
    ProgressAPIHandler.keepalive_interval = interval


async def test_watchers_early_and_late_see_every_event(
    hub_factory: HubFactory, gate: Path, keepalive_often: None
) -> None:
    hub = await gated_hub(hub_factory, gate)
    assert (await hub.api("POST", "/users/ann/server")).status == 202
    first, first_done = watch(hub, "/users/ann/server/progress")
    second, second_done = watch(hub, "/users/ann/server/progress", await hub.token_for("ann"))
    await has_events(first, 4)  # requested, spawning, process started, waiting...
    await has_events(second, 4)
    # a watcher that connects late gets the events it missed, from the first
    late, late_done = watch(hub, "/users/ann/server/progress")
    await has_events(late, len(first.events))
    assert late.events[: len(first.events)] == first.events[: len(first.events)]
    assert hub.state.orchestrator.progress  # the start's log, while it runs

    async def kept_alive() -> bool:
        return first.comments > 0  # keepalive comments while nothing happens

    await eventually(kept_alive)
    (gate / "go").touch()
    await asyncio.gather(first_done, second_done, late_done)
    for watcher in (first, second, late):
        assert watcher.code == 200
        assert watcher.headers["content-type"] == "text/event-stream"
        assert "no-cache" in watcher.headers["cache-control"]
        assert watcher.events == first.events
    messages = first.messages()
    assert messages[:2] == ["Server requested", "Spawning server..."]
    assert messages[2].startswith("Server process ")  # the spawner's own events
    assert messages[3].startswith("Waiting for the server to answer")
    assert first.comments > 0  # keepalive comments while nothing happened
    progress = [e["progress"] for e in first.events]
    assert progress[0] == 0
    assert all(0 <= p <= 100 for p in progress)
    assert first.events[-1] == {
        "progress": 100,
        "ready": True,
        "message": "Server ready at /user/ann/",
        "html_message": 'Server ready at <a href="/user/ann/">/user/ann/</a>',
        "url": "/user/ann/",
    }
    assert not any(e.get("ready") or e.get("failed") for e in first.events[:-1])
    # the start is over: its log is gone, and the ready server says so at once
    assert hub.state.orchestrator.progress == {}
    r = await hub.api("GET", "/users/ann/server/progress")
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/event-stream"
    assert r.body == b"data: " + orjson.dumps(first.events[-1]) + b"\n\n"


async def test_a_named_server(hub_factory: HubFactory, gate: Path) -> None:
    hub = await gated_hub(hub_factory, gate, allow_named_servers=True)
    assert (await hub.api("POST", "/users/ann/servers/lab")).status == 202
    model = (await hub.api("GET", "/users/ann")).json()
    progress_url = model["servers"]["lab"]["progress_url"]
    assert progress_url == "/hub/api/users/ann/servers/lab/progress"
    watcher, done = watch(hub, progress_url[len("/hub/api") :])
    await has_events(watcher, 2)
    (gate / "go").touch()
    await done
    assert watcher.events[-1]["url"] == "/user/ann/lab/"
    # the default server is another one, and is not starting
    expect_error(await hub.api("GET", "/users/ann/server/progress"), 400, "not starting")


async def test_a_failed_start_says_why(hub_factory: HubFactory, gate: Path) -> None:
    hub = await gated_hub(hub_factory, gate)
    assert (await hub.api("POST", "/users/ann/server")).status == 202
    pid = started_pids[-1]
    watcher, done = watch(hub, "/users/ann/server/progress")
    await has_events(watcher, 3)
    (gate / "fail").touch()
    await done
    failed = watcher.events[-1]
    assert failed == {
        "progress": 100,
        "failed": True,
        "message": "The server failed to start: the server process exited with status 3",
    }
    assert not pid_alive(pid)
    assert hub.state.orchestrator.progress == {}
    # asked afterwards: the same failure, until the next start
    r = await hub.api("GET", "/users/ann/server/progress")
    assert r.body == b"data: " + orjson.dumps(failed) + b"\n\n"


async def test_who_may_watch_what(hub_factory: HubFactory, gate: Path) -> None:
    hub = await gated_hub(hub_factory, gate, allow_named_servers=True)
    ann = await hub.token_for("ann")
    assert (await hub.api("POST", "/users/bob/server")).status == 202
    # bob's start: not visible to ann, whether or not bob exists
    for path in ("/users/bob/server/progress", "/users/nobody/server/progress"):
        expect_error(await hub.api("GET", path, token=ann), 404)
    expect_error(await hub.api("GET", "/users/nobody/server/progress"), 404, "No such user")
    # a token that may not read servers at all
    names_only = await hub.token_for("ann", scopes=["users:activity!user=ann"])
    expect_error(
        await hub.api("GET", "/users/ann/server/progress", token=names_only), 403, "read:servers"
    )
    # not starting: 400, as on JupyterHub; a named server that does not exist: 404
    expect_error(await hub.api("GET", "/users/ann/server/progress", token=ann), 400, "not starting")
    expect_error(await hub.api("GET", "/users/ann/servers/nosuch/progress"), 404, "no server named")
    expect_error(await hub.api("GET", "/users/ann/servers/%3Cx%3E/progress"), 404, "no server")
    expect_error(await hub.api("POST", "/users/ann/server/progress"), 405)
    (gate / "go").touch()

    async def bob_ready() -> bool:
        r = await hub.api("GET", "/users/bob")
        return bool(r.json()["servers"].get("", {}).get("ready"))

    await eventually(bob_ready)
    assert (await hub.api("DELETE", "/users/bob/server")).status == 204
    # stopped cleanly: nothing to follow
    expect_error(await hub.api("GET", "/users/bob/server/progress"), 400, "not starting")


async def test_a_watcher_that_goes_away_leaves_nothing_behind(
    hub_factory: HubFactory, gate: Path, keepalive_often: None
) -> None:
    hub = await gated_hub(hub_factory, gate)
    assert (await hub.api("POST", "/users/ann/server")).status == 202
    events = hub.state.orchestrator.progress[next(iter(hub.state.orchestrator.progress))]
    port = int(hub.url.split(":")[2].split("/")[0])
    before = asyncio.all_tasks()
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /hub/api/users/ann/server/progress HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: token " + hub.admin_token.encode() + b"\r\n\r\n"
        )
        head = await reader.readuntil(b"data: ")
        assert head.startswith(b"HTTP/1.1 200")
        # the client goes away in the middle of the stream
        writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        writer.close()

    async def let_go() -> bool:
        new = asyncio.all_tasks() - before - {asyncio.current_task()}
        return not events.watchers and not new

    await eventually(let_go)
    (gate / "go").touch()

    async def ready() -> bool:
        return not hub.state.orchestrator.progress

    await eventually(ready)
