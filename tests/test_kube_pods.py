"""The Kubernetes spawner with real pods: the fake API server's simulated node
(tests.kube.kubelet) runs each pod's command as a local process, so a real
single-user server starts, answers, is polled, and stops; and the node's own
failures (image pull, no node with a GPU, crash loop) reach the user as messages.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import CoreV1Api

from spawners.base import SpawnError
from spawners.kubernetes import KubeSpawner, client, informer
from spawners.kubernetes.client import Json
from tests.kube import FakeKube, start_fake_kube
from tests.kube.kubelet import PORT_ANNOTATION
from tests.kube.store import WatchEvent

HANG = 60.0  # only guards against a hang
# tests run as root here: the server must be told that is meant
SERVER = [sys.executable, "-m", "singleuser", "--allow-root"]


class NodeSpawner(KubeSpawner):
    """Pods on the simulated node share the host's network: each listens on the port the
    node gave it (an annotation) instead of `port`, and a Service's cluster IP is the
    service proxy's port on 127.0.0.1 (an annotation too, see `tests.kube.controllers`)."""

    def pod_port(self, pod: Json) -> int:
        return int(pod["metadata"]["annotations"][PORT_ANNOTATION])

    def service_address(self, service: Json) -> tuple[str, int]:
        return "127.0.0.1", int(service["metadata"]["annotations"][PORT_ANNOTATION])


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    async with start_fake_kube(tmp_path / "node") as k:
        yield k
        await informer.stop_all()
        await client.close_all()


def make(kube: FakeKube, user: str = "alice", **settings: Any) -> NodeSpawner:
    settings.setdefault("cmd", SERVER)
    settings.setdefault("image", "atrium/singleuser:1")
    spawner = NodeSpawner(
        user_name=user,
        k8s_api_url=kube.url,
        namespace=kube.namespace,
        start_timeout=HANG,
        **settings,
    )
    spawner.env = {
        "JUPYTERHUB_API_TOKEN": "token-" + user,
        "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/",
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
    }
    return spawner


async def until_stopped(spawner: KubeSpawner) -> int:
    pods = informer.shared(await client.connect(spawner.k8s_api_url), spawner.namespace, "pods")
    changed = asyncio.Event()
    pods.add_waiter(spawner.pod_name, changed)
    try:
        async with asyncio.timeout(HANG):
            while (status := await spawner.poll()) is None:
                changed.clear()
                await changed.wait()
    finally:
        pods.remove_waiter(spawner.pod_name, changed)
    return status


async def test_a_real_server_runs_in_a_pod(kube: FakeKube) -> None:
    spawner = make(kube)
    async with asyncio.timeout(HANG):
        url = await spawner.start()
    async with aiohttp.ClientSession() as http, http.get(f"{url}/user/alice/api") as r:
        assert r.status == 200
        assert "version" in await r.json()
    progress = [e["message"] async for e in spawner.progress()]
    assert any(m.startswith("Started:") for m in progress)
    assert await spawner.poll() is None
    async with asyncio.timeout(HANG):
        await spawner.stop()
    assert await spawner.poll() == 0
    assert kube.server.store.find("pods", kube.namespace, spawner.pod_name) is None
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{url}/user/alice/api")


async def test_a_server_reached_through_its_service(kube: FakeKube) -> None:
    """services_enabled: the hub's address for the server is its Service, which forwards to
    the ready pod; the Service goes with the server, and with the pod it belongs to."""
    spawner = make(kube, services_enabled=True)
    async with asyncio.timeout(HANG):
        url = await spawner.start()
    service = kube.server.store.get("services", kube.namespace, spawner.service_name)
    pod = kube.server.store.get("pods", kube.namespace, spawner.pod_name)
    # the address is the Service's, not the pod's
    service_port = int(service["metadata"]["annotations"][PORT_ANNOTATION])
    assert url == f"http://127.0.0.1:{service_port}"
    assert service_port != int(pod["metadata"]["annotations"][PORT_ANNOTATION])
    assert service["spec"]["clusterIP"].startswith("10.96.")
    assert service["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    async with aiohttp.ClientSession() as http, http.get(f"{url}/user/alice/api") as r:
        assert r.status == 200
        assert "version" in await r.json()
    state = spawner.get_state()
    assert state["service_name"] == spawner.service_name
    async with asyncio.timeout(HANG):
        await spawner.stop()
    assert kube.server.store.find("services", kube.namespace, state["service_name"]) is None
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{url}/user/alice/api")

    # a pod deleted behind the hub's back takes its Service with it (garbage collection),
    # and until then the Service has no endpoint to forward to
    again = make(kube, services_enabled=True)
    async with asyncio.timeout(HANG):
        url = await again.start()
    name = again.service_name
    seen = asyncio.Event()

    def deleted(plural: str, event: WatchEvent) -> None:
        if plural == "services" and event.type == "DELETED":
            seen.set()

    kube.server.store.subscribers.append(deleted)
    try:
        await CoreV1Api(kube.api).delete_namespaced_pod(
            again.pod_name, kube.namespace, grace_period_seconds=0
        )
        async with asyncio.timeout(HANG):
            await seen.wait()
    finally:
        kube.server.store.subscribers.remove(deleted)
    assert kube.server.store.find("services", kube.namespace, name) is None
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(f"{url}/user/alice/api")
    async with asyncio.timeout(HANG):
        await again.stop()


async def test_adopted_after_a_hub_restart(kube: FakeKube) -> None:
    first = make(kube)
    async with asyncio.timeout(HANG):
        url = await first.start()
    state = first.get_state()
    await informer.stop_all()  # the hub restarts
    await client.close_all()
    second = make(kube)
    second.load_state(state)
    assert await second.poll() is None
    async with aiohttp.ClientSession() as http, http.get(f"{url}/user/alice/api") as r:
        assert r.status == 200
    async with asyncio.timeout(HANG):
        await second.stop()
    assert await second.poll() == 0
    assert kube.server.store.find("pods", kube.namespace, state["pod_name"]) is None


async def test_image_pull_error(kube: FakeKube) -> None:
    spawner = make(kube, image="registry.example.org/does-not-exist:1")
    with pytest.raises(
        SpawnError, match=r"the image registry.example.org/does-not-exist:1 could not be pulled"
    ):
        async with asyncio.timeout(HANG):
            await spawner.start()
    async with asyncio.timeout(HANG):
        await spawner.stop(now=True)


async def test_no_node_has_the_gpu(kube: FakeKube) -> None:
    spawner = make(kube, extra_resource_limits={"nvidia.com/gpu": "1"})
    with pytest.raises(SpawnError, match=r"no node can run the server: .*nvidia.com/gpu"):
        async with asyncio.timeout(HANG):
            await spawner.start()


async def test_crash_loop(kube: FakeKube) -> None:
    spawner = make(kube, cmd=[sys.executable, "-c", "import sys; sys.exit('no config')"])
    with pytest.raises(SpawnError, match=r"exited with status 1"):
        async with asyncio.timeout(HANG):
            await spawner.start()
