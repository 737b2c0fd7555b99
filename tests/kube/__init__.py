"""A fake Kubernetes cluster for the tests: API server, simulated kubelet, client.

    from tests.kube import fake_kube  # noqa: F401  (the fixture)

    async def test_something(fake_kube: FakeKube) -> None:
        v1 = CoreV1Api(fake_kube.api)
        await v1.create_namespaced_pod(fake_kube.namespace, pod)

`fake_kube` is a running `FakeApiServer` (`tests.kube.apiserver`) on
127.0.0.1, a `Kubelet` (`tests.kube.kubelet`) that runs pods as local
processes, the garbage collector and a service proxy standing in for
kube-proxy (`tests.kube.controllers`), and a kubernetes_asyncio `ApiClient`
whose Configuration host is the fake's URL. For other settings (a bearer token, a pod quota, a small
watch history, no node) use `start_fake_kube(...)` as an async context
manager. Everything started is stopped when the fixture ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from tests.kube.apiserver import FakeApiServer

if TYPE_CHECKING:
    from tests.kube.controllers import GarbageCollector, ServiceProxy
    from tests.kube.kubelet import Kubelet

NAMESPACE = "atrium-test"


@dataclass
class FakeKube:
    server: FakeApiServer
    kubelet: Kubelet | None
    api: ApiClient
    namespace: str = NAMESPACE

    @property
    def url(self) -> str:
        return self.server.url


def client_configuration(url: str, token: str | None = None) -> Configuration:
    config = Configuration(host=url)
    if token is not None:
        config.api_key = {"BearerToken": token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
    return config


@asynccontextmanager
async def start_fake_kube(
    workdir: Path,
    *,
    token: str | None = None,
    pod_quota: int | None = None,
    history_size: int = 1000,
    bookmark_interval: float = 5.0,
    kubelet: bool = True,
    restart_backoff: float = 0.2,
    node_labels: dict[str, str] | None = None,
    capacity: dict[str, int] | None = None,
) -> AsyncIterator[FakeKube]:
    """A running fake cluster. `node_labels` and `capacity` (extended resources such as
    `{"nvidia.com/gpu": 2}`) describe the one node; `restart_backoff` is the first
    crash-loop back-off in seconds (doubling, at most 16 times that)."""
    server = FakeApiServer(
        token=token,
        pod_quota=pod_quota,
        history_size=history_size,
        bookmark_interval=bookmark_interval,
    )
    await server.start()
    node: Kubelet | None = None
    controllers: list[GarbageCollector | ServiceProxy] = []
    api = ApiClient(client_configuration(server.url, token))
    try:
        if kubelet:
            from tests.kube.controllers import GarbageCollector, ServiceProxy
            from tests.kube.kubelet import Kubelet

            controllers = [GarbageCollector(server), ServiceProxy(server)]
            for controller in controllers:
                controller.start()

            node = Kubelet(
                server,
                workdir,
                restart_backoff=restart_backoff,
                node_labels=node_labels,
                capacity=capacity,
            )
            node.start()
        yield FakeKube(server, node, api)
    finally:
        await api.close()
        for controller in controllers:
            await controller.stop()
        if node is not None:
            await node.stop()
        await server.stop()


@pytest.fixture
async def fake_kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    async with start_fake_kube(tmp_path / "kube") as kube:
        yield kube
