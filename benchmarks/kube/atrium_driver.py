"""Atrium's Kubernetes spawner, driven over the command channel (`channel.py`).

    .venv/bin/python benchmarks/kube/atrium_driver.py API_URL PYTHON

`spawners.kubernetes.spawner.KubeSpawner` as the hub uses it: one instance per
server, the shared pod and event informers (`spawners.kubernetes.informer`)
started by the first spawner. The only change is `pod_port`: the simulated
node's pods share 127.0.0.1, each on the port in its `atrium.test/host-port`
annotation (as `tests.test_kube_pods.NodeSpawner` does). PYTHON runs the pods'
server (`driver_common.SERVER_CODE`).

Commands: `prepare(namespace)` (a spawner and the API connection, no request
yet), `warm(namespace)` (start the informers a spawn starts: pods, events and,
where this version of the spawner has one, volume claims; return once each
has listed and watches), `spawn(user, namespace)`, `stop(user)`, `wait_cached(pod, rv,
namespace, within)`, `cache_size(namespace)`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))
# bench.py's copy of the code measured, taken when the benchmark began
sys.path.insert(0, os.environ.get("ATRIUM_BENCH_SRC") or str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import driver_common  # noqa: E402

from spawners.kubernetes.client import Json  # noqa: E402
from spawners.kubernetes.informer import Informer  # noqa: E402
from spawners.kubernetes.spawner import KubeSpawner  # noqa: E402

START_TIMEOUT = 60


class NodeSpawner(KubeSpawner):
    """Connects to the port the simulated node gave the pod."""

    def pod_port(self, pod: Json) -> int:
        return driver_common.host_port(pod)


class Driver:
    def __init__(self, api_url: str, python: str) -> None:
        self.api_url = api_url
        self.python = python
        self.spawners: dict[str, NodeSpawner] = {}
        self.informers: dict[str, tuple[Informer, Informer]] = {}

    def make(self, user: str, namespace: str) -> NodeSpawner:
        spawner = NodeSpawner(
            user_name=user,
            k8s_api_url=self.api_url,
            namespace=namespace,
            start_timeout=START_TIMEOUT,
            cmd=driver_common.server_command(self.python),
            image="bench/singleuser:1",
        )
        spawner.env = {
            "JUPYTERHUB_API_TOKEN": "token-" + user,
            "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",
            "JUPYTERHUB_USER": user,
            "JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/",
            "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
        }
        return spawner

    async def prepare(self, namespace: str) -> dict[str, Any]:
        spawner = self.make("bench-warm", namespace)
        await spawner._connection()
        return {"version": "atrium (this checkout)"}

    async def warm(self, namespace: str) -> dict[str, Any]:
        spawner = self.make("bench-warm", namespace)
        connection = await spawner._connection()
        pods, events = spawner._informers(connection, namespace)
        self.informers[namespace] = (pods, events)
        started = [pods, events]
        if hasattr(spawner, "_claims") and spawner.storage_capacity:
            # the volume claim informer, which a spawn with a volume starts too
            started.append(spawner._claims(connection, namespace))
        t0 = time.monotonic()
        async with asyncio.timeout(120):
            while any(informer.stale for informer in started):
                for informer in started:
                    await informer.wait_synced(1.0)
                await asyncio.sleep(0.02)
        return {"seconds": time.monotonic() - t0, "pods": len(pods.items)}

    async def spawn(self, user: str, namespace: str) -> dict[str, Any]:
        spawner = self.make(user, namespace)
        self.spawners[user] = spawner
        t0 = time.monotonic()
        url = await spawner.start()
        return {"url": url, "seconds": time.monotonic() - t0}

    async def stop(self, user: str) -> dict[str, Any]:
        spawner = self.spawners.pop(user)
        t0 = time.monotonic()
        await spawner.stop()
        return {"seconds": time.monotonic() - t0}

    async def wait_cached(self, pod: str, rv: int, namespace: str, within: float) -> Any:
        pods, _ = self.informers[namespace]
        return await driver_common.wait_cached(pods.get, pod, rv, within)

    async def cache_size(self, namespace: str) -> dict[str, Any]:
        pods, events = self.informers[namespace]
        return {
            "pods": len(pods.items),
            "events": len(events.items),
            "list_calls": pods.list_calls,
            "watch_calls": pods.watch_calls,
        }


async def main() -> None:
    await driver_common.run_driver(Driver(sys.argv[1], sys.argv[2]), KubeSpawner.release_shared)


if __name__ == "__main__":
    asyncio.run(main())
