"""A real jupyter_server and a real ipykernel behind `atrium proxy`.

Through the proxy: the REST API starts a kernel, its channels websocket runs
`1 + 1` and answers 2 (execute_request -> execute_result), a close from the
client reaches the server and comes back, and websocket traffic keeps the
route's `last_activity` current.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from tests.conftest import missing_part
from tests.pg import free_port
from tests.proxyproc import ProxyProc
from tests.waits import eventually

TOKEN = "jupyter-server-token-for-tests"
PREFIX = "/user/ann/"


@pytest.fixture
async def jupyter(tmp_path: Path) -> AsyncIterator[str]:
    """jupyter_server on a free loopback port under /user/ann/; yields its URL."""
    try:
        import ipykernel  # noqa: F401
        import jupyter_server  # noqa: F401
    except ImportError:
        missing_part("jupyter_server and ipykernel (pip install -e .)")
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={PREFIX}",
        f"--IdentityProvider.token={TOKEN}",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",  # CI runs as root
        f"--ServerApp.root_dir={home}",
        "--ServerApp.log_level=WARN",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        assert proc.returncode is None, "jupyter_server exited"
        try:
            r = await AsyncHTTPClient().fetch(url + PREFIX + "api", raise_error=False)
        except OSError:  # not listening yet
            return False
        return r.code == 200

    try:
        await eventually(answers, timeout=60)
        yield url
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def message(msg_type: str, content: dict[str, Any], channel: str = "shell") -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "ann",
            "session": uuid.uuid4().hex,
            "date": datetime.datetime.now(datetime.UTC).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": channel,
        "buffers": [],
    }


async def test_kernel_websocket_through_the_proxy(
    jupyter: str,
    proxies: list[ProxyProc],
) -> None:
    proxy = await ProxyProc("--workers=2").start(1)
    proxies.append(proxy)
    await proxy.client().add_route(PREFIX, jupyter, {"user": "ann"})
    auth = {"Authorization": f"token {TOKEN}"}
    r = await AsyncHTTPClient().fetch(
        HTTPRequest(proxy.url + PREFIX + "api/kernels", method="POST", body=b"{}", headers=auth)
    )
    kernel = orjson.loads(r.body)["id"]
    before = (await proxy.client().get_routes())["/user/ann"]["last_activity"]

    ws = await websocket_connect(
        HTTPRequest(
            f"ws://127.0.0.1:{proxy.port}{PREFIX}api/kernels/{kernel}/channels", headers=auth
        )
    )
    request = message("execute_request", {"code": "1 + 1", "silent": False, "store_history": False})
    ws.write_message(orjson.dumps(request).decode())
    result = None
    replied = False
    while result is None or not replied:
        raw = await asyncio.wait_for(ws.read_message(), 60)
        assert raw is not None, "the websocket closed"
        msg = orjson.loads(raw)
        if msg["parent_header"].get("msg_id") != request["header"]["msg_id"]:
            continue
        if msg["msg_type"] == "execute_result":
            result = msg["content"]["data"]["text/plain"]
        elif msg["msg_type"] == "execute_reply":
            assert msg["content"]["status"] == "ok"
            replied = True
    assert result == "2"

    # the close goes through to jupyter_server, whose close comes back
    ws.close(code=1000, reason="done")
    while await asyncio.wait_for(ws.read_message(), 10) is not None:
        pass  # messages the kernel sent before the close arrived
    assert ws.close_code == 1000

    async def activity_moved() -> bool:
        routes = await proxy.client().get_routes()
        return bool(routes["/user/ann"]["last_activity"] > before)

    await eventually(activity_moved)  # the worker that carried it reports within a second
    r = await AsyncHTTPClient().fetch(
        HTTPRequest(proxy.url + PREFIX + f"api/kernels/{kernel}", method="DELETE", headers=auth)
    )
    assert r.code == 204
