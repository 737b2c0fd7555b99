"""JupyterHub's KubeSpawner (PyPI `jupyterhub-kubespawner`), driven over the command
channel (`channel.py`). Runs with the python of `.scratch/kubespawner-venv`:

    .scratch/kubespawner-venv/bin/python benchmarks/kube/kubespawner_driver.py API_URL PYTHON

`kubespawner.KubeSpawner` outside a hub, as its own test suite makes it: with
`_mock=True` and small stand-ins for the hub's User and Hub objects (names,
URLs: what `get_env` and the name templates read). Its client configuration
comes from `load_config`, which tries the in-cluster config, then a kubeconfig:
`bench.py` writes one (KUBECONFIG) naming the fake server, and `k8s_api_host`
says the same. Settings that differ from its defaults, to do what Atrium's
spawner does by default: `storage_pvc_ensure=True`, `storage_capacity=10Gi`
(create the user's volume claim).

Overrides, because the simulated node's pods share 127.0.0.1: `_get_pod_port`
answers the port in the pod's `atrium.test/host-port` annotation. Its
`start()` returns once the pod is Running and ready; JupyterHub then waits for
the server's HTTP answer itself, which `spawn` does here (as Atrium's start
does inside it) so both times cover the same steps.

Commands: as `atrium_driver.py`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import driver_common
from kubespawner import KubeSpawner
from kubespawner._version import __version__ as kubespawner_version

START_TIMEOUT = 60


class Stub:
    """What KubeSpawner reads of JupyterHub's User and Hub objects."""


def user_stub(name: str, uid: int) -> Stub:
    user = Stub()
    user.name = name  # type: ignore[attr-defined]
    user.id = uid  # type: ignore[attr-defined]
    user.url = f"/user/{name}/"  # type: ignore[attr-defined]
    user.escaped_name = name  # type: ignore[attr-defined]
    return user


def hub_stub() -> Stub:
    hub = Stub()
    hub.public_host = ""  # type: ignore[attr-defined]
    hub.url = "http://127.0.0.1:1/hub/"  # type: ignore[attr-defined]
    hub.base_url = "/hub/"  # type: ignore[attr-defined]
    hub.api_url = "http://127.0.0.1:1/hub/api"  # type: ignore[attr-defined]
    return hub


class NodeKubeSpawner(KubeSpawner):  # type: ignore[misc]
    """Connects to the port the simulated node gave the pod."""

    def _get_pod_port(self, pod: dict[str, Any]) -> int:
        return driver_common.host_port(pod)


class Driver:
    def __init__(self, api_url: str, python: str) -> None:
        self.api_url = api_url
        self.python = python
        self.spawners: dict[str, NodeKubeSpawner] = {}
        self.warm_spawners: dict[str, NodeKubeSpawner] = {}
        self.uids = 0

    def make(self, user: str, namespace: str) -> NodeKubeSpawner:
        self.uids += 1
        return NodeKubeSpawner(
            user=user_stub(user, self.uids),
            hub=hub_stub(),
            _mock=True,
            k8s_api_host=self.api_url,
            namespace=namespace,
            api_token="token-" + user,
            oauth_client_id=f"jupyterhub-user-{user}",
            start_timeout=START_TIMEOUT,
            cmd=driver_common.server_command(self.python),
            image="bench/singleuser:1",
            storage_pvc_ensure=True,
            storage_capacity="10Gi",
        )

    async def prepare(self, namespace: str) -> dict[str, Any]:
        self.warm_spawners[namespace] = self.make("bench-warm", namespace)
        return {"version": f"jupyterhub-kubespawner {kubespawner_version}"}

    async def warm(self, namespace: str) -> dict[str, Any]:
        spawner = self.warm_spawners.get(namespace) or self.make("bench-warm", namespace)
        self.warm_spawners[namespace] = spawner
        t0 = time.monotonic()
        # what its start() does first (the reflectors are shared by the class)
        await asyncio.gather(spawner._start_watching_pods(), spawner._start_watching_events())
        return {"seconds": time.monotonic() - t0, "pods": len(spawner.pod_reflector.pods)}

    async def spawn(self, user: str, namespace: str) -> dict[str, Any]:
        spawner = self.make(user, namespace)
        self.spawners[user] = spawner
        t0 = time.monotonic()
        url = await spawner.start()
        parsed = urlparse(url)
        await driver_common.wait_answers(
            parsed.hostname or "127.0.0.1", int(parsed.port or 80), f"/user/{user}/api", 30
        )
        return {"url": url, "seconds": time.monotonic() - t0}

    async def stop(self, user: str) -> dict[str, Any]:
        spawner = self.spawners.pop(user)
        t0 = time.monotonic()
        await spawner.stop()
        return {"seconds": time.monotonic() - t0}

    def _pods(self, namespace: str) -> dict[str, Any]:
        pods: dict[str, Any] = self.warm_spawners[namespace].pod_reflector.pods
        return pods

    async def wait_cached(self, pod: str, rv: int, namespace: str, within: float) -> Any:
        # looked up each time: a re-list replaces the reflector's dict
        return await driver_common.wait_cached(
            lambda name: self._pods(namespace).get(f"{namespace}/{name}"), pod, rv, within
        )

    async def cache_size(self, namespace: str) -> dict[str, Any]:
        spawner = self.warm_spawners[namespace]
        return {
            "pods": len(spawner.pod_reflector.pods),
            "events": len(spawner.event_reflector.events),
        }


async def main() -> None:
    await driver_common.run_driver(
        Driver(sys.argv[1], sys.argv[2]), KubeSpawner._stop_all_reflectors
    )


if __name__ == "__main__":
    asyncio.run(main())
