"""`atrium-singleuser` under a real hub and the built-in proxy.

Real servers (jupyter_server + JupyterLab), real ipykernel kernels, real
websockets: API tokens and browser logins checked against the hub, users kept
off each other's servers, kernels and files, activity reported, kernels on
Unix sockets in a 0700 runtime directory, notebook trust kept per user, and
the contract checked at start-up.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from tests.browser import browser_page
from tests.conftest import HubFactory, RunningHub, behind_atrium_proxy
from tests.kernelws import KernelSocket
from tests.test_pages import PASSWORD
from tests.waits import eventually


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


async def start_hub(
    hub_factory: HubFactory, tmp_path: Path, config: str = "", **env: str
) -> tuple[RunningHub, str]:
    config += (
        f"c.TreeSpawner.users_root = {str(tmp_path / 'users')!r}\n"
        "c.TreeSpawner.start_timeout = 60\n"
        f"c.TreeSpawner.extra_env = {env!r}\n"
    )
    hub = await hub_factory(
        **behind_atrium_proxy(
            tmp_path, slow_spawn_timeout=60, spawner_class="tests.singleuser_spawner.TreeSpawner"
        ),
        config=config,
    )
    return hub, f"http://127.0.0.1:{hub.app.settings.port}"


async def fetch(url: str, token: str | None = None, **kw: Any) -> Any:
    headers = dict(kw.pop("headers", {}))
    if token:
        headers["Authorization"] = f"token {token}"
    return await AsyncHTTPClient().fetch(HTTPRequest(url, headers=headers, **kw), raise_error=False)


async def test_tokens_open_only_their_owners_server(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub, public = await start_hub(hub_factory, tmp_path)
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("bo", password=PASSWORD)
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    ann = await hub.token_for("ann")
    bo = await hub.token_for("bo")
    r = await fetch(f"{public}/user/ann/api/contents", ann)
    assert r.code == 200, r.body[:300]
    r = await fetch(f"{public}/user/ann/api/contents", bo)
    assert r.code == 403
    r = await fetch(f"{public}/user/ann/api/contents")
    assert r.code == 403


async def start_server(hub: RunningHub, name: str) -> None:
    r = await hub.api("POST", f"/users/{name}/server")
    assert r.status == 201, r.body[:300]


async def new_kernel(public: str, name: str, token: str) -> str:
    r = await fetch(f"{public}/user/{name}/api/kernels", token, method="POST", body=b"{}")
    assert r.code == 201, r.body[:300]
    return str(orjson.loads(r.body)["id"])


ECHO_TARGET = """
from comm import get_comm_manager
def _echo_target(comm, msg):
    @comm.on_msg
    def _(m):
        comm.send({"echo": m["content"]["data"]})
