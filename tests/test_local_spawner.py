"""The local process spawner (`spawners.local`): real processes, Unix users and cgroups.

Most tests run a small fake single-user server (`SERVER_SOURCE`, stdlib only) so
they do not depend on the real one: it answers `GET <prefix>api` and reports its
identity, environment and limits at `<prefix>info`, and on request allocates
memory, starts many processes, or starts "kernels" (a child in its process group
and one in a session of its own). It runs either by exec (`python -c`) or from
the template (`fake_server_main`, as `template_target`).

The start gate is tested with the hub side in a subprocess that is killed (or
stopped) in the middle of a spawn. System-users tests create real accounts
(`atrtest*`, removed afterwards) and need root, as in CI.
"""

from __future__ import annotations

import asyncio
import encodings.idna  # noqa: F401 (for fake_server_main)
import grp
import http.server  # noqa: F401 (for fake_server_main)
import json
import logging
import os
import pwd
import resource  # noqa: F401 (for fake_server_main)
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from spawners import local, procinfo
from spawners.base import SpawnError, parse_size
from spawners.local import LocalProcessSpawner
from spawners.template import running_templates, shutdown_templates
from spawners.userdirs import safe_component
from tests.conftest import missing_part
from tests.unixusers import UnixUsers
from tests.waits import eventually

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0

SERVER_SOURCE = r"""
import json, os, resource, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit


def main(argv):
    argv = list(argv or [])
    if "--exit" in argv:
        print("fake server: the configuration is broken", file=sys.stderr, flush=True)
        sys.exit(int(argv[argv.index("--exit") + 1]))
    if "--heavy" in argv:
        import jupyter_server.serverapp, jupyterlab.labapp  # what a real server imports
    if "--never" in argv:
        time.sleep(3600)
    url = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    prefix = url.path
    kids = []

    def info():
        fds = {}
        for fd in os.listdir("/proc/self/fd"):
            try:
                fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass
        return {
            "pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
            "groups": os.getgroups(), "cwd": os.getcwd(), "env": dict(os.environ),
            "pgid": os.getpgrp(), "sid": os.getsid(0), "fds": fds,
            "rlimit_data": resource.getrlimit(resource.RLIMIT_DATA),
            "rlimit_nproc": resource.getrlimit(resource.RLIMIT_NPROC),
        }

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if not parts.path.startswith(prefix):
                return self.reply(404, {})
            what = parts.path[len(prefix):]
            if what == "api":
                return self.reply(200, {"version": "fake"})
            if what == "info":
                return self.reply(200, info())
            if what == "alloc":
                try:
                    blocks = [b"x" * (1 << 20) for _ in range(int(query["mb"][0]))]
                except MemoryError:
                    return self.reply(507, {"error": "MemoryError"})
                return self.reply(200, {"allocated": len(blocks)})
            if what == "fork":
                procs, error = [], ""
                for _ in range(int(query["n"][0])):
                    try:
                        procs.append(subprocess.Popen(["sleep", "60"]))
                    except OSError as e:
                        error = str(e)
                        break
                for p in procs:
                    p.kill()
                for p in procs:
                    p.wait()
                return self.reply(200, {"started": len(procs), "error": error})
            if what == "kids":
                same = subprocess.Popen(["sleep", "600"])
                own = subprocess.Popen(["sleep", "600"], start_new_session=True)
                kids.extend([same, own])
                return self.reply(200, {"group": same.pid, "session": own.pid})
            return self.reply(404, {})

    HTTPServer((url.hostname, url.port), Handler).serve_forever()
"""


def fake_server_main(argv: list[str] | None = None) -> None:
    """The fake server as a template target. What it imports was imported with this
    module, before the template forked: a server running as a test user may not be
    able to read this Python's files (it may live under /root)."""
    namespace: dict[str, Any] = {}
    exec(compile(SERVER_SOURCE, "<fake server>", "exec"), namespace)  # noqa: S102
    namespace["main"](argv)


def heavy_preload() -> None:
    """What the template would preload for a real server."""
    import jupyter_server.serverapp  # noqa: F401
    import jupyterlab.labapp  # noqa: F401


def threaded_preload() -> None:
    """A preload that leaves a thread running: the template must refuse to fork."""
    import threading

    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()


def exec_cmd(python: str = sys.executable) -> list[str]:
    return [python, "-c", SERVER_SOURCE + "\nimport sys\nmain(sys.argv[1:])\n"]


def reachable_by_everyone(path: str) -> bool:
    real = os.path.realpath(path)
    parents = [real]
    while parents[-1] != "/":
        parents.append(os.path.dirname(parents[-1]))
    return all(os.stat(p).st_mode & 0o001 for p in parents)


