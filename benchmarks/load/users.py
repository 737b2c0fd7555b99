"""One simulated user's session, step by step and timed, the same for both hubs.

The steps (hubtraf's names):

1. `login`: GET /hub/login (the form and its `_xsrf` cookie), POST the form with
   the user's name and the shared password; a redirect away from the login page
   with the hub's login cookie set is a success.
2. `start_server`: POST /hub/api/users/{name}/server with the admin token until
   the hub says the server is ready (201, or after 202 the progress stream's
   ready event).
3. `server_ready`: GET /user/{name}/api through the proxy until it answers 200.
4. `kernel_start`: POST /user/{name}/api/kernels, then the kernel websocket
   opened through the proxy (v1 protocol, as JupyterLab).
5. `kernel_execute`: an `execute_request` until its `execute_reply` and
   `status: idle`.
6. `stop_server`: DELETE /hub/api/users/{name}/server until the hub says it is
   stopped (204, or after 202 until the user model shows no server).

Every request goes through the hub's public port (its proxy), as a browser's
would; server access uses the admin token (the light server checks it against
the hub once), so the single-user OAuth dance is not part of it. A failed step
ends the session; its server is then stopped without timing.

Neighbours: `bench.py` (arrivals and the concurrency cap), `lightserver.py`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from hubs import REPO
from hubsetup import LoadHub

sys.path.insert(0, str(REPO / "tests"))
from kernelws import KernelSocket  # tests/ is not a package

STEPS = ("login", "start_server", "server_ready", "kernel_start", "kernel_execute", "stop_server")
PROXY_POLL = 0.02  # seconds between GETs through the proxy until the server is routed
STOP_POLL = 0.1  # seconds between looks at a stopping server
XSRF_FIELD = re.compile(r"<input[^>]*name=\"_xsrf\"[^>]*>")
VALUE = re.compile(r"value=\"([^\"]*)\"")


class StepFailed(Exception):
    """A step got an answer that is not what a working hub gives."""


@dataclass
class Session:
    name: str
    arrived: float  # seconds after the load began
    waited: float = 0.0  # seconds queued behind the concurrency cap
    steps: dict[str, float] = field(default_factory=dict)
    failed_step: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed_step

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arrived": round(self.arrived, 3),
            "waited": round(self.waited, 3),
            "steps": {k: round(v, 4) for k, v in self.steps.items()},
            "failed_step": self.failed_step,
            "error": self.error,
        }


class Users:
    """Sessions against one hub: one shared connection pool, an admin client for the
    REST API and the servers, and per-user clients (own cookie jars) for logins."""

    def __init__(self, hub: LoadHub, step_timeout: float) -> None:
        self.hub = hub
        self.step_timeout = step_timeout
        self.base = f"http://127.0.0.1:{hub.public_port}"
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
        self.transport = httpx.AsyncHTTPTransport(limits=limits)
        self.admin = httpx.AsyncClient(
            base_url=self.base,
            headers={"Authorization": f"token {hub.token}"},
            timeout=step_timeout,
            transport=self.transport,
            trust_env=False,  # never an HTTP proxy from the environment
        )

    async def close(self) -> None:
        await self.admin.aclose()  # closes the shared transport too

    async def session(self, s: Session) -> None:
        started_server = False
        step = ""
        try:
            for step in STEPS:
                t0 = time.perf_counter()
                async with asyncio.timeout(self.step_timeout):
                    if step == "login":
                        await self.login(s.name)
                    elif step == "start_server":
                        started_server = True
                        await self.start_server(s.name)
                    elif step == "server_ready":
                        await self.wait_routed(s.name)
                    elif step == "kernel_start":
                        ks = await self.open_kernel(s.name)
                    elif step == "kernel_execute":
                        try:
                            await self.execute(ks)
                        finally:
                            ks.close()
                    elif step == "stop_server":
                        await self.stop_server(s.name)
                        started_server = False
                s.steps[step] = time.perf_counter() - t0
        except TimeoutError:
            s.failed_step, s.error = step, f"no result within {self.step_timeout:g} s"
        except (StepFailed, httpx.HTTPError, OSError, ConnectionError, ValueError) as e:
            s.failed_step, s.error = step, f"{type(e).__name__}: {e}"[:500]
        if started_server:
            await self.cleanup(s.name)

    # --- the steps -------------------------------------------------------------------

    async def login(self, name: str) -> None:
        # its own cookie jar over the shared pool (not closed: that would close the pool)
        client = httpx.AsyncClient(
            base_url=self.base,
            timeout=self.step_timeout,
            transport=self.transport,
            trust_env=False,
        )
        r = await client.get("/hub/login")
        if r.status_code != 200:
            raise StepFailed(f"GET /hub/login answered {r.status_code}")
        form = {"username": name, "password": self.hub.password}
        field_html = XSRF_FIELD.search(r.text)
        value = VALUE.search(field_html.group(0)) if field_html else None
        if value:
            form["_xsrf"] = value.group(1)
        r = await client.post("/hub/login", data=form)
        where = r.headers.get("location", "")
        logged_in = any("login" in c for c in client.cookies)
        if r.status_code != 302 or "/login" in where or not logged_in:
            raise StepFailed(f"POST /hub/login answered {r.status_code} -> {where or r.text[:200]}")

    async def start_server(self, name: str) -> None:
        r = await self.admin.post(f"/hub/api/users/{name}/server")
        if r.status_code == 202:
            await self.follow_progress(name)
        elif r.status_code != 201:
            raise StepFailed(f"POST .../server answered {r.status_code}: {r.text[:300]}")

    async def follow_progress(self, name: str) -> None:
        async with self.admin.stream("GET", f"/hub/api/users/{name}/server/progress") as r:
            if r.status_code != 200:
                raise StepFailed(f"progress answered {r.status_code}")
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("ready"):
                    return
                if event.get("failed"):
                    raise StepFailed(f"the hub says the start failed: {event.get('message')}")
        raise StepFailed("the progress stream ended without a ready event")

    async def wait_routed(self, name: str) -> None:
        while True:
            r = await self.admin.get(f"/user/{name}/api")
            # the light server's own answer, not the hub's (a proxy without the route
            # yet sends the request to the hub)
            if r.status_code == 200 and b'"light"' in r.content:
                return
            await asyncio.sleep(PROXY_POLL)

    async def open_kernel(self, name: str) -> KernelSocket:
        r = await self.admin.post(f"/user/{name}/api/kernels", json={"name": "python3"})
        if r.status_code != 201:
            raise StepFailed(
                f"POST /user/{name}/api/kernels answered {r.status_code}: {r.text[:200]}"
            )
        kernel = r.json()["id"]
        url = f"ws://127.0.0.1:{self.hub.public_port}/user/{name}/api/kernels/{kernel}/channels"
        try:
            return await KernelSocket.open(url, self.hub.token)
        except Exception as e:  # tornado's errors for a refused upgrade are varied
            raise StepFailed(f"kernel websocket: {type(e).__name__}: {e}") from None

    async def execute(self, ks: KernelSocket) -> None:
        reply, _iopub = await ks.request(
            "shell", "execute_request", {"code": "1 + 1", "silent": False}, self.step_timeout
        )
        if reply["content"].get("status") != "ok":
            raise StepFailed(f"execute_reply: {reply['content']}")

    async def stop_server(self, name: str) -> None:
        r = await self.admin.delete(f"/hub/api/users/{name}/server")
        if r.status_code == 204:
            return
        if r.status_code != 202:
            raise StepFailed(f"DELETE .../server answered {r.status_code}: {r.text[:300]}")
        await self.wait_stopped(name)

    async def wait_stopped(self, name: str) -> None:
        """Poll the user model until its server is gone (the hub has no event for it)."""
        while await self.server_active(name):  # noqa: ASYNC110
            await asyncio.sleep(STOP_POLL)

    async def server_active(self, name: str) -> bool:
        r = await self.admin.get(f"/hub/api/users/{name}")
        if r.status_code != 200:
            raise StepFailed(f"GET /hub/api/users/{name} answered {r.status_code}")
        server = (r.json().get("servers") or {}).get("")
        return bool(
            server and not server.get("stopped") and (server.get("ready") or server.get("pending"))
        )

    async def cleanup(self, name: str) -> None:
        """After a failed step: stop the server if it runs (not timed, errors ignored)."""
        try:
            async with asyncio.timeout(self.step_timeout):
                r = await self.admin.delete(f"/hub/api/users/{name}/server")
                if r.status_code == 202:
                    await self.wait_stopped(name)
        except (TimeoutError, StepFailed, httpx.HTTPError, OSError):
            pass
