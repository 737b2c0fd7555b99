"""The fake Kubernetes API server and kubelet, through the real kubernetes_asyncio client.

What the spawner tests rely on: Status error shapes, resourceVersion
semantics, list/watch (resume, 410 after compaction, bookmarks, selectors),
graceful deletion, injected failures, and a kubelet that really runs a pod's
command and reports it like a real node does (tests.kube).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiException, CoreV1Api

from tests.kube import FakeKube, start_fake_kube
from tests.waits import eventually

NS = "atrium-test"


def pod(name: str = "", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"labels": labels or {}}
    if name:
        meta["name"] = name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "notebook", "image": "atrium/singleuser:1"}], **spec},
    }


def status_of(e: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(e.body)
    return body


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    """The API server alone: pods stay as the API left them (no kubelet)."""
    async with start_fake_kube(tmp_path, kubelet=False) as k:
        yield k


@pytest.fixture
def v1(kube: FakeKube) -> CoreV1Api:
    return CoreV1Api(kube.api)


async def next_events(stream: Any, count: int) -> list[tuple[str, str]]:
    """The next `count` events of a watch, as (type, name or resourceVersion)."""
    seen: list[tuple[str, str]] = []
    async with asyncio.timeout(20):
        while len(seen) < count:
            event = await stream.__anext__()
            raw = event["raw_object"]
            key = raw["metadata"].get("name") or raw["metadata"]["resourceVersion"]
            seen.append((event["type"], key))
    return seen


async def watch_open(kube: FakeKube, count: int = 1) -> None:
    """Wait until the server holds `count` open watches."""

    async def opened() -> bool:
        return len(kube.server.store.watchers) >= count

    await eventually(opened)


# -- objects, errors --------------------------------------------------------


async def test_create_get_fills_server_fields(v1: CoreV1Api) -> None:
    created = await v1.create_namespaced_pod(NS, pod("p1"))
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.namespace == NS
    assert created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always"
    other = await v1.create_namespaced_pod(NS, pod("p2"))
    assert int(other.metadata.resource_version) > int(created.metadata.resource_version)
    fetched = await v1.read_namespaced_pod("p1", NS)
    assert fetched.metadata.uid == created.metadata.uid


async def test_generate_name(v1: CoreV1Api) -> None:
    body = pod()
    body["metadata"]["generateName"] = "jupyter-"
    created = await v1.create_namespaced_pod(NS, body)
    assert created.metadata.name.startswith("jupyter-")
    assert len(created.metadata.name) == len("jupyter-") + 5


async def test_already_exists_is_a_409_status(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("p1"))
    with pytest.raises(ApiException) as err:
        await v1.create_namespaced_pod(NS, pod("p1"))
    assert err.value.status == 409
    body = status_of(err.value)
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["reason"] == "AlreadyExists"
    assert body["code"] == 409
    assert body["details"] == {"name": "p1", "kind": "pods"}
    assert body["message"] == 'pods "p1" already exists'


async def test_not_found_is_a_404_status(v1: CoreV1Api) -> None:
    for call in (
        v1.read_namespaced_pod("nope", NS),
        v1.delete_namespaced_pod("nope", NS),
        v1.read_namespaced_persistent_volume_claim("nope", NS),
    ):
        with pytest.raises(ApiException) as err:
            await call
        assert err.value.status == 404
        body = status_of(err.value)
        assert body["reason"] == "NotFound"
        assert body["code"] == 404
        assert body["message"].endswith('"nope" not found')


@pytest.mark.parametrize(
    ("name", "field"),
    [("", "metadata.name"), ("Bad_Name", "metadata.name"), ("-x", "metadata.name")],
)
async def test_invalid_names_are_422(v1: CoreV1Api, name: str, field: str) -> None:
    with pytest.raises(ApiException) as err:
        await v1.create_namespaced_pod(NS, pod(name))
    assert err.value.status == 422
    body = status_of(err.value)
    assert body["reason"] == "Invalid"
    assert body["details"]["kind"] == "Pod"
    assert body["details"]["causes"][0]["field"] == field
    assert "is invalid" in body["message"]


async def test_service_names_are_dns_1035_and_pods_need_containers(v1: CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        await v1.create_namespaced_service(
            NS, {"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 80}]}}
        )
    assert err.value.status == 422
    assert "DNS-1035" in status_of(err.value)["message"]
    svc = await v1.create_namespaced_service(
        NS, {"metadata": {"name": "abc"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert svc.spec.cluster_ip
    with pytest.raises(ApiException) as err:
        await v1.create_namespaced_pod(NS, {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert err.value.status == 422
    assert status_of(err.value)["details"]["causes"][0]["field"] == "spec.containers"


async def test_stale_resource_version_is_a_409_conflict(v1: CoreV1Api) -> None:
    created = await v1.create_namespaced_pod(NS, pod("p1", {"a": "1"}))
    first = created.to_dict()
    created.metadata.labels = {"a": "2"}
    updated = await v1.replace_namespaced_pod("p1", NS, created)
    assert updated.metadata.labels == {"a": "2"}
    assert int(updated.metadata.resource_version) > int(first["metadata"]["resource_version"])
    created.metadata.labels = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        await v1.replace_namespaced_pod("p1", NS, created)
    assert err.value.status == 409
    body = status_of(err.value)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


async def test_pod_spec_is_immutable_but_the_image(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("p1"))
    patched = await v1.patch_namespaced_pod(
        "p1", NS, {"spec": {"containers": [{"name": "notebook", "image": "atrium/singleuser:2"}]}}
    )
    assert patched.spec.containers[0].image == "atrium/singleuser:2"
    with pytest.raises(ApiException) as err:
        await v1.patch_namespaced_pod("p1", NS, {"spec": {"restartPolicy": "Never"}})
    assert err.value.status == 422
    body = status_of(err.value)
    assert body["reason"] == "Invalid"
    assert "pod updates may not change fields" in body["message"]


async def test_patch_merges_labels(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("p1", {"a": "1"}))
    patched = await v1.patch_namespaced_pod("p1", NS, {"metadata": {"labels": {"b": "2"}}})
    assert patched.metadata.labels == {"a": "1", "b": "2"}
    patched = await v1.patch_namespaced_pod(
        "p1", NS, [{"op": "remove", "path": "/metadata/labels/a"}]
    )
    assert patched.metadata.labels == {"b": "2"}


async def test_secret_string_data_becomes_data(v1: CoreV1Api) -> None:
    secret = await v1.create_namespaced_secret(
        NS, {"metadata": {"name": "s"}, "stringData": {"token": "abc"}}
    )
    assert base64.b64decode(secret.data["token"]) == b"abc"
    assert secret.type == "Opaque"


async def test_pvc_is_bound_and_deleted_at_once(v1: CoreV1Api) -> None:
    claim = {
        "metadata": {"name": "claim-u1"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    created = await v1.create_namespaced_persistent_volume_claim(NS, claim)
    assert created.status.phase == "Bound"
    await v1.delete_namespaced_persistent_volume_claim("claim-u1", NS)
    with pytest.raises(ApiException) as err:
        await v1.read_namespaced_persistent_volume_claim("claim-u1", NS)
    assert err.value.status == 404


async def test_unscheduled_pod_is_deleted_at_once(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("p1"))
    await v1.delete_namespaced_pod("p1", NS, grace_period_seconds=30)
    assert (await v1.list_namespaced_pod(NS)).items == []


async def test_bearer_token_required_when_set(tmp_path: Path) -> None:
    async with start_fake_kube(tmp_path, token="s3cret", kubelet=False) as kube:
        pods = await CoreV1Api(kube.api).list_namespaced_pod(NS)
        assert pods.items == []
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{kube.url}/api/v1/namespaces/{NS}/pods") as resp:
                assert resp.status == 401
                body = await resp.json()
            async with session.get(
                f"{kube.url}/api/v1/namespaces/{NS}/pods",
                headers={"Authorization": "Bearer wrong"},
            ) as resp:
                assert resp.status == 401
    assert body["reason"] == "Unauthorized"
    assert body["code"] == 401


async def test_pod_quota_is_a_403_exceeded_quota(tmp_path: Path) -> None:
    async with start_fake_kube(tmp_path, pod_quota=1, kubelet=False) as kube:
        v1 = CoreV1Api(kube.api)
        await v1.create_namespaced_pod(NS, pod("p1"))
        with pytest.raises(ApiException) as err:
            await v1.create_namespaced_pod(NS, pod("p2"))
        await v1.create_namespaced_pod("other", pod("p2"))  # quota is per namespace
    assert err.value.status == 403
    body = status_of(err.value)
    assert body["reason"] == "Forbidden"
    assert "exceeded quota" in body["message"]


async def test_injected_500_then_success(kube: FakeKube, v1: CoreV1Api) -> None:
    fault = kube.server.inject("POST", r"/pods$", status=500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            await v1.create_namespaced_pod(NS, pod("p1"))
        assert err.value.status == 500
        assert status_of(err.value)["reason"] == "InternalError"
    await v1.create_namespaced_pod(NS, pod("p1"))
    assert fault.hits == 2
    assert len(kube.server.calls("POST", "/pods$")) == 3


async def test_injected_failure_on_watches_only(kube: FakeKube, v1: CoreV1Api) -> None:
    kube.server.inject("GET", r"/pods$", status=503, watch=True)
    listed = await v1.list_namespaced_pod(NS)  # a list is not a watch: untouched
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_namespaced_pod,
            NS,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=30,
        )
        with pytest.raises(ApiException) as err:
            await stream.__anext__()
    assert err.value.status == 503
    assert str(err.value.reason).startswith("ServiceUnavailable:")


async def test_injected_delay_only_slows_a_request(kube: FakeKube, v1: CoreV1Api) -> None:
    fault = kube.server.inject("GET", r"/pods$", status=None, delay=0.2)
    assert (await v1.list_namespaced_pod(NS)).items == []
    assert fault.hits == 1


# -- list -------------------------------------------------------------------


async def test_label_selectors(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("a", {"app": "atrium", "user": "u1"}))
    await v1.create_namespaced_pod(NS, pod("b", {"app": "atrium", "user": "u2"}))
    await v1.create_namespaced_pod(NS, pod("c", {"app": "other"}))

    async def names(selector: str) -> list[str]:
        pods = await v1.list_namespaced_pod(NS, label_selector=selector)
        return [p.metadata.name for p in pods.items]

    assert await names("app=atrium") == ["a", "b"]
    assert await names("app==atrium,user!=u1") == ["b"]
    assert await names("user in (u1, u3)") == ["a"]
    assert await names("user notin (u1)") == ["b", "c"]
    assert await names("user") == ["a", "b"]
    assert await names("!user") == ["c"]
    assert await names("app in (atrium,other),!user") == ["c"]


async def test_field_selectors(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("a"))
    await v1.create_namespaced_pod(NS, pod("b"))
    await v1.create_namespaced_pod("elsewhere", pod("a"))
    pods = await v1.list_namespaced_pod(NS, field_selector="metadata.name=b")
    assert [p.metadata.name for p in pods.items] == ["b"]
    pods = await v1.list_namespaced_pod(NS, field_selector="status.phase!=Pending")
    assert pods.items == []
    everywhere = await v1.list_pod_for_all_namespaces(field_selector="metadata.name=a")
    assert sorted(p.metadata.namespace for p in everywhere.items) == ["atrium-test", "elsewhere"]
    with pytest.raises(ApiException) as err:
        await v1.list_namespaced_pod(NS, field_selector="spec.image=x")
    assert err.value.status == 400
    assert "field label not supported" in status_of(err.value)["message"]


async def test_event_field_selector_on_involved_object(v1: CoreV1Api) -> None:
    for name, target in (("e1", "p1"), ("e2", "p2")):
        await v1.create_namespaced_event(
            NS,
            {
                "metadata": {"name": name},
                "involvedObject": {"kind": "Pod", "name": target, "namespace": NS},
                "reason": "Scheduled",
                "message": "assigned",
            },
        )
    events = await v1.list_namespaced_event(
        NS, field_selector="involvedObject.kind=Pod,involvedObject.name=p2"
    )
    assert [e.metadata.name for e in events.items] == ["e2"]
    assert events.items[0].first_timestamp is not None


async def test_list_with_limit_and_continue(kube: FakeKube, v1: CoreV1Api) -> None:
    for i in range(5):
        await v1.create_namespaced_pod(NS, pod(f"p{i}"))
    first = await v1.list_namespaced_pod(NS, limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3
    second = await v1.list_namespaced_pod(NS, limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in second.items] == ["p2", "p3"]
    last = await v1.list_namespaced_pod(NS, limit=2, _continue=second.metadata._continue)
    assert [p.metadata.name for p in last.items] == ["p4"]
    assert last.metadata._continue is None
    await v1.create_namespaced_pod(NS, pod("p9"))
    kube.server.compact()
    with pytest.raises(ApiException) as err:
        await v1.list_namespaced_pod(NS, limit=2, _continue=first.metadata._continue)
    assert err.value.status == 410
    assert status_of(err.value)["reason"] == "Expired"


# -- watch ------------------------------------------------------------------


async def test_watch_from_list_resource_version(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("before"))
    listed = await v1.list_namespaced_pod(NS)
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_namespaced_pod,
            NS,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=30,
        )
        await v1.create_namespaced_pod(NS, pod("after"))
        await v1.patch_namespaced_pod("after", NS, {"metadata": {"labels": {"x": "1"}}})
        await v1.delete_namespaced_pod("after", NS)
        events = await next_events(stream, 3)
    assert events == [("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]


async def test_watch_without_resource_version_starts_with_current_state(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("a"))
    await v1.create_namespaced_pod(NS, pod("b"))
    async with watch.Watch() as w:
        stream = w.stream(v1.list_namespaced_pod, NS, timeout_seconds=30)
        assert await next_events(stream, 2) == [("ADDED", "a"), ("ADDED", "b")]
        await v1.create_namespaced_pod(NS, pod("c"))
        assert await next_events(stream, 1) == [("ADDED", "c")]


async def test_watch_resumes_from_a_resource_version(v1: CoreV1Api) -> None:
    first = await v1.create_namespaced_pod(NS, pod("a"))
    await v1.create_namespaced_pod(NS, pod("b"))
    await v1.create_namespaced_secret(NS, {"metadata": {"name": "s"}})  # another kind
    await v1.delete_namespaced_pod("a", NS)
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_namespaced_pod,
            NS,
            resource_version=first.metadata.resource_version,
            timeout_seconds=30,
        )
        assert await next_events(stream, 2) == [("ADDED", "b"), ("DELETED", "a")]
        assert w.resource_version is not None


async def test_watch_from_compacted_resource_version_is_410(kube: FakeKube, v1: CoreV1Api) -> None:
    first = await v1.create_namespaced_pod(NS, pod("a"))
    await v1.create_namespaced_pod(NS, pod("b"))
    kube.server.compact()
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_namespaced_pod,
            NS,
            resource_version=first.metadata.resource_version,
            timeout_seconds=30,
        )
        with pytest.raises(ApiException) as err:
            await stream.__anext__()
    assert err.value.status == 410
    assert str(err.value.reason).startswith("Expired: too old resource version")
    # the raw stream: HTTP 200 and an ERROR event carrying the Status
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{kube.url}/api/v1/namespaces/{NS}/pods",
            params={"watch": "true", "resourceVersion": first.metadata.resource_version},
        ) as resp,
    ):
        assert resp.status == 200
        line = await resp.content.readline()
    event = json.loads(line)
    assert event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status"
    assert event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"


async def test_small_history_window_expires_old_versions(tmp_path: Path) -> None:
    async with start_fake_kube(tmp_path, history_size=3, kubelet=False) as kube:
        v1 = CoreV1Api(kube.api)
        first = await v1.create_namespaced_pod(NS, pod("p0"))
        for i in range(1, 5):
            await v1.create_namespaced_pod(NS, pod(f"p{i}"))
        async with watch.Watch() as w:
            stream = w.stream(
                v1.list_namespaced_pod,
                NS,
                resource_version=first.metadata.resource_version,
                timeout_seconds=30,
            )
            with pytest.raises(ApiException) as err:
                await stream.__anext__()
        assert err.value.status == 410


async def test_watch_bookmarks(kube: FakeKube, v1: CoreV1Api) -> None:
    listed = await v1.list_namespaced_pod(NS)
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_namespaced_pod,
            NS,
            resource_version=listed.metadata.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=30,
        )
        await v1.create_namespaced_secret(NS, {"metadata": {"name": "s"}})  # moves the rv
        task = asyncio.ensure_future(stream.__anext__())
        await watch_open(kube)
        kube.server.send_bookmarks()
        async with asyncio.timeout(20):
            event = await task
    assert event["type"] == "BOOKMARK"
    assert event["raw_object"]["kind"] == "Pod"
    assert int(event["raw_object"]["metadata"]["resourceVersion"]) == kube.server.store.rv
    assert w.resource_version == event["raw_object"]["metadata"]["resourceVersion"]


async def test_watch_ends_at_timeout_with_a_bookmark(kube: FakeKube, v1: CoreV1Api) -> None:
    events = []
    async with watch.Watch() as w, asyncio.timeout(20):
        async for event in w.stream(
            v1.list_namespaced_pod, NS, allow_watch_bookmarks=True, timeout_seconds=1
        ):
            events.append(event["type"])
    assert events[-1] == "BOOKMARK"


async def test_watch_label_selector_transitions(v1: CoreV1Api) -> None:
    listed = await v1.list_namespaced_pod(NS)
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_namespaced_pod,
            NS,
            label_selector="app=atrium",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=30,
        )
        await v1.create_namespaced_pod(NS, pod("other", {"app": "x"}))
        await v1.create_namespaced_pod(NS, pod("mine", {"app": "atrium"}))
        await v1.patch_namespaced_pod("mine", NS, {"metadata": {"labels": {"app": "gone"}}})
        await v1.patch_namespaced_pod("other", NS, {"metadata": {"labels": {"app": "atrium"}}})
        events = await next_events(stream, 3)
    # leaving the selection reads as DELETED, entering it as ADDED
    assert events == [("ADDED", "mine"), ("DELETED", "mine"), ("ADDED", "other")]


async def test_all_namespaces_and_legacy_watch_paths(kube: FakeKube, v1: CoreV1Api) -> None:
    listed = await v1.list_pod_for_all_namespaces()
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_pod_for_all_namespaces,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=30,
        )
        await v1.create_namespaced_pod("one", pod("a"))
        await v1.create_namespaced_pod("two", pod("b"))
        assert await next_events(stream, 2) == [("ADDED", "a"), ("ADDED", "b")]
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{kube.url}/api/v1/watch/namespaces/two/pods",
            params={"resourceVersion": listed.metadata.resource_version},
        ) as resp,
    ):
        event = json.loads(await resp.content.readline())
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "b")
    namespace = await v1.read_namespace("anything")
    assert namespace.status.phase == "Active"


async def test_dropped_watch_breaks_the_stream(kube: FakeKube, v1: CoreV1Api) -> None:
    async with watch.Watch() as w:
        stream = w.stream(v1.list_namespaced_pod, NS, timeout_seconds=30)
        task = asyncio.ensure_future(stream.__anext__())
        await watch_open(kube)
        assert kube.server.drop_watches() == 1
        with pytest.raises(aiohttp.ClientPayloadError):
            async with asyncio.timeout(20):
                await task
