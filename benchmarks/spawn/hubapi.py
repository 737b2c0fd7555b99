"""The hub and server requests the spawn benchmark times, the same for both hubs.

Everything goes through the hub's public port (its proxy) with the admin's token,
over one asyncio HTTP client per hub (httpx, keep-alive, no limit on
connections so a burst of 50 is 50 requests at once). A start is timed from
sending `POST /hub/api/users/{name}/server` to the first 200 from
`GET /user/{name}/api` through the proxy: on 201 the proxy is asked at once; on
202 the start's progress stream (`.../server/progress`, server-sent events, as
the hub's spawn page follows it) is read until its ready or failed event first.

Neighbours: `hubsetup.py` (the hubs), `scenarios.py` (what is measured with this).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from hubs import BenchError
from hubsetup import SpawnHub

PROXY_POLL = 0.01  # seconds between GETs through the proxy while a server is not routed yet
STOP_POLL = 0.1  # seconds between looks at a stopping server


class SpawnFailed(BenchError):
    """A start that did not end with the server answering through the proxy."""


@dataclass
class Spawned:
    """One start: the POST's answer, when the hub said ready, and when the proxy answered."""

    name: str
    ok: bool
    seconds: float  # POST sent -> first 200 through the proxy (or -> the failure)
    post_status: int = 0
    post_seconds: float = 0.0
    hub_ready_seconds: float = 0.0  # POST answered 201, or the progress stream said ready
    proxy_polls: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(self).items()}


def _active(model: dict[str, Any]) -> bool:
    server = (model.get("servers") or {}).get("")
    if not server or server.get("stopped"):
        return False
    return bool(server.get("ready") or server.get("pending"))


class HubAPI:
    """Requests to one hub, through its proxy, as its admin."""

    def __init__(self, hub: SpawnHub, timeout: float = 130.0) -> None:
        self.hub = hub
        self.base = f"127.0.0.1:{hub.public_port}"
        self.http = httpx.AsyncClient(
            base_url=f"http://{self.base}",
            headers={"Authorization": f"token {hub.hub.token}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
            trust_env=False,  # never an HTTP proxy from the environment
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def create_users(self, names: list[str]) -> None:
        r = await self.http.post("/hub/api/users", json={"usernames": names})
        if r.status_code != 201:
            raise SpawnFailed(f"creating users answered {r.status_code}: {r.text[:300]}")

    async def user(self, name: str) -> dict[str, Any]:
        r = await self.http.get(f"/hub/api/users/{name}")
        r.raise_for_status()
        return dict(r.json())

    # --- starting ------------------------------------------------------------------

    async def spawn(self, name: str, bound: float) -> Spawned:
        """Start `name`'s server and wait (at most `bound` s) until the proxy routes to it."""
        t0 = time.perf_counter()
        out = Spawned(name, ok=False, seconds=0.0)
        try:
            async with asyncio.timeout(bound):
                await self._start(name, out, t0)
                out.hub_ready_seconds = time.perf_counter() - t0
                out.proxy_polls = await self.wait_proxied(name)
            out.ok = True
        except TimeoutError:
            out.error = f"not answering through the proxy within {bound:g} s"
        except (SpawnFailed, httpx.HTTPError) as e:
            out.error = f"{type(e).__name__}: {e}"[:2000]
        out.seconds = time.perf_counter() - t0
        return out

    async def _start(self, name: str, out: Spawned, t0: float) -> None:
        r = await self.http.post(f"/hub/api/users/{name}/server")
        out.post_status, out.post_seconds = r.status_code, time.perf_counter() - t0
        if r.status_code == 202:
            await self._follow_progress(name)
        elif r.status_code != 201:
            raise SpawnFailed(f"POST .../server answered {r.status_code}: {r.text[:500]}")

    async def _follow_progress(self, name: str) -> None:
        async with self.http.stream("GET", f"/hub/api/users/{name}/server/progress") as r:
            if r.status_code != 200:
                body = (await r.aread()).decode(errors="replace")
                raise SpawnFailed(f"progress answered {r.status_code}: {body[:500]}")
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("ready"):
                    return
                if event.get("failed"):
                    raise SpawnFailed(f"the hub says the start failed: {event.get('message')}")
        raise SpawnFailed("the progress stream ended without a ready event")

    async def wait_proxied(self, name: str) -> int:
        """GET /user/{name}/api through the proxy until it answers 200; the GETs it took."""
        polls = 0
        while True:
            polls += 1
            r = await self.http.get(f"/user/{name}/api")
            if r.status_code == 200:
                return polls
            await asyncio.sleep(PROXY_POLL)

    # --- stopping ------------------------------------------------------------------

    async def stop(self, name: str, bound: float = 60.0) -> float:
        """Stop `name`'s server (if it runs) and wait until the hub says so; seconds."""
        t0 = time.perf_counter()
        r = await self.http.delete(f"/hub/api/users/{name}/server")
        # 204 stopped, 202 stopping, 400 not running (e.g. a failed start)
        if r.status_code not in (202, 204, 400):
            raise SpawnFailed(f"DELETE .../server for {name} answered {r.status_code}: {r.text}")
        async with asyncio.timeout(bound):
            while True:
                if not _active(await self.user(name)):
                    break
                await asyncio.sleep(STOP_POLL)
        return time.perf_counter() - t0

    async def server_pid(self, name: str) -> int | None:
        """The server's PID from the spawner state in the user model (admins see it)."""
        server = ((await self.user(name)).get("servers") or {}).get("") or {}
        pid = (server.get("state") or {}).get("pid")
        return int(pid) if pid else None

    # --- kernels -------------------------------------------------------------------

    async def start_kernel(self, name: str) -> str:
        r = await self.http.post(f"/user/{name}/api/kernels", json={"name": "python3"})
        if r.status_code != 201:
            raise SpawnFailed(f"POST /user/{name}/api/kernels answered {r.status_code}: {r.text}")
        return str(r.json()["id"])

    def kernel_ws_url(self, name: str, kernel_id: str) -> str:
        return f"ws://{self.base}/user/{name}/api/kernels/{kernel_id}/channels"