get_comm_manager().register_target("echo", _echo_target)
"""


@pytest.mark.parametrize("v1", [True, False], ids=["v1-protocol", "json-protocol"])
async def test_kernel_websocket_through_the_proxy(
    hub_factory: HubFactory, tmp_path: Path, v1: bool
) -> None:
    hub, public = await start_hub(hub_factory, tmp_path)
    await hub.add_user("ann")
    started = (await hub.api("GET", "/users/ann")).json()["last_activity"]
    await start_server(hub, "ann")
    token = await hub.token_for("ann")
    kernel = await new_kernel(public, "ann", token)
    ws_url = f"ws://127.0.0.1:{hub.app.settings.port}/user/ann/api/kernels/{kernel}/channels"
    sock = await KernelSocket.open(ws_url, token, v1=v1)
    try:
        reply, out = await sock.execute("print(6*7)")
        assert reply["content"]["status"] == "ok"
        assert out == "42\n"
        # a comm (what widgets use) both ways
        reply, _ = await sock.execute(ECHO_TARGET)
        assert reply["content"]["status"] == "ok"
        comm_id = uuid.uuid4().hex
        await sock.send(
            "shell",
            sock.message("comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {}}),
        )
        await sock.send("shell", sock.message("comm_msg", {"comm_id": comm_id, "data": {"x": 7}}))
        while True:
            got = await sock.receive()
            if got["header"]["msg_type"] == "comm_msg" and got["channel"] == "iopub":
                assert got["content"]["comm_id"] == comm_id
                assert got["content"]["data"] == {"echo": {"x": 7}}
                break
    finally:
        sock.close()

    # the server reported the kernel's activity to the hub (every second here)
    async def reported() -> bool:
        model = (await hub.api("GET", "/users/ann")).json()
        last = model["servers"][""]["last_activity"]
        return bool(last and (started is None or last > started))

    await eventually(reported, timeout=20)


async def test_other_users_are_kept_off_a_server(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub, public = await start_hub(hub_factory, tmp_path)
    for name in ("ann", "bo"):
        await hub.add_user(name)
    await start_server(hub, "ann")
    await start_server(hub, "bo")
    ann = await hub.token_for("ann")
    bo = await hub.token_for("bo")
    kernel = await new_kernel(public, "ann", ann)
    r = await fetch(
        f"{public}/user/ann/api/sessions",
        ann,
        method="POST",
        body=orjson.dumps({"path": "a.ipynb", "type": "notebook", "kernel": {"id": kernel}}),
    )
    assert r.code == 201, r.body[:300]
    base = f"{public}/user/ann/api"
    # bo's token, a token with no access to servers, and no token at all
    narrow = await hub.token_for("ann", scopes=["read:users:name!user=ann"])
    for token in (bo, narrow, None):
        for path in (
            "/kernels",
            f"/kernels/{kernel}",
            "/sessions",
            "/contents",
            "/contents/a.ipynb",
        ):
            r = await fetch(base + path, token)
            assert r.code == 403, (token, path, r.code)
        r = await fetch(base + "/kernels", token, method="POST", body=b"{}")
        assert r.code == 403
        r = await fetch(f"{base}/kernels/{kernel}", token, method="DELETE")
        assert r.code == 403
        ws_url = f"ws://127.0.0.1:{hub.app.settings.port}/user/ann/api/kernels/{kernel}/channels"
        with pytest.raises(HTTPClientError) as refused:
            await KernelSocket.open(ws_url, token)
        assert refused.value.code == 403
    # ann's kernel and session are still there, and bo's server lists none of them
    r = await fetch(f"{base}/kernels", ann)
    assert [k["id"] for k in orjson.loads(r.body)] == [kernel]
    r = await fetch(f"{public}/user/bo/api/kernels", bo)
    assert orjson.loads(r.body) == []
    r = await fetch(f"{public}/user/bo/api/sessions", bo)
    assert orjson.loads(r.body) == []
    # an admin's token opens any server (admins hold access:servers)
    r = await fetch(f"{base}/kernels", hub.admin_token)
    assert r.code == 200


async def test_kernels_listen_on_unix_sockets_in_a_private_runtime_dir(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub, public = await start_hub(hub_factory, tmp_path)
    await hub.add_user("ann")
    await start_server(hub, "ann")
    token = await hub.token_for("ann")
    kernel = await new_kernel(public, "ann", token)
    runtime = tmp_path / "users" / "ann" / "runtime"
    assert runtime.stat().st_mode & 0o777 == 0o700  # (jupyter_core adds the sticky bit)
    connection = runtime / f"kernel-{kernel}.json"
    assert stat.S_IMODE(connection.stat().st_mode) == 0o600
    info = json.loads(connection.read_text())
    assert info["transport"] == "ipc"
    # the sockets sit in the runtime dir, or (when its path is too long for a socket
    # address, as under pytest's tmp_path) in a short private directory
    socket_dir = Path(info["ip"]).parent
    assert socket_dir.stat().st_mode & 0o777 == 0o700
    assert socket_dir.stat().st_uid == os.getuid()

    def sockets() -> list[Path]:
        return [p for p in socket_dir.iterdir() if p.is_socket()]

    async def all_bound() -> bool:  # shell, iopub, stdin, control, heartbeat
        return len(sockets()) >= 5

    await eventually(all_bound, timeout=30)
    assert all(p.name.startswith(Path(info["ip"]).name) for p in sockets())


def notebook_with_html_output() -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 1,
                "id": "c1",
                "metadata": {"trusted": True},
                "outputs": [
                    {
                        "output_type": "display_data",
                        "data": {"text/html": ["<script>alert(1)</script>"]},
                        "metadata": {},
                    }
                ],
                "source": ["show()"],
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


async def test_notebook_trust_is_per_user(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub, public = await start_hub(hub_factory, tmp_path)
    for name in ("ann", "bo"):
        await hub.add_user(name)
        await start_server(hub, name)
    ann = await hub.token_for("ann")
    bo = await hub.token_for("bo")
    body = orjson.dumps({"type": "notebook", "content": notebook_with_html_output()})
    r = await fetch(f"{public}/user/ann/api/contents/t.ipynb", ann, method="PUT", body=body)
    assert r.code in (200, 201), r.body[:300]
    r = await fetch(f"{public}/user/ann/api/contents/t.ipynb", ann)
    cell = orjson.loads(r.body)["content"]["cells"][0]
    assert cell["metadata"]["trusted"] is True  # ann signed it when she saved it
    # the same file in bo's home is not trusted by bo's server
    users = tmp_path / "users"
    (users / "bo" / "home" / "t.ipynb").write_bytes(
        (users / "ann" / "home" / "t.ipynb").read_bytes()
    )
    r = await fetch(f"{public}/user/bo/api/contents/t.ipynb", bo)
    cell = orjson.loads(r.body)["content"]["cells"][0]
    assert cell["metadata"]["trusted"] is False
    # each has their own signature database and secret
    for name in ("ann", "bo"):
        data = users / name / "data"
        assert (data / "nbsignatures.db").exists()
        assert (data / "notebook_secret").exists()
    assert (users / "ann" / "data" / "notebook_secret").read_bytes() != (
        users / "bo" / "data" / "notebook_secret"
    ).read_bytes()


USER_CONFIG = """
open({marker!r}, "w").write("loaded")
c.ServerApp.identity_provider_class = "jupyter_server.auth.identity.IdentityProvider"
c.IdentityProvider.token = ""
c.ServerApp.base_url = "/elsewhere/"
"""


async def test_user_config(hub_factory: HubFactory, tmp_path: Path) -> None:
    """A user's own config loads unless disabled, and never opens the server to others."""
    names = ("ann", "bo")
    for name in names:
        config_dir = tmp_path / "users" / name / "home" / ".jupyter"
        config_dir.mkdir(parents=True)
        marker = tmp_path / f"{name}.marker"
        (config_dir / "jupyter_server_config.py").write_text(USER_CONFIG.format(marker=str(marker)))
    config = "c.TreeSpawner.user_env = {'bo': {'JUPYTERHUB_DISABLE_USER_CONFIG': '1'}}\n"
    hub, public = await start_hub(hub_factory, tmp_path, config)
    for name in names:
        await hub.add_user(name)
        await start_server(hub, name)
    assert (tmp_path / "ann.marker").read_text() == "loaded"
    assert not (tmp_path / "bo.marker").exists()
    for name in names:
        # still under the hub's prefix, still asking the hub
        r = await fetch(f"{public}/user/{name}/api/contents")
        assert r.code == 403
        r = await fetch(f"{public}/user/{name}/api/contents", await hub.token_for(name))
        assert r.code == 200


