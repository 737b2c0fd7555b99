"""The shared list+watch informer (spawners.kubernetes.informer) against the fake
Kubernetes API server (tests.kube): resume, bookmarks, 410 Gone, backoff, staleness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from spawners.kubernetes.client import Connection
from spawners.kubernetes.informer import Informer, backoff_delay, involved_pod_key
from tests.kube import FakeKube, start_fake_kube

NS = "atrium-test"
# only guards against a hang: every wait ends on a change the informer reports
HANG = 20.0


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    async with start_fake_kube(tmp_path, kubelet=False, bookmark_interval=3600) as k:
        yield k


@pytest.fixture
async def pods(kube: FakeKube) -> AsyncIterator[Informer]:
    informer = make(kube)
    informer.start()
    assert await informer.wait_synced(HANG)
    yield informer
    await informer.stop()


def make(kube: FakeKube, kind: str = "pods", **options: Any) -> Informer:
    core = Connection(kube.api).core
    operation = {
        "pods": core.list_namespaced_pod,
        "events": core.list_namespaced_event,
    }[kind]
    options.setdefault("backoff_base", 0.01)
    options.setdefault("backoff_cap", 0.05)
    return Informer(operation, NS, kind, **options)


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "img:1"}]},
    }


async def until(informer: Informer, condition: Callable[[], bool]) -> None:
    """Wait until `condition` holds, re-checking whenever the informer reports anything."""
    changed = asyncio.Event()
    informer.add_any_waiter(changed)
    try:
        async with asyncio.timeout(HANG):
            while not condition():
                changed.clear()
                await changed.wait()
    finally:
        informer.remove_any_waiter(changed)


def watch_versions(kube: FakeKube) -> list[str]:
    """The resourceVersion of every pod watch request, in order."""
    versions = []
    for call in kube.server.calls("GET", "/pods"):
        query = parse_qs(call.query)
        if call.watch or query.get("watch") == ["true"]:
            versions.append(query.get("resourceVersion", [""])[0])
    return versions


def create(kube: FakeKube, name: str, labels: dict[str, str] | None = None) -> None:
    kube.server.store.create("pods", NS, pod(name, labels))


async def test_lists_then_watches(kube: FakeKube) -> None:
    create(kube, "before")
    informer = make(kube)
    informer.start()
    try:
        assert informer.stale
        assert await informer.wait_synced(HANG)
        assert not informer.stale
        assert informer.get("before") is not None
        listed = informer.resource_version
        create(kube, "after")
        await until(informer, lambda: informer.get("after") is not None)
        assert informer.list_calls == 1
        assert watch_versions(kube)[0] == listed
    finally:
        await informer.stop()
    assert informer.stale


async def test_waiters_wake_on_their_objects_changes(kube: FakeKube, pods: Informer) -> None:
    mine = asyncio.Event()
    pods.add_waiter("mine", mine)
    create(kube, "other")
    await until(pods, lambda: pods.get("other") is not None)
    assert not mine.is_set()
    create(kube, "mine")
    async with asyncio.timeout(HANG):
        await mine.wait()
    pods.remove_waiter("mine", mine)
    kube.server.store.remove("pods", NS, "mine")
    await until(pods, lambda: pods.get("mine") is None)


async def test_resumes_from_the_last_version_after_a_dropped_watch(
    kube: FakeKube, pods: Informer
) -> None:
    create(kube, "a")
    await until(pods, lambda: pods.get("a") is not None)
    seen = pods.resource_version
    assert kube.server.drop_watches() == 1
    create(kube, "b")  # while the watch is down, or just after: not missed either way
    await until(pods, lambda: pods.get("b") is not None)
    assert pods.list_calls == 1  # resumed, not listed again
    assert seen in watch_versions(kube)[1:]


async def test_bookmarks_move_the_version_on(kube: FakeKube, pods: Informer) -> None:
    create(kube, "a")  # seen through the watch: the watch is open
    await until(pods, lambda: pods.get("a") is not None)
    # a write of another kind moves the global version on without a pod event
    kube.server.store.create("configmaps", NS, {"metadata": {"name": "cm"}, "data": {}})
    before = pods.resource_version
    kube.server.send_bookmarks()
    await until(pods, lambda: pods.resource_version != before)
    assert pods.resource_version == str(kube.server.store.rv)
    kube.server.drop_watches()
    create(kube, "c")
    await until(pods, lambda: pods.get("c") is not None)
    assert watch_versions(kube)[-1] == str(kube.server.store.rv - 1)


async def test_relists_on_410_gone_and_wakes_changed_objects(
    kube: FakeKube, pods: Informer
) -> None:
    create(kube, "stays")
    create(kube, "goes")
    await until(pods, lambda: pods.get("goes") is not None)
    goes = asyncio.Event()
    pods.add_waiter("goes", goes)
    # the watch goes down; meanwhile a pod is deleted and the history compacted
    kube.server.drop_watches()
    kube.server.store.remove("pods", NS, "goes")
    kube.server.store.compact()
    await until(pods, lambda: pods.list_calls == 2 and not pods.stale)
    assert pods.get("goes") is None
    assert pods.get("stays") is not None
    assert goes.is_set()


async def test_backs_off_on_errors_and_says_it_is_stale(kube: FakeKube) -> None:
    kube.server.inject("GET", "/pods", status=500, times=3)
    informer = make(kube)
    informer.start()
    try:
        assert await informer.wait_synced(HANG)
        assert informer.list_calls == 4
        assert "500" in informer.last_error
        # the API goes away: the cache is kept, but known to be stale
        fault = kube.server.inject("GET", "/pods", status=503, times=None)
        kube.server.drop_watches()
        await until(informer, lambda: informer.stale)
        assert informer.synced
        fault.times = 0  # the API is back
        create(kube, "later")
        await until(informer, lambda: not informer.stale and informer.get("later") is not None)
    finally:
        await informer.stop()


async def test_lists_in_pages(kube: FakeKube) -> None:
    for i in range(7):
        create(kube, f"p{i}")
    informer = make(kube, page_size=3)
    informer.start()
    try:
        assert await informer.wait_synced(HANG)
        assert informer.list_calls == 3
        assert sorted(informer.items) == [f"p{i}" for i in range(7)]
    finally:
        await informer.stop()


async def test_label_selection(kube: FakeKube) -> None:
    informer = make(kube, labels={"app": "atrium"})
    informer.start()
    try:
        assert await informer.wait_synced(HANG)
        create(kube, "theirs", {"app": "other"})
        create(kube, "ours", {"app": "atrium"})
        await until(informer, lambda: informer.get("ours") is not None)
        assert informer.get("theirs") is None
    finally:
        await informer.stop()


async def test_events_are_found_by_the_pod_they_are_about(kube: FakeKube) -> None:
    informer = make(kube, "events", key=involved_pod_key)
    informer.start()
    try:
        assert await informer.wait_synced(HANG)
        for i, about in enumerate(["web", "web", "db"]):
            kube.server.store.create(
                "events",
                NS,
                {
                    "metadata": {"name": f"e{i}"},
                    "involvedObject": {"kind": "Pod", "name": about},
                    "reason": "Scheduled",
                    "message": f"event {i}",
                },
            )
        await until(informer, lambda: len(informer.items) == 3)
        assert [e["message"] for e in informer.for_key("web")] == ["event 0", "event 1"]
        assert len(informer.for_key("db")) == 1
    finally:
        await informer.stop()


def test_backoff_is_bounded_and_jittered() -> None:
    for failures in range(1, 60):
        delay = backoff_delay(failures, 0.2, 30.0)
        step = min(30.0, 0.2 * 2 ** (failures - 1))
        assert step * 0.5 <= delay <= step
    assert backoff_delay(100, 0.2, 30.0) <= 30.0
