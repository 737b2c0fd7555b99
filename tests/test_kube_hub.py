"""The hub with the Kubernetes spawner, end to end against the fake API server and its
simulated node: a user's server starts as a pod through the REST API, its real
single-user server checks the user's token with the hub and runs a kernel, and a
stop deletes the pod."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from spawners.kubernetes import client, informer
from tests.conftest import HubFactory, RunningHub, expect_error
from tests.kube import FakeKube, start_fake_kube
from tests.kube.kubelet import PORT_ANNOTATION
from tests.test_kube_pods import SERVER

HANG = 90.0  # only guards against a hang


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    """The fake cluster; at the end the hub's shared watches and API connections go first.
    (Ask for it before hub_factory, so that the hub stops before the cluster does.)"""
    async with start_fake_kube(tmp_path / "node") as fake:
        try:
            yield fake
        finally:
            await informer.stop_all()
            await client.close_all()


async def start(hub: RunningHub, path: str, options: dict[str, Any] | None = None) -> None:
    """Start the server at `path` (e.g. /users/alice/server) and follow it until it is up."""
    r = await hub.api("POST", path, options)
    assert r.status in (201, 202), r.body
    progress = await hub.api("GET", f"{path}/progress")
    assert b'"ready": true' in progress.body or b'"ready":true' in progress.body, progress.body


def node_config(kube: FakeKube) -> str:
    """The hub's spawner on the fake API server and its simulated node, running SERVER."""
    return (
        "c.Hub.spawner_class = 'tests.test_kube_pods.NodeSpawner'\n"
        f"c.KubeSpawner.k8s_api_url = {kube.url!r}\n"
        f"c.KubeSpawner.namespace = {kube.namespace!r}\n"
        f"c.KubeSpawner.cmd = {SERVER!r}\n"
    )


async def test_a_users_server_runs_in_a_pod_and_runs_a_kernel(
    kube: FakeKube, hub_factory: HubFactory
) -> None:
    config = node_config(kube) + "c.KubeSpawner.image = 'atrium/singleuser:1'\n"
    hub = await hub_factory(config=config)
    await hub.add_user("alice")
    await start(hub, "/users/alice/server")
    pods = kube.server.store.items("pods", kube.namespace)
    assert [p["metadata"]["name"] for p in pods] == ["atrium-alice"]
    port = pods[0]["metadata"]["annotations"][PORT_ANNOTATION]
    server = f"http://127.0.0.1:{port}/user/alice/api"
    token = await hub.token_for("alice")
    headers = {"Authorization": f"token {token}"}
    async with asyncio.timeout(HANG), aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{server}/kernels") as r2:
            assert r2.status == 200
            assert await r2.json() == []
        async with http.post(f"{server}/kernels", json={}) as r3:
            assert r3.status == 201, await r3.text()
            kernel: dict[str, Any] = await r3.json()
        async with http.delete(f"{server}/kernels/{kernel['id']}") as r4:
            assert r4.status == 204
    stopped = await hub.api("DELETE", "/users/alice/server")
    assert stopped.status == 204, stopped.body
    assert kube.server.store.items("pods", kube.namespace) == []
    # the hub's shutdown ends the shared watches and API connections
    assert informer._shared
    assert client._connections
    await hub.state.orchestrator.shutdown()
    assert not informer._shared
    assert not client._connections


async def test_a_profile_chosen_through_the_api_is_checked(
    kube: FakeKube, hub_factory: HubFactory
) -> None:
    config = (
        node_config(kube) + "c.KubeSpawner.profile_list = [\n"
        "    {'display_name': 'Small', 'slug': 'small'},\n"
        "    {'display_name': 'GPU', 'slug': 'gpu', 'allowed_groups': ['ml']},\n"
        "]\n"
    )
    hub = await hub_factory(config=config)
    await hub.add_user("alice")
    for profile, message in [
        ("huge", "Unknown profile 'huge'; the choices are: small"),
        ("gpu", "The profile 'GPU' is not available to you"),
    ]:
        r = await hub.api("POST", "/users/alice/server", {"profile": profile})
        # refused before anything starts: no pending server, no pod
        expect_error(r, 400, message)
    assert kube.server.store.items("pods", kube.namespace) == []
    assert (await hub.api("GET", "/users/alice")).json()["pending"] is None
    # in the group the profile is for, alice may choose it
    assert (await hub.api("POST", "/groups/ml", {"users": ["alice"]})).status == 201
    await start(hub, "/users/alice/server", {"profile": "gpu"})
    assert [p["metadata"]["name"] for p in kube.server.store.items("pods", kube.namespace)]


