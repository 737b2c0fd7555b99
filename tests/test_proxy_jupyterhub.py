"""JupyterHub 6 with `atrium proxy` in place of configurable-http-proxy.

JupyterHub (installed with pip into .scratch by scripts/test.sh) starts our
proxy with its usual command line, adds its default route and, when a user's
server starts, that server's route; a request through the proxy reaches the
user's server, and the route goes away when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import textwrap
import time
from pathlib import Path

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from tests.conftest import missing_part
from tests.pg import free_port

REPO = Path(__file__).resolve().parent.parent
JUPYTERHUB = REPO / ".scratch" / "jupyterhub-venv" / "bin" / "jupyterhub"

# what JupyterHub's spawner runs as the "single-user server": answers every path
SERVER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import urlsplit

    port = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"]).port
    user = os.environ["JUPYTERHUB_USER"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"user": user, "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    try:
        HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    except KeyboardInterrupt:  # JupyterHub stops it with SIGINT
        pass
    """
)


async def wait_answer(url: str, within: float = 60.0, **kw: object) -> object:
    client = AsyncHTTPClient()
    deadline = time.monotonic() + within
    while True:
        try:
            return await client.fetch(HTTPRequest(url, request_timeout=5, **kw))  # type: ignore[arg-type]
        except (OSError, HTTPClientError):
            assert time.monotonic() < deadline, f"no answer from {url}"
            await asyncio.sleep(0.2)


async def test_jupyterhub_routes_a_user_through_atrium_proxy(tmp_path: Path) -> None:
    if not JUPYTERHUB.exists():
        missing_part(f"JupyterHub 6 for the compatibility test ({JUPYTERHUB})")
    port, hub_port, api_port = free_port(), free_port(), free_port()
    api_token = secrets.token_hex(16)
    (tmp_path / "server.py").write_text(SERVER_SCRIPT)
    (tmp_path / "jupyterhub_config.py").write_text(
        textwrap.dedent(
            f"""
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {port}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {hub_port}
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
            c.ConfigurableHTTPProxy.command = [{sys.executable!r}, "-m", "hub.app", "proxy"]
            c.JupyterHub.authenticator_class = "dummy"
            c.Authenticator.allow_all = True
            c.JupyterHub.spawner_class = "simple"
            c.Spawner.cmd = [{sys.executable!r}, {str(tmp_path / "server.py")!r}]
            c.Spawner.args = []
            c.SimpleLocalProcessSpawner.home_dir_template = {str(tmp_path)!r}
            c.JupyterHub.services = [{{"name": "test", "api_token": {api_token!r}}}]
            c.JupyterHub.load_roles = [
                {{"name": "admin-service", "scopes": ["admin:users", "admin:servers"],
                  "services": ["test"]}}
            ]
            """
        )
    )
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16), "PYTHONPATH": str(REPO)}
    log = open(tmp_path / "jupyterhub.log", "wb")  # noqa: SIM115, ASYNC230 (the process writes to it)
    proc = await asyncio.create_subprocess_exec(
        str(JUPYTERHUB),
        "-f",
        "jupyterhub_config.py",
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    auth = {"Authorization": f"token {api_token}"}
    public = f"http://127.0.0.1:{port}"
    try:
        # the default route: JupyterHub's API through the proxy
        r = await wait_answer(f"{public}/hub/api/")
        assert "version" in orjson.loads(r.body)  # type: ignore[attr-defined]
        client = AsyncHTTPClient()
        await client.fetch(
            HTTPRequest(f"{public}/hub/api/users/ann", method="POST", body=b"{}", headers=auth)
        )
        await client.fetch(
            HTTPRequest(
                f"{public}/hub/api/users/ann/server", method="POST", body=b"{}", headers=auth
            )
        )
        r = await wait_answer(f"{public}/user/ann/some/page?x=1")
        assert orjson.loads(r.body) == {"user": "ann", "path": "/user/ann/some/page?x=1"}  # type: ignore[attr-defined]
        routes = orjson.loads(
            (
                await client.fetch(
                    f"http://127.0.0.1:{api_port}/api/routes",
                    headers={"Authorization": f"token {env['CONFIGPROXY_AUTH_TOKEN']}"},
                )
            ).body
        )
        assert routes["/user/ann"]["jupyterhub"] is True
        assert routes["/user/ann"]["user"] == "ann"
        await client.fetch(
            HTTPRequest(f"{public}/hub/api/users/ann/server", method="DELETE", headers=auth)
        )
        deadline = time.monotonic() + 30
        while True:
            routes = orjson.loads(
                (
                    await client.fetch(
                        f"http://127.0.0.1:{api_port}/api/routes",
                        headers={"Authorization": f"token {env['CONFIGPROXY_AUTH_TOKEN']}"},
                    )
                ).body
            )
            if "/user/ann" not in routes:
                break
            assert time.monotonic() < deadline, "route not removed"
            await asyncio.sleep(0.2)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)  # JupyterHub stops the proxy it started
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        log.close()
        pid_file = tmp_path / "jupyterhub-proxy.pid"
        if pid_file.exists():  # a proxy JupyterHub left behind: stop it by its PID
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
    assert b"Traceback" not in (tmp_path / "jupyterhub.log").read_bytes()