SERVER_CMD = [sys.executable, "-m", "singleuser", "--allow-root"]


def run_singleuser(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        SERVER_CMD,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


GOOD_ENV = {
    "JUPYTERHUB_API_TOKEN": "t",
    "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",
    "JUPYTERHUB_USER": "ann",
    "JUPYTERHUB_SERVICE_PREFIX": "/user/ann/",
}


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"JUPYTERHUB_API_TOKEN": ""}, "JUPYTERHUB_API_TOKEN is not set"),
        ({"JUPYTERHUB_API_URL": "not a url"}, "JUPYTERHUB_API_URL must be an http(s) URL"),
        ({"JUPYTERHUB_USER": ""}, "JUPYTERHUB_USER is not set"),
        ({"JUPYTERHUB_SERVICE_PREFIX": "user/ann"}, "JUPYTERHUB_SERVICE_PREFIX must be a path"),
        ({"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:99999/"}, "bad port"),
        ({"JUPYTERHUB_OAUTH_ACCESS_SCOPES": "{nope"}, "must be a JSON list"),
        ({"JUPYTERHUB_OAUTH_ACCESS_SCOPES": '{"a": 1}'}, "JSON list of strings"),
        ({"JUPYTERHUB_ACTIVITY_INTERVAL": "-5"}, "JUPYTERHUB_ACTIVITY_INTERVAL must be"),
        ({"ATRIUM_KERNEL_TRANSPORT": "udp"}, "ATRIUM_KERNEL_TRANSPORT must be tcp or ipc"),
        ({"ATRIUM_KERNEL_CULL_TIMEOUT": "soon"}, "ATRIUM_KERNEL_CULL_TIMEOUT must be whole"),
        ({"ATRIUM_KERNEL_CULL_TIMEOUT": "-1"}, "ATRIUM_KERNEL_CULL_TIMEOUT must be whole"),
    ],
)
def test_a_broken_contract_stops_the_server_with_a_clear_message(
    change: dict[str, str], complaint: str
) -> None:
    result = run_singleuser({**GOOD_ENV, **change})
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr
    # the token never shows in what it prints
    assert "JUPYTERHUB_API_TOKEN=" not in result.stderr