def user_python() -> str:
    """A Python the test users may run (this one may live under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(candidate) and reachable_by_everyone(candidate):
            return candidate
    missing_part("a Python interpreter that ordinary users may run")
    raise AssertionError("unreachable")


TEMPLATE = {"template_target": "tests.test_local_spawner:fake_server_main", "template_preload": ""}


def prefix_of(user: str, server: str = "") -> str:
    return f"/user/{user}/{server}/" if server else f"/user/{user}/"


def contract_env(user: str, server: str = "") -> dict[str, str]:
    """What the hub sets in `spawner.env` before a start (a few of hub.spawnenv's)."""
    return {
        "JUPYTERHUB_SERVICE_PREFIX": prefix_of(user, server),
        "JUPYTERHUB_API_TOKEN": f"token-of-{user}",
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": server,
    }


@dataclass
class Spawners:
    """Makes spawners for a test; whatever they still run is killed afterwards."""

    tmp: Path
    made: list[LocalProcessSpawner] = field(default_factory=list)

    def __call__(
        self, user: str = "alice", server: str = "", via: str = "exec", **config: Any
    ) -> LocalProcessSpawner:
        settings: dict[str, Any] = {"users_root": str(self.tmp / "users"), "allow_root": True}
        settings.update({"cmd": exec_cmd()} if via == "exec" else TEMPLATE)
        settings.update(config)
        spawner = LocalProcessSpawner(
            user_name=user, server_name=server, config=Config({"LocalProcessSpawner": settings})
        )
        spawner.env = contract_env(user, server)
        self.made.append(spawner)
        return spawner

    def adopt(self, like: LocalProcessSpawner, state: dict[str, Any]) -> LocalProcessSpawner:
        """A fresh spawner (as a restarted hub makes) loaded with `state`."""
        fresh = LocalProcessSpawner(
            user_name=like.user_name, server_name=like.server_name, config=like.config
        )
        fresh.env = dict(like.env)
        fresh.load_state(state)
        self.made.append(fresh)
        return fresh


@pytest.fixture
async def spawners(tmp_path: Path) -> AsyncIterator[Spawners]:
    made = Spawners(tmp_path)
    yield made
    for spawner in made.made:
        if spawner.pid:
            await spawner.stop(now=True)
    await shutdown_templates()


async def get(spawner: LocalProcessSpawner, what: str) -> Any:
    url = f"http://127.0.0.1:{spawner.port}{spawner.env['JUPYTERHUB_SERVICE_PREFIX']}{what}"

    def fetch() -> Any:
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return {"status": e.code, **json.loads(e.read())}

    return await asyncio.to_thread(fetch)


def proc_status(pid: int) -> dict[str, list[str]]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


def started(pid: int) -> int:
    value = procinfo.start_time(pid)
    assert value is not None, f"process {pid} is not running"
    return value


def read(path: str | Path) -> str:
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def listing(path: str | Path) -> list[str]:
    return sorted(os.listdir(path))


def exists(path: str | Path) -> bool:
    return os.path.exists(path)


def realpath(path: str) -> str:
    return os.path.realpath(path)


def start_stranger() -> subprocess.Popen[bytes]:
    """A process that is not a server."""
    return subprocess.Popen(["sleep", "600"], start_new_session=True)


async def gone(pid: int, start: int, within: float = 15) -> None:
    async def check() -> bool:
        return not procinfo.is_running(pid, start)

    await eventually(check, timeout=within)


def mode_of(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- names, sizes and settings ----------------------------------------------------------


def test_safe_component_never_escapes() -> None:
    names = [".", "..", "../x", "a/b", ".hidden", "", "%2E", "alice@example.com", "ünï", "a" * 300]
    results = [safe_component(n) for n in names]
    assert len(set(results)) == len(names), results  # different names, different files
    for result in results:
        assert "/" not in result
        assert result not in ("", ".", "..")
        assert not result.startswith(".")
        assert len(result.encode()) <= 200
    assert safe_component("alice@example.com") == "alice@example.com"
    assert safe_component("jo.smith") == "jo.smith"


def test_sizes() -> None:
    assert parse_size("512M") == 512 * 1024**2
    assert parse_size("2G") == 2 * 1024**3
    assert parse_size("1.5G") == int(1.5 * 1024**3)
    assert parse_size(4096) == 4096
    assert parse_size("100k") == 100 * 1024
    assert parse_size(None) is None
    spawner = LocalProcessSpawner(
        user_name="a", config=Config({"LocalProcessSpawner": {"mem_limit": "2G"}})
    )
    assert spawner.mem_limit == 2 * 1024**3


@pytest.mark.parametrize(
    ("setting", "value", "fragments"),
    [
        ("mem_limit", "12Q", ["mem_limit", "12Q", "512M"]),
        ("mem_limit", "-5M", ["mem_limit", "512M"]),
        ("mem_limit", [1], ["mem_limit"]),
        ("cpu_limit", -1.0, ["cpu_limit", "positive"]),
        ("cpu_limit", 0.0, ["cpu_limit", "positive"]),
        ("proc_limit", 0, ["proc_limit", "at least 1"]),
        ("mode", "everyone-root", ["mode", "one-account", "system-users"]),
        ("min_uid", 0, ["min_uid", "root"]),
        ("template_target", "singleuser.app", ["template_target", "module:function"]),
    ],
)
def test_bad_settings_are_clear_errors(setting: str, value: Any, fragments: list[str]) -> None:
    with pytest.raises(TraitError) as info:
        LocalProcessSpawner(user_name="a", config=Config({"LocalProcessSpawner": {setting: value}}))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message


def test_system_users_mode_needs_a_root_hub() -> None:
    if not IS_ROOT:
        with pytest.raises(TraitError, match="needs the hub to run as root"):
            LocalProcessSpawner(user_name="a", mode="system-users")
        return
    # as root here: try it as an ordinary account (nobody), in a process of its own that
    # imports first (this Python may live where nobody cannot read)
    script = (
        "import os\n"
        "from spawners.local import LocalProcessSpawner\n"
        "os.setgroups([])\n"
        "os.setresgid(65534, 65534, 65534)\n"
        "os.setresuid(65534, 65534, 65534)\n"
        "LocalProcessSpawner(user_name='a', mode='system-users')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode != 0
    assert "mode 'system-users'" in result.stderr
    assert "needs the hub to run as root" in result.stderr
    assert "uid 65534" in result.stderr


async def test_root_hub_refuses_one_account_servers(spawners: Spawners) -> None:
    if not IS_ROOT:
        pytest.skip("only a hub running as root would run servers as root")
    spawner = spawners(allow_root=False)
    with pytest.raises(SpawnError, match="system-users"):
        await spawner.start()
    assert not spawner.pid


# --- one-account mode -------------------------------------------------------------------


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_one_account_layout_environment_and_progress(
    spawners: Spawners, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    monkeypatch.setenv("ATRIUM_TEST_SECRET", "hub-secret")
    monkeypatch.setenv("ATRIUM_DB_URL", "postgresql://hub:password@db/atrium")
    spawner = spawners("ann@example.com", via=via, environment={"EXTRA": "yes"})
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in spawner.progress():
            events.append(event)

    follower = asyncio.create_task(follow())
    url = await spawner.start()
    await follower
    assert url == f"http://127.0.0.1:{spawner.port}"
    assert spawner.via == via
    messages = [e["message"] for e in events]
    assert messages[0] == "preparing the user's directories"
    assert f"server process started (pid {spawner.pid})" in messages
    assert messages[-2:] == ["waiting for the server to answer", "server is ready"]
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)
    assert events[-1]["progress"] == 100

    user_dir = tmp_path / "users" / "ann@example.com"
    info = await get(spawner, "info")
    env = info["env"]
    assert env["HOME"] == env["JUPYTERHUB_ROOT_DIR"] == str(user_dir / "home") == info["cwd"]
    assert env["JUPYTER_RUNTIME_DIR"] == str(user_dir / "runtime")
    assert env["JUPYTER_DATA_DIR"] == str(user_dir / "data")
    assert env["ATRIUM_KERNEL_TRANSPORT"] == "ipc"
    prefix = prefix_of("ann@example.com")
    assert env["JUPYTERHUB_SERVICE_URL"] == f"http://127.0.0.1:{spawner.port}{prefix}"
    assert env["JUPYTERHUB_API_TOKEN"] == "token-of-ann@example.com"
    assert env["EXTRA"] == "yes"
    assert env["PATH"] == os.environ["PATH"]
    # nothing else of the hub's environment
    assert "ATRIUM_TEST_SECRET" not in env
    assert "ATRIUM_DB_URL" not in env
    expected = {
        *contract_env("x"),
        *(k for k in spawner.env_keep if k in os.environ),
        "EXTRA",
        "JUPYTERHUB_SERVICE_URL",
        "JUPYTERHUB_ROOT_DIR",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTER_DATA_DIR",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "ATRIUM_KERNEL_TRANSPORT",
        "ATRIUM_SERVER_ID",
        "PWD",  # set by the shell of the exec gate
    }
    assert set(env) <= expected, set(env) - expected
    assert "hub-secret" not in read(f"/proc/{spawner.pid}/environ")

    # its own session; no descriptor of the hub (gate, template socket) left open
    assert info["pid"] == info["pgid"] == info["sid"] == spawner.pid
    targets = info["fds"].values()
    assert not [t for t in targets if t.startswith("pipe:")], info["fds"]
    assert len([t for t in targets if t.startswith("socket:")]) <= 2, info["fds"]

    for name in ("home", "data", "runtime"):
        assert mode_of(user_dir / name) == 0o700
    log_file = user_dir / "runtime" / "atrium-server.log"
    assert mode_of(log_file) == 0o600
    assert spawner.get_state()["log"] == str(log_file)

    state = spawner.get_state()
    assert state["pid"] == spawner.pid
    assert state["start_time"] == started(spawner.pid)
    assert await spawner.poll() is None
    await spawner.stop()
    assert not procinfo.is_running(state["pid"], state["start_time"])
    status = await spawner.poll()
    assert status == -signal.SIGTERM


async def test_users_get_their_own_data_and_named_servers_their_own_runtime(
    spawners: Spawners, tmp_path: Path
) -> None:
    ann = spawners("ann")
    ann_lab = spawners("ann", server="lab")
    bob = spawners("bob")
    await asyncio.gather(ann.start(), ann_lab.start(), bob.start())
    envs = [(await get(s, "info"))["env"] for s in (ann, ann_lab, bob)]
    assert envs[0]["HOME"] == envs[1]["HOME"] != envs[2]["HOME"]
    assert envs[0]["JUPYTER_DATA_DIR"] == envs[1]["JUPYTER_DATA_DIR"] != envs[2]["JUPYTER_DATA_DIR"]
    runtimes = {e["JUPYTER_RUNTIME_DIR"] for e in envs}
    assert len(runtimes) == 3
    assert envs[1]["JUPYTER_RUNTIME_DIR"] == str(tmp_path / "users" / "ann" / "runtime-lab")
    assert mode_of(envs[1]["JUPYTER_RUNTIME_DIR"]) == 0o700


async def test_user_and_server_names_never_leave_the_root(
    spawners: Spawners, tmp_path: Path
) -> None:
    root = tmp_path / "users"
    outside_before = listing(tmp_path)
    spawner = spawners("../../escape", server="../up")
    spawner.env = contract_env("escape", "up")
    await spawner.start()
    env = (await get(spawner, "info"))["env"]
    for key in ("HOME", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR"):
        real = realpath(env[key])
        assert os.path.commonpath([real, str(root)]) == str(root), (key, real)
    assert listing(tmp_path) == sorted([*outside_before, "users"])
    assert listing(root) == [safe_component("../../escape")]


# --- stopping, polling, adopting --------------------------------------------------------


@pytest.mark.parametrize(("via", "now"), [("exec", False), ("template", False), ("exec", True)])
async def test_stop_ends_the_group_and_the_kernels(spawners: Spawners, via: str, now: bool) -> None:
    spawner = spawners(via=via)
    await spawner.start()
    kids = await get(spawner, "kids")
    watched = [(pid, started(pid)) for pid in (spawner.pid, kids["group"], kids["session"])]
    assert procinfo.read_stat(kids["session"]).session == kids["session"]  # type: ignore[union-attr]
    await spawner.stop(now=now)
    for pid, start in watched:  # stop() returns only once all are gone
        assert not procinfo.is_running(pid, start), pid
    assert await spawner.poll() is not None


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_poll_notices_a_dead_server_and_kills_what_it_left(
    spawners: Spawners, via: str
) -> None:
    spawner = spawners(via=via)
    await spawner.start()
    kids = await get(spawner, "kids")
    kernel = (kids["session"], started(kids["session"]))
    os.kill(spawner.pid, signal.SIGKILL)

    async def exited() -> bool:
        return await spawner.poll() is not None

    await eventually(exited)
    assert await spawner.poll() == -signal.SIGKILL
    assert not procinfo.is_running(*kernel)


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_a_fresh_spawner_adopts_a_live_server_and_sees_a_dead_one(
    spawners: Spawners, via: str
) -> None:
    spawner = spawners(via=via)
    await spawner.start()
    state = json.loads(json.dumps(spawner.get_state()))  # as stored in the database
    kids = await get(spawner, "kids")
    kernel = (kids["session"], started(kids["session"]))
    adopted = spawners.adopt(spawner, state)
    assert await adopted.poll() is None
    assert adopted.get_state() == state
    await adopted.stop()
    assert not procinfo.is_running(state["pid"], state["start_time"])
    assert not procinfo.is_running(*kernel)
    again = spawners.adopt(spawner, state)
    assert await again.poll() is not None
    await again.stop()  # nothing left to stop: returns at once


async def test_a_reused_pid_is_not_taken_for_the_server(spawners: Spawners) -> None:
    stranger = start_stranger()
    try:
        spawner = spawners()
        state = {
            "pid": stranger.pid,
            "pgid": stranger.pid,
            "start_time": started(stranger.pid) - 1,  # another process had this pid
            "boot_id": procinfo.boot_id(),
            "port": 1,
            "marker": secrets.token_hex(16),
            "uid": os.getuid(),
        }
        adopted = spawners.adopt(spawner, state)
        assert await adopted.poll() == 0
        await adopted.stop(now=True)
        assert stranger.poll() is None, "a stranger's process was signalled"
        other_boot = spawners.adopt(
            spawner, {**state, "start_time": started(stranger.pid), "boot_id": "another boot"}
        )
        assert await other_boot.poll() == 0
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


# --- the start gate: a hub killed in the middle of a spawn ------------------------------

HUB_SCRIPT = """
import asyncio, json, os, sys
sys.path.insert(0, sys.argv[1])
from traitlets.config import Config
from spawners.local import LocalProcessSpawner

config, state_file, phase = json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]

async def main():
    spawner = LocalProcessSpawner(
        user_name="alice", config=Config({"LocalProcessSpawner": config})
    )
    spawner.env = {"JUPYTERHUB_SERVICE_PREFIX": "/user/alice/"}

    async def save_state(state):
        with open(state_file + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(state_file + ".tmp", state_file)
        if phase == "before-go":
            await asyncio.sleep(3600)  # killed or stopped here, before "go"

    spawner.save_state = save_state
    await spawner.start()
    with open(state_file + ".ready", "w") as f:
        f.write("ready")
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@dataclass
class HubProcess:
    proc: subprocess.Popen[bytes]
    state_file: Path

    async def state(self) -> dict[str, Any]:
        async def saved() -> bool:
            assert self.proc.poll() is None, "the hub process died"
            return exists(self.state_file)

        await eventually(saved, timeout=60)
        state: dict[str, Any] = json.loads(self.state_file.read_text())
        return state

    async def ready(self) -> None:
        async def answered() -> bool:
            assert self.proc.poll() is None, "the hub process died"
            return exists(f"{self.state_file}.ready")

        await eventually(answered, timeout=60)

    def children(self) -> list[tuple[int, int]]:
        out = []
        for pid in procinfo.all_pids():
            info = procinfo.read_stat(pid)
            if info is not None and info.ppid == self.proc.pid:
                out.append((pid, info.start_time))
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[Callable[[str, str], HubProcess]]:
    started_hubs: list[HubProcess] = []

    def start(via: str, phase: str) -> HubProcess:
        config: dict[str, Any] = {"users_root": str(tmp_path / "users"), "allow_root": True}
        config.update({"cmd": exec_cmd()} if via == "exec" else TEMPLATE)
        state_file = tmp_path / f"state-{len(started_hubs)}.json"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                HUB_SCRIPT,
                str(ROOT),
                json.dumps(config),
                str(state_file),
                phase,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        hub = HubProcess(proc, state_file)
        started_hubs.append(hub)
        return hub

    yield start
    for hub in started_hubs:
        hub.kill()


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_hub_killed_before_go_leaves_no_process(
    hub_process: Callable[[str, str], HubProcess], via: str
) -> None:
    hub = hub_process(via, "before-go")
    state = await hub.state()
    server = (state["pid"], state["start_time"])
    assert procinfo.is_running(*server)  # forked, waiting at the gate
    helpers = hub.children()  # the server itself (exec) or the template
    assert helpers
    hub.kill()
    await gone(*server)
    for pid, start in helpers:
        await gone(pid, start)


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_state_saved_before_go_lets_a_new_hub_stop_the_server(
    spawners: Spawners, hub_process: Callable[[str, str], HubProcess], via: str
) -> None:
    hub = hub_process(via, "before-go")
    state = await hub.state()
    hub.proc.send_signal(signal.SIGSTOP)  # the old hub hangs (its gate stays open)
    adopted = spawners.adopt(spawners(via=via), state)
    assert await adopted.poll() is None
    await adopted.stop()
    assert not procinfo.is_running(state["pid"], state["start_time"])
    hub.kill()


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_hub_killed_after_go_leaves_a_server_a_new_hub_adopts(
    spawners: Spawners, hub_process: Callable[[str, str], HubProcess], via: str
) -> None:
    hub = hub_process(via, "after-go")
    await hub.ready()
    state = await hub.state()
    helpers = [(p, s) for p, s in hub.children() if p != state["pid"]]
    hub.kill()
    for pid, start in helpers:  # the template dies with its hub
        await gone(pid, start)
    adopted = spawners.adopt(spawners(via=via), state)
    assert await adopted.poll() is None
    assert (await get(adopted, "api")) == {"version": "fake"}  # still serving
    await adopted.stop()
    assert not procinfo.is_running(state["pid"], state["start_time"])


# --- failed and cancelled starts ----------------------------------------------------------


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_a_server_that_exits_at_once_fails_the_start_with_its_log(
    spawners: Spawners, via: str
) -> None:
    spawner = spawners(via=via, args=["--exit", "3"])
    with pytest.raises(SpawnError) as info:
        await spawner.start()
    message = str(info.value)
    assert "exited with status 3" in message
    assert "fake server: the configuration is broken" in message
    assert len(message) < 450  # fits the hub's error (500 characters with its prefix)
    assert await spawner.poll() == 3


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_a_port_taken_before_the_server_listens_is_replaced(
    spawners: Spawners,
    via: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another process binds the chosen port first (many servers starting at once): the
    server cannot listen and exits, and is started again on another port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        real_free_port = local._free_port
        handed: list[int] = []

        def first_taken(ip: str) -> int:
            port = taken_port if not handed else real_free_port(ip)
            handed.append(port)
            return port

        monkeypatch.setattr(local, "_free_port", first_taken)
        spawner = spawners(via=via)
        with caplog.at_level(logging.WARNING, logger="spawners.local"):
            url = await spawner.start()
        assert handed[0] == taken_port
        assert len(handed) == 2
        assert spawner.port == handed[1] != taken_port
        assert url.endswith(f":{handed[1]}")
        assert f"The port {taken_port} of" in caplog.text
        assert (await get(spawner, "info"))["pid"] == spawner.pid


async def test_a_server_whose_ports_are_always_taken_fails_and_leaves_nothing(
    spawners: Spawners, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        monkeypatch.setattr(local, "_free_port", lambda ip: taken_port)
        spawner = spawners()
        with pytest.raises(SpawnError, match="exited"):
            await spawner.start()
        assert await spawner.poll() is not None
        assert not spawner.server.remaining()


async def test_a_missing_command_is_a_clear_error(spawners: Spawners) -> None:
    spawner = spawners(cmd=["no-such-atrium-command"])
    with pytest.raises(SpawnError, match="'no-such-atrium-command' was not found"):
        await spawner.start()


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_a_cancelled_start_kills_the_server(spawners: Spawners, via: str) -> None:
    # never answers; the test cancels it long before it could time out, even on a busy machine
    spawner = spawners(via=via, args=["--never"], http_timeout=600)
    task = asyncio.create_task(spawner.start())

    async def running() -> bool:
        assert not task.done()
        return bool(spawner.pid) and spawner.start_time > 0

    await eventually(running, timeout=120)
    server = (spawner.pid, spawner.start_time)
    task.cancel()  # what the hub's start_timeout does
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not procinfo.is_running(*server)


# --- the template --------------------------------------------------------------------------


async def test_template_start_is_faster_than_exec(spawners: Spawners) -> None:
    """Measured, not asserted: a start from the template that preloaded the
    single-user stack versus an exec that imports it."""
    timings: dict[str, list[float]] = {"exec": [], "template": []}
    warm = spawners(
        "warm", via="template", template_preload="tests.test_local_spawner:heavy_preload"
    )
    await warm.start()  # starts the template (and its preload) once
    await warm.stop()
    for i in range(3):
        for via in ("exec", "template"):
            if via == "exec":
                spawner = spawners(f"u{i}", args=["--heavy"])
            else:
                spawner = spawners(
                    f"u{i}", via=via, template_preload="tests.test_local_spawner:heavy_preload"
                )
            began = time.perf_counter()
            await spawner.start()
            timings[via].append(time.perf_counter() - began)
            assert spawner.via == via
            await spawner.stop()
    exec_ms = sorted(timings["exec"])[1] * 1000
    template_ms = sorted(timings["template"])[1] * 1000
    print(
        f"\nstart to answering, median of 3 (jupyter_server + jupyterlab imported): "
        f"exec {exec_ms:.0f} ms, template {template_ms:.0f} ms"
    )


@pytest.fixture
def fake_singleuser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exec fallback runs `atrium-singleuser` from PATH: here, the fake server."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "atrium-singleuser"
    script.write_text(f"#!{sys.executable}\n{SERVER_SOURCE}\nimport sys\nmain(sys.argv[1:])\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.usefixtures("fake_singleuser")
async def test_template_death_falls_back_to_exec(
    spawners: Spawners, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "_warned", set())
    first = spawners("ann", via="template")
    await first.start()
    assert first.via == "template"
    [template] = running_templates()
    template_start = started(template.pid)
    os.kill(template.pid, signal.SIGKILL)
    await gone(template.pid, template_start)

    # the server it forked lives on, and is still watched and stopped by pid
    assert await first.poll() is None
    assert (await get(first, "api")) == {"version": "fake"}

    with caplog.at_level(logging.WARNING, logger="spawners.local"):
        second = spawners("bob", via="template")
        await second.start()
    assert second.via == "exec"
    assert "without the template" in caplog.text
    # the template was restarted in the background: later starts use it again
    third = spawners("cy", via="template")
    await third.start()
    assert third.via == "template"

    first_server = (first.pid, first.start_time)
    await first.stop()
    assert not procinfo.is_running(*first_server)
    assert await first.poll() is not None


@pytest.mark.usefixtures("fake_singleuser")
async def test_a_template_whose_preload_starts_threads_is_not_used(
    spawners: Spawners, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "_warned", set())
    spawner = spawners(via="template", template_preload="tests.test_local_spawner:threaded_preload")
    with caplog.at_level(logging.WARNING, logger="spawners.local"):
        await spawner.start()
    assert spawner.via == "exec"
    assert "the preload left 2 threads running" in caplog.text
    assert not running_templates()


# --- limits ----------------------------------------------------------------------------------


def require_cgroups(spawner: LocalProcessSpawner) -> None:
    if spawner.cgroups.not_enforced or not spawner.cgroups.paths:
        missing_part(f"writable cgroups ({spawner.cgroups.not_enforced})")


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_memory_limit_stops_a_server_that_allocates_beyond_it(
    spawners: Spawners, via: str
) -> None:
    spawner = spawners(via=via, mem_limit="100M")
    await spawner.start()
    require_cgroups(spawner)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        await get(spawner, "alloc?mb=400")

    async def exited() -> bool:
        return await spawner.poll() is not None

    await eventually(exited)
    assert await spawner.poll() == -signal.SIGKILL  # the OOM killer's
    paths = list(spawner.cgroups.paths)
    await spawner.stop()
    assert not any(exists(p) for p in paths)


async def test_memory_limit_without_cgroups_is_an_rlimit_and_a_warning(
    spawners: Spawners, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "_warned", set())
    spawner = spawners(mem_limit="300M", proc_limit=50, cpu_limit=1.0, use_cgroups=False)
    with caplog.at_level(logging.WARNING, logger="spawners.local"):
        await spawner.start()
    info = await get(spawner, "info")
    assert info["rlimit_data"] == [300 * 1024**2, 300 * 1024**2]
    assert (await get(spawner, "alloc?mb=600"))["status"] == 507  # MemoryError, still up
    assert (await get(spawner, "api")) == {"version": "fake"}
    assert "mem_limit is enforced per process (RLIMIT_DATA)" in caplog.text
    assert "cpu_limit is not enforced" in caplog.text
    assert "proc_limit is not enforced" in caplog.text  # one account: no RLIMIT_NPROC


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_proc_limit_stops_a_fork_bomb(spawners: Spawners, via: str) -> None:
    spawner = spawners(via=via, proc_limit=10)
    await spawner.start()
    require_cgroups(spawner)
    result = await get(spawner, "fork?n=50")
    assert result["started"] < 10, result
    assert result["error"], result
    assert (await get(spawner, "api")) == {"version": "fake"}  # the server itself is fine


async def test_cpu_limit_is_written_and_cgroups_are_removed(spawners: Spawners) -> None:
    spawner = spawners(cpu_limit=0.5, mem_limit="1G", proc_limit=100)
    await spawner.start()
    require_cgroups(spawner)
    paths = list(spawner.cgroups.paths)
    assert spawner.get_state()["cgroups"] == paths
    for path in paths:
        assert str(spawner.pid) in read(f"{path}/cgroup.procs").split()
    files = {name: p for p in paths for name in listing(p)}
    if "cpu.max" in files:  # cgroup v2
        assert read(f"{files['cpu.max']}/cpu.max").split() == ["50000", "100000"]
    else:
        cpu_dir = files["cpu.cfs_quota_us"]
        period = int(read(f"{cpu_dir}/cpu.cfs_period_us"))
        assert int(read(f"{cpu_dir}/cpu.cfs_quota_us")) == period // 2
    await spawner.stop()
    assert not any(exists(p) for p in paths)
    assert spawner.get_state() == spawner.get_state()  # still readable after stop


# --- system-users mode ----------------------------------------------------------------------


def system(
    spawners: Spawners, user: str, run_root: Path, via: str = "exec", **config: Any
) -> LocalProcessSpawner:
    if via == "exec":
        config.setdefault("cmd", exec_cmd(user_python()))
    return spawners(user, via=via, mode="system-users", runtime_root=str(run_root), **config)


@pytest.mark.parametrize("via", ["exec", "template"])
async def test_system_users_servers_run_as_their_accounts(
    unix_users: UnixUsers,
    spawners: Spawners,
    run_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    via: str,
) -> None:
    monkeypatch.setenv("ATRIUM_TEST_SECRET", "hub-secret")
    group = unix_users.group()
    account = unix_users.user(group)
    spawner = system(spawners, account.pw_name, run_root, via=via)
    await spawner.start()
    status = proc_status(spawner.pid)
    uid, gid = str(account.pw_uid), str(account.pw_gid)
    assert status["Uid"] == [uid] * 4
    assert status["Gid"] == [gid] * 4
    groups = {int(g) for g in status["Groups"]}
    assert groups == set(os.getgrouplist(account.pw_name, account.pw_gid))
    assert grp.getgrnam(group).gr_gid in groups
    assert 0 not in groups
    assert os.readlink(f"/proc/{spawner.pid}/cwd") == account.pw_dir

    info = await get(spawner, "info")
    env = info["env"]
    assert env["HOME"] == env["JUPYTERHUB_ROOT_DIR"] == account.pw_dir
    assert env["USER"] == env["LOGNAME"] == account.pw_name
    assert env["SHELL"] == account.pw_shell
    assert env["JUPYTER_DATA_DIR"] == os.path.join(account.pw_dir, ".local/share/jupyter")
    assert "ATRIUM_TEST_SECRET" not in env
    runtime = Path(env["JUPYTER_RUNTIME_DIR"])
    assert runtime == run_root / account.pw_name / "runtime"
    for path, mode in (
        (runtime.parent, 0o700),
        (runtime, 0o700),
        (runtime / "atrium-server.log", 0o600),
    ):
        info_stat = os.stat(path)
        assert (info_stat.st_uid, info_stat.st_gid) == (account.pw_uid, account.pw_gid), path
        assert mode_of(path) == mode, path
    assert mode_of(run_root) == 0o711

    kids = await get(spawner, "kids")
    kernel = (kids["session"], started(kids["session"]))
    await spawner.stop()
    assert not procinfo.is_running(*kernel)


async def test_system_users_refuses_root_system_and_missing_accounts(
    spawners: Spawners, run_root: Path
) -> None:
    if not IS_ROOT:
        missing_part("root (system-users mode)")
    with pytest.raises(SpawnError, match=r"root \(uid 0\)"):
        await system(spawners, "root", run_root).start()
    with pytest.raises(SpawnError, match=r"below LocalProcessSpawner\.min_uid"):
        await system(spawners, "daemon", run_root).start()
    with pytest.raises(SpawnError, match="no Unix account named 'atrtestnobody'"):
        await system(spawners, "atrtestnobody", run_root).start()
    with pytest.raises(SpawnError, match="cannot be a Unix account name"):
        await system(spawners, "ann@example.com", run_root, create_system_users=True).start()
    assert not [s for s in spawners.made if s.pid]


async def test_system_users_can_create_missing_accounts(
    unix_users: UnixUsers, spawners: Spawners, run_root: Path
) -> None:
    name = f"atrtest{secrets.token_hex(4)}"
    unix_users.users.append(name)  # removed afterwards
    spawner = system(spawners, name, run_root, create_system_users=True)
    await spawner.start()
    account = pwd.getpwnam(name)
    assert proc_status(spawner.pid)["Uid"][0] == str(account.pw_uid)
    assert exists(account.pw_dir)


async def test_system_users_proc_limit_without_cgroups_is_rlimit_nproc(
    unix_users: UnixUsers, spawners: Spawners, run_root: Path
) -> None:
    account = unix_users.user()
    spawner = system(spawners, account.pw_name, run_root, proc_limit=10, use_cgroups=False)
    await spawner.start()
    info = await get(spawner, "info")
    assert info["rlimit_nproc"] == [10, 10]
    result = await get(spawner, "fork?n=50")
    assert result["started"] < 10, result
