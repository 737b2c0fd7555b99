"""The `atrium` command from the outside: first start, restart, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.procs import AtriumProcess


async def token_with_password(hub: AtriumProcess, user: str, password: str) -> int:
    r = await AsyncHTTPClient().fetch(
        HTTPRequest(
            f"{hub.url}api/users/{user}/tokens",
            method="POST",
            body=orjson.dumps({"auth": {"username": user, "password": password}}),
        ),
        raise_error=False,
    )
    return r.code


async def test_first_start_prints_login_once_and_restart_keeps_data(tmp_path: Path) -> None:
    hub = AtriumProcess(tmp_path, env={"ATRIUM_ADMIN_PASSWORD": ""})
    await hub.start()
    r = await AsyncHTTPClient().fetch(hub.url + "api/")
    assert orjson.loads(r.body)["version"]
    assert await hub.stop() == 0
    match = re.search(r"Password:\s+(\S+)\s+\(shown only this once\)", hub.stdout)
    assert match, hub.stdout
    password = match.group(1)
    assert "Admin user:  admin" in hub.stdout
    assert password not in hub.stderr  # printed for the person, never logged

    again = AtriumProcess(tmp_path, port=hub.port)
    await again.start()
    try:
        assert await token_with_password(again, "admin", password) == 201
        assert await token_with_password(again, "admin", password + "x") == 403
    finally:
        assert await again.stop() == 0
    assert "Password:" not in again.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signals_shut_down_gracefully(tmp_path: Path, sig: int) -> None:
    hub = AtriumProcess(tmp_path)
    await hub.start()
    assert await hub.stop(sig) == 0
    assert "Shutting down" in hub.stderr
    assert "Stopped" in hub.stderr
    assert "Traceback" not in hub.stderr


async def test_configured_admin_password_and_base_url(tmp_path: Path) -> None:
    (tmp_path / "atrium_config.py").write_text(
        "c.Hub.base_url = '/jupyter/'\nc.Hub.initial_admin_name = 'Teacher'\n"
        "c.Hub.initial_admin_password = 'from-config-file'\n"
    )
    hub = AtriumProcess(tmp_path, base_url="/jupyter/")
    await hub.start()
    root_url = f"http://127.0.0.1:{hub.port}/hub/"
    try:
        assert await token_with_password(hub, "teacher", "from-config-file") == 201
        r = await AsyncHTTPClient().fetch(root_url + "api/", raise_error=False)
        assert r.code == 404
        assert orjson.loads(r.body)["status"] == 404
    finally:
        await hub.stop()
    assert "Password:    the one you configured" in hub.stdout


async def test_config_roles_may_name_the_first_admin(tmp_path: Path) -> None:
    (tmp_path / "atrium_config.py").write_text(
        "c.Hub.load_roles = [{'name': 'auditor', 'scopes': ['read:hub'], 'users': ['admin']}]\n"
    )
    hub = AtriumProcess(tmp_path)
    await hub.start()
    assert await hub.stop() == 0
    assert "Traceback" not in hub.stderr


@pytest.mark.parametrize("cleanup", [False, True])
async def test_shutdown_leaves_user_servers_running_unless_configured(
    tmp_path: Path, cleanup: bool
) -> None:
    from tests.spawner import pid_alive

    (tmp_path / "atrium_config.py").write_text(
        "c.Hub.spawner_class = 'tests.spawner.ProcessSpawner'\n"
        "c.ProcessSpawner.kill_at_exit = False\n"
        f"c.Hub.cleanup_servers = {cleanup}\n"
    )
    repo = str(Path(__file__).parent.parent)
    hub = AtriumProcess(
        tmp_path, env={"PYTHONPATH": repo, "ATRIUM_ADMIN_PASSWORD": "shutdown-test-pw"}
    )
    await hub.start()
    client = AsyncHTTPClient()
    try:
        r = await client.fetch(
            HTTPRequest(
                f"{hub.url}api/users/admin/tokens",
                method="POST",
                body=orjson.dumps({"auth": {"username": "admin", "password": "shutdown-test-pw"}}),
            )
        )
        auth = {"Authorization": f"token {orjson.loads(r.body)['token']}"}
        r = await client.fetch(
            HTTPRequest(f"{hub.url}api/users/admin/server", method="POST", body=b"", headers=auth)
        )
        assert r.code == 201
        r = await client.fetch(f"{hub.url}api/users/admin", headers=auth)
        pid = orjson.loads(r.body)["servers"][""]["state"]["pid"]
        assert pid_alive(pid)
    finally:
        assert await hub.stop() == 0
    try:
        for _ in range(50):
            if pid_alive(pid) != (not cleanup):
                await asyncio.sleep(0.1)
        assert pid_alive(pid) is not cleanup
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)  # the server this test started