async def test_the_users_volume_goes_with_the_user_when_configured(
    kube: FakeKube, hub_factory: HubFactory
) -> None:
    config = node_config(kube) + "c.KubeSpawner.delete_pvc_with_user = True\n"
    hub = await hub_factory(config=config)
    await hub.add_user("alice")
    await start(hub, "/users/alice/server")
    claims = kube.server.store.items("persistentvolumeclaims", kube.namespace)
    assert len(claims) == 1
    # deleting the user stops the server, then deletes the volume
    assert (await hub.api("DELETE", "/users/alice")).status == 204
    assert kube.server.store.items("pods", kube.namespace) == []
    assert kube.server.store.items("persistentvolumeclaims", kube.namespace) == []


def claim_names(kube: FakeKube) -> list[str]:
    claims = kube.server.store.items("persistentvolumeclaims", kube.namespace)
    return sorted(c["metadata"]["name"] for c in claims)


async def test_named_servers_own_volumes_go_with_them(
    kube: FakeKube, hub_factory: HubFactory
) -> None:
    config = (
        node_config(kube) + "c.KubeSpawner.delete_pvc_with_user = True\n"
        "c.KubeSpawner.storage_per_server = True\n"
    )
    hub = await hub_factory(config=config, allow_named_servers=True)
    await hub.add_user("alice")
    for path in ("/users/alice/server", "/users/alice/servers/proj"):
        await start(hub, path)
    assert claim_names(kube) == ["claim-alice", "claim-alice---proj"]
    # stopped, the named server keeps its volume; removed, it goes with it
    r = await hub.api("DELETE", "/users/alice/servers/proj")
    assert r.status == 204, r.body
    assert claim_names(kube) == ["claim-alice", "claim-alice---proj"]
    r = await hub.api("DELETE", "/users/alice/servers/proj", {"remove": True})
    assert r.status == 204, r.body
    assert claim_names(kube) == ["claim-alice"]
    # a named server removed while running: stopped, then its volume deleted
    await start(hub, "/users/alice/servers/lab2")
    assert claim_names(kube) == ["claim-alice", "claim-alice---lab2"]
    r = await hub.api("DELETE", "/users/alice/servers/lab2", {"remove": True})
    assert r.status == 204, r.body
    assert claim_names(kube) == ["claim-alice"]
    # every volume left goes with the user, the running server's too
    await start(hub, "/users/alice/servers/lab3")
    assert claim_names(kube) == ["claim-alice", "claim-alice---lab3"]
    assert (await hub.api("DELETE", "/users/alice")).status == 204
    assert claim_names(kube) == []
    assert kube.server.store.items("pods", kube.namespace) == []


async def test_a_shared_volume_stays_until_the_user_goes(
    kube: FakeKube, hub_factory: HubFactory, caplog: pytest.LogCaptureFixture
) -> None:
    config = node_config(kube) + "c.KubeSpawner.delete_pvc_with_user = True\n"
    hub = await hub_factory(config=config, allow_named_servers=True)
    for user in ("alice", "bob"):
        await hub.add_user(user)
    await start(hub, "/users/alice/servers/proj")
    assert claim_names(kube) == ["claim-alice"]
    r = await hub.api("DELETE", "/users/alice/servers/proj", {"remove": True})
    assert r.status == 204, r.body
    assert claim_names(kube) == ["claim-alice"]  # the user's, shared: kept
    await start(hub, "/users/bob/server")
    assert claim_names(kube) == ["claim-alice", "claim-bob"]
    # the user's deletion removes it (the default server never ran)
    assert (await hub.api("DELETE", "/users/alice")).status == 204
    assert claim_names(kube) == ["claim-bob"]
    # the API failing to delete a volume does not keep the user: it is logged
    kube.server.inject("DELETE", "/persistentvolumeclaims/", status=500, times=None)
    assert (await hub.api("DELETE", "/users/bob")).status == 204
    assert (await hub.api("GET", "/users/bob")).status == 404
    assert claim_names(kube) == ["claim-bob"]
    assert any(
        "bob" in rec.getMessage() and "Removing what" in rec.getMessage() for rec in caplog.records
    )