async def test_logging_out_of_the_hub_locks_an_open_tab_out(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    """Chromium logs in to ann's server through the hub's OAuth; once ann logs out of the
    hub, the server's cookie opens nothing (after the server's 1 s cache here)."""
    config = (
        "from tests.singleuser_spawner import SERVER\n"
        "c.TreeSpawner.cmd = [*SERVER, '--HubIdentityProvider.cache_max_age=1']\n"
    )
    hub, public = await start_hub(hub_factory, tmp_path, config)
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("bo", password=PASSWORD)
    await start_server(hub, "ann")
    api = f"{public}/user/ann/api/contents"
    async with browser_page() as page:
        await page.goto(f"{public}/user/ann/api/status")  # an API URL: 403, no redirect
        await page.goto(f"{public}/user/ann/lab")
        await page.wait_for_url(re.compile(r".*/hub/login\?next=.*"))
        await page.get_by_label("Username").fill("ann")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(re.compile(r".*/user/ann/lab.*"), timeout=30_000)
        cookies = {c["name"]: c for c in await page.context.cookies()}
        server_cookie = cookies["jupyterhub-user-ann"]
        assert server_cookie["path"] == "/user/ann/"
        assert server_cookie["httpOnly"]
        assert (await page.request.get(api)).status == 200
        await page.goto(f"{public}/hub/logout")

        async def locked_out() -> bool:
            return (await page.request.get(api)).status == 403

        await eventually(locked_out, timeout=15)
        # and pages send the browser to log in again
        response = await page.request.get(f"{public}/user/ann/lab", max_redirects=0)
        assert response.status == 302
        assert "/user/ann/login" in response.headers["location"]
    # bo's token on ann's pages: sent to log in, not let in
    bo = await hub.token_for("bo")
    r = await fetch(f"{public}/user/ann/lab", bo, follow_redirects=False)
    assert r.code == 302
    assert "/user/ann/login" in r.headers["Location"]


def test_a_bad_setting_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    env = {**GOOD_ENV, "HOME": str(tmp_path), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    result = subprocess.run(
        [*SERVER_CMD, "--HubIdentityProvider.cache_max_age=-1"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "cache_max_age must be seconds in [0, 3600], not -1.0" in result.stderr
    assert "Traceback" not in result.stderr
