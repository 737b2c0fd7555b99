"""Servers run as their users' Unix accounts (system-users mode), end to end.

A root hub with the local spawner starts `atrium-singleuser` as each person's
own account (from /opt/atrium-test-sysusers, a Python every account can read;
scripts/test.sh installs it). The kernel runs as that account; its owner can
attach a second client from a shell (`jupyter console --existing`, as from a
terminal in their server) and see the kernel's state; another account can
neither read the kernel's connection file nor connect to its sockets.
"""

from __future__ import annotations

import json
import pwd
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.conftest import HubFactory, behind_atrium_proxy, missing_part
from tests.kernelws import KernelSocket
from tests.test_singleuser import fetch, new_kernel, start_server
from tests.unixusers import UnixUsers

SYSVENV = Path("/opt/atrium-test-sysusers")


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


@pytest.fixture
def sysvenv() -> Path:
    if not (SYSVENV / "bin" / "atrium-singleuser").exists():
        missing_part(f"Atrium in {SYSVENV} (scripts/test.sh installs it)")
    return SYSVENV


def as_user(user: pwd.struct_passwd, argv: list[str], stdin: str = "", **env: str) -> str:
    """Run a command as `user` with a clean environment; its stdout and stderr."""
    base = {"HOME": user.pw_dir, "PATH": "/usr/bin:/bin", "USER": user.pw_name, **env}
    result = subprocess.run(
        [
            "runuser",
            "-u",
            user.pw_name,
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in base.items()),
            *argv,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout + result.stderr


def connection_file(root: Path, kernel: str) -> Path:
    [found] = list(root.rglob(f"kernel-{kernel}.json"))
    return found


async def test_a_kernel_is_its_owners_alone(
    unix_users: UnixUsers, hub_factory: HubFactory, tmp_path: Path, run_root: Path, sysvenv: Path
) -> None:
    ann, bo = unix_users.user(), unix_users.user()
    config = (
        "c.LocalProcessSpawner.mode = 'system-users'\n"
        f"c.LocalProcessSpawner.runtime_root = {str(run_root)!r}\n"
        f"c.LocalProcessSpawner.cmd = [{str(sysvenv / 'bin' / 'atrium-singleuser')!r}]\n"
        "c.LocalProcessSpawner.start_timeout = 90\n"
    )
    hub = await hub_factory(
        **behind_atrium_proxy(
            tmp_path, spawner_class="spawners.local.LocalProcessSpawner", slow_spawn_timeout=90
        ),
        config=config,
    )
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    for user in (ann, bo):
        await hub.add_user(user.pw_name)
        await start_server(hub, user.pw_name)
    token = await hub.token_for(ann.pw_name)
    kernel = await new_kernel(public, ann.pw_name, token)
    ws = await KernelSocket.open(
        f"ws://127.0.0.1:{hub.app.settings.port}/user/{ann.pw_name}/api/kernels/{kernel}/channels",
        token,
    )
    try:
        _, out = await ws.execute("import os\nsecret = 'a-only-41'\nprint(os.getuid())")
    finally:
        ws.close()
    assert out.strip() == str(ann.pw_uid)  # the kernel runs as ann's account

    # the server's files: ann's home; bo's token still gets nowhere
    r = await fetch(f"{public}/user/{ann.pw_name}/api/contents", await hub.token_for(bo.pw_name))
    assert r.code == 403
    r = await fetch(f"{public}/user/{ann.pw_name}/api/contents", token)
    assert r.code == 200
    assert orjson.loads(r.body)["path"] == ""

    connection = connection_file(run_root, kernel)
    runtime = connection.parent
    assert runtime.stat().st_uid == ann.pw_uid
    assert runtime.stat().st_mode & 0o777 == 0o700
    info = json.loads(connection.read_text())
    assert info["transport"] == "ipc"
    socket_path = f"{info['ip']}-{info['shell_port']}"
    assert Path(socket_path).parent.stat().st_mode & 0o777 == 0o700
    assert Path(socket_path).parent.stat().st_uid == ann.pw_uid

    console = [str(sysvenv / "bin" / "jupyter-console"), "--existing", connection.name]
    console += ["--simple-prompt"]
    env = {"JUPYTER_RUNTIME_DIR": str(runtime)}
    # ann, from a shell of her own: a second client on the same kernel, same state
    seen = as_user(ann, console, "print(secret)\n", **env)
    assert "a-only-41" in seen, seen
    # bo: not the connection file, not the sockets
    seen = as_user(bo, console, "print(secret)\n", **env)
    assert "a-only-41" not in seen
    assert "Permission denied" in seen or "No such file" in seen, seen
    probe = (
        "import socket, sys\n"
        "for attempt in (lambda: open(sys.argv[1]).read(), "
        "lambda: socket.socket(socket.AF_UNIX).connect(sys.argv[2])):\n"
        "    try:\n"
        "        attempt()\n"
        "        print('allowed')\n"
        "    except PermissionError:\n"
        "        print('refused')\n"
    )
    python = str(sysvenv / "bin" / "python")
    seen = as_user(bo, [python, "-c", probe, str(connection), socket_path])
    assert seen.split() == ["refused", "refused"], seen
    seen = as_user(ann, [python, "-c", probe, str(connection), socket_path])
    assert seen.split() == ["allowed", "allowed"], seen
