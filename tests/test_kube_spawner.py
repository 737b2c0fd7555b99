"""The Kubernetes spawner (spawners.kubernetes.KubeSpawner) against the fake API server
(tests.kube), through the real client.

`Node` plays the scheduler and the kubelet by script, so each test decides what
the cluster does with the pod (run it, fail to pull its image, find no node for
it, crash it), and a small HTTP server on 127.0.0.1 answers for the server
inside the pod.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spawners.base import SpawnError
from spawners.kubernetes import KubeSpawner, client, informer
from spawners.kubernetes.names import names_for
from tests.kube import FakeKube, start_fake_kube
from tests.kube.store import WatchEvent

NS = "atrium-test"
HANG = 30.0  # only guards against a hang


class Node:
    """The scheduler and kubelet, by script: `mode` says what happens to new pods."""

    def __init__(self, kube: FakeKube, mode: str = "run") -> None:
        self.store = kube.server.store
        self.mode = mode
        self.hold = False  # schedule new pods, but leave the rest until release()
        self._held: list[str] = []
        self._events = 0
        self.store.subscribers.append(self._changed)

    def _changed(self, plural: str, event: WatchEvent) -> None:
        if plural == "pods":
            name = event.obj["metadata"]["name"]
            asyncio.get_running_loop().call_soon(self._act, event.type, name)

    def _act(self, kind: str, name: str) -> None:
        pod = self.store.find("pods", NS, name)
        if pod is None:
            return
        if pod["metadata"].get("deletionTimestamp"):
            self.store.remove("pods", NS, name)  # the server exits at once
            return
        if kind != "ADDED":
            return
        uid = pod["metadata"]["uid"]
        if self.mode == "unschedulable":
            message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
            self._status(
                name, "Pending", [self._cond("PodScheduled", "False", "Unschedulable", message)]
            )
            self.event(name, uid, "FailedScheduling", message, "Warning")
            return
        self._schedule(name, uid)
        if self.hold:
            self._held.append(name)
        else:
            self._finish(name)

    def _finish(self, name: str) -> None:
        """What the kubelet makes of a scheduled pod, by `mode`."""
        pod = self.store.find("pods", NS, name)
        if pod is None:
            return
        uid = pod["metadata"]["uid"]
        if self.mode == "pull_error":
            waiting = {"reason": "ErrImagePull", "message": 'pull access denied for "img:1"'}
            self._status(name, "Pending", [self._cond("PodScheduled", "True")], waiting=waiting)
            self.event(name, uid, "Failed", 'Failed to pull image "img:1"', "Warning")
        elif self.mode == "crash":
            waiting = {"reason": "CrashLoopBackOff", "message": "back-off 10s"}
            last = {"terminated": {"exitCode": 3, "reason": "Error", "message": "bad config"}}
            self._status(
                name, "Running", [self._cond("PodScheduled", "True")], waiting=waiting, last=last
            )
            self.event(name, uid, "BackOff", "Back-off restarting failed container", "Warning")
        elif self.mode == "run":
            self.run(name)
        elif self.mode == "unready":  # running, its readiness probe not passed yet
            self._status(name, "Running", [self._cond("Ready", "False")], running=True)

    def _schedule(self, name: str, uid: str) -> None:
        def change(pod: dict[str, Any]) -> None:
            pod["spec"]["nodeName"] = "node-1"

        self.store.update("pods", NS, name, change)
        self.event(name, uid, "Scheduled", f"Successfully assigned {NS}/{name} to node-1")

    def release(self) -> None:
        for name in self._held:
            self._finish(name)
        self._held = []

    def run(self, name: str) -> None:
        pod = self.store.find("pods", NS, name)
        if pod is None:
            return
        uid = pod["metadata"]["uid"]
        self.event(name, uid, "Pulled", 'Container image "img:1" already present on machine')
        self.event(name, uid, "Started", "Started container notebook")
        conditions = [self._cond("PodScheduled", "True"), self._cond("Ready", "True")]
        self._status(name, "Running", conditions, running=True)

    def exit(self, name: str, code: int) -> None:
        terminated = {"exitCode": code, "reason": "Error"}

        def change(pod: dict[str, Any]) -> None:
            pod["status"]["phase"] = "Failed"
            pod["status"]["containerStatuses"] = [
                {"name": "notebook", "ready": False, "state": {"terminated": terminated}}
            ]

        self.store.update("pods", NS, name, change)

    @staticmethod
    def _cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
        cond = {"type": kind, "status": status}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def _status(
        self,
        name: str,
        phase: str,
        conditions: list[dict[str, str]],
        waiting: dict[str, str] | None = None,
        last: dict[str, Any] | None = None,
        running: bool = False,
    ) -> None:
        def change(pod: dict[str, Any]) -> None:
            status: dict[str, Any] = {"phase": phase, "conditions": conditions}
            if running:
                status["podIP"] = "127.0.0.1"
            state: dict[str, Any] = {"running": {}} if running else {"waiting": waiting or {}}
            container: dict[str, Any] = {"name": "notebook", "ready": running, "state": state}
            container["image"] = "img:1"
            if last:
                container["lastState"] = last
                container["restartCount"] = 2
            if waiting or running:
                status["containerStatuses"] = [container]
            pod["status"] = status

        self.store.update("pods", NS, name, change)

    def event(self, pod: str, uid: str, reason: str, message: str, kind: str = "Normal") -> None:
        self._events += 1
        self.store.create(
            "events",
            NS,
            {
                "metadata": {"name": f"{pod}.{self._events}"},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": NS, "uid": uid},
                "reason": reason,
                "message": message,
                "type": kind,
                "lastTimestamp": f"2026-01-01T00:00:{self._events:02d}Z",
            },
        )


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[FakeKube]:
    async with start_fake_kube(tmp_path, kubelet=False) as k:
        yield k
        await forget_connections()


async def forget_connections() -> None:
    """What a hub restart does to the spawner's shared parts."""
    await informer.stop_all()
    await client.close_all()


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    """Answers for the single-user server inside the pod."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def make(
    kube: FakeKube, port: int = 8888, user: str = "alice", server: str = "", **kw: Any
) -> KubeSpawner:
    spawner = KubeSpawner(
        user_name=user,
        server_name=server,
        k8s_api_url=kube.url,
        namespace=NS,
        image="img:1",
        port=port,
        start_timeout=kw.pop("start_timeout", 60),
        **kw,
    )
    prefix = f"/user/{user}/" + (f"{server}/" if server else "")
    spawner.env = {"JUPYTERHUB_SERVICE_PREFIX": prefix, "JUPYTERHUB_API_TOKEN": "token"}
    return spawner


async def messages(spawner: KubeSpawner) -> list[str]:
    return [event["message"] async for event in spawner.progress()]


async def progress_shows(spawner: KubeSpawner, text: str) -> None:
    """Wait until the start under way has reported a step containing `text`."""
    async with asyncio.timeout(HANG):
        async for event in spawner.progress():
            if text in event["message"]:
                return
    raise AssertionError(f"no progress step with {text!r}")


async def start(spawner: KubeSpawner) -> str:
    async with asyncio.timeout(HANG):
        return await spawner.start()


async def stop(spawner: KubeSpawner, now: bool = False) -> None:
    async with asyncio.timeout(HANG):
        await spawner.stop(now=now)


async def test_start_poll_stop(kube: FakeKube, server_port: int) -> None:
    node = Node(kube)
    spawner = make(kube, server_port)
    saved: list[dict[str, Any]] = []

    async def save_state(state: dict[str, Any]) -> None:
        saved.append(state)

    spawner.save_state = save_state
    node.hold = True
    task = asyncio.create_task(start(spawner))
    await asyncio.sleep(0)  # the start's first step: its progress begins
    # the pod's events are the spawn page's progress
    await progress_shows(spawner, f"Scheduled: Successfully assigned {NS}/atrium-alice")
    node.release()
    url = await task
    assert url == f"http://127.0.0.1:{server_port}"
    names = names_for("alice")
    assert spawner.get_state()["pod_name"] == names.pod
    assert saved[0]["pod_name"] == names.pod  # recorded before the wait for the pod
    store = kube.server.store
    pod = store.get("pods", NS, names.pod)
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_TOKEN"] == "token"
    assert env["JUPYTERHUB_SERVICE_URL"] == f"http://0.0.0.0:{server_port}/user/alice/"
    assert store.get("persistentvolumeclaims", NS, names.claim)["spec"]["resources"] == {
        "requests": {"storage": "10Gi"}
    }
    progress = await messages(spawner)
    assert progress[-1] == "server is ready"
    assert await spawner.poll() is None
    # poll reads the informer: no API request
    before = len(kube.server.requests)
    for _ in range(5):
        assert await spawner.poll() is None
    assert len(kube.server.requests) == before

    await stop(spawner)
    assert store.find("pods", NS, names.pod) is None
    assert await spawner.poll() == 0
    assert store.find("persistentvolumeclaims", NS, names.claim) is not None  # kept
    spawner.clear_state()
    assert spawner.get_state() == {"namespace": NS, "pvc_name": names.claim}
    assert node.mode == "run"


async def until_cached(claims: informer.Informer, name: str, check: Any) -> None:
    """Until the hub's cache (the shared informer) has the object `name` as `check` says."""
    changed = asyncio.Event()
    claims.add_waiter(name, changed)
    try:
        async with asyncio.timeout(HANG):
            while claims.stale or not check(claims.get(name)):
                changed.clear()
                await changed.wait()
    finally:
        claims.remove_waiter(name, changed)


async def test_the_volume_is_read_from_the_informer_and_waited_for_while_deleted(
    kube: FakeKube, server_port: int
) -> None:
    Node(kube)
    spawner = make(kube, server_port)
    await start(spawner)
    await stop(spawner)
    claim = names_for("alice").claim
    assert kube.server.calls("POST", "/persistentvolumeclaims")  # created the first time
    claims = informer.shared(
        await client.connect(spawner.k8s_api_url), NS, "persistentvolumeclaims"
    )
    # the next start knows the volume is there from the shared claim informer
    await until_cached(claims, claim, lambda obj: obj is not None)
    spawner.api_calls = 0
    posts = len(kube.server.calls("POST", "/persistentvolumeclaims"))
    await start(spawner)
    assert spawner.api_calls == 1  # the pod's create, nothing for the volume
    assert len(kube.server.calls("POST", "/persistentvolumeclaims")) == posts
    await stop(spawner)

    # a volume still being deleted (kept by its finalizer) is waited for, then made anew
    store = kube.server.store
    old_uid = store.get("persistentvolumeclaims", NS, claim)["metadata"]["uid"]
    store.mark_deleting("persistentvolumeclaims", NS, claim, 30)
    await until_cached(
        claims, claim, lambda obj: obj is not None and "deletionTimestamp" in obj["metadata"]
    )
    task = asyncio.create_task(start(spawner))
    await asyncio.sleep(0)  # the start's first step: its progress begins
    await progress_shows(spawner, f"waiting for the previous volume {claim} to be deleted")
    assert not task.done()
    assert store.find("pods", NS, names_for("alice").pod) is None  # no pod on a dying volume
    store.remove("persistentvolumeclaims", NS, claim)
    await task
    assert store.get("persistentvolumeclaims", NS, claim)["metadata"]["uid"] != old_uid
    await stop(spawner)


async def test_a_running_pod_is_asked_before_its_readiness_probe_passes(
    kube: FakeKube, server_port: int
) -> None:
    """At the pod's IP the hub asks the server as soon as its containers run; through a
    Service it needs the pod Ready, since the Service sends only to ready pods."""
    Node(kube, mode="unready")
    spawner = make(kube, server_port)
    assert await start(spawner) == f"http://127.0.0.1:{server_port}"
    await stop(spawner)
    behind_service = make(kube, server_port, services_enabled=True, start_timeout=3)
    with pytest.raises(SpawnError, match=r"not ready within 3 s \(it was Running, not ready"):
        await start(behind_service)
    await stop(behind_service, now=True)


async def test_poll_sees_the_server_exit(kube: FakeKube, server_port: int) -> None:
    node = Node(kube)
    spawner = make(kube, server_port, storage_capacity="")
    await start(spawner)
    changed = asyncio.Event()
    pods = informer.shared(await client.connect(kube.url), NS, "pods")
    pods.add_waiter(spawner.pod_name, changed)
    node.exit(spawner.pod_name, 3)
    async with asyncio.timeout(HANG):
        while await spawner.poll() is None:
            changed.clear()
            await changed.wait()
    assert await spawner.poll() == 3
    assert "persistentvolumeclaims" not in {
        c.path.split("/")[-1] for c in kube.server.calls("POST")
    }


async def test_image_pull_error_fails_fast(kube: FakeKube) -> None:
    Node(kube, "pull_error")
    spawner = make(kube)
    with pytest.raises(SpawnError, match=r"the image img:1 could not be pulled \(ErrImagePull\)"):
        await start(spawner)
    await stop(spawner, now=True)  # what the hub does after a failed start
    assert kube.server.store.find("pods", NS, names_for("alice").pod) is None


async def test_unschedulable_fails_fast(kube: FakeKube) -> None:
    Node(kube, "unschedulable")
    spawner = make(kube)
    with pytest.raises(SpawnError, match="no node can run the server: 0/3 nodes are available"):
        await start(spawner)
    await stop(spawner, now=True)
    assert kube.server.store.find("pods", NS, names_for("alice").pod) is None


async def test_crash_loop_fails_fast(kube: FakeKube) -> None:
    Node(kube, "crash")
    spawner = make(kube)
    with pytest.raises(SpawnError, match=r"exited with status 3: bad config, and keeps crashing"):
        await start(spawner)


async def test_exceeded_quota_is_a_clear_error(tmp_path: Path) -> None:
    async with start_fake_kube(tmp_path, kubelet=False, pod_quota=0) as kube:
        spawner = make(kube)
        with pytest.raises(SpawnError, match="the namespace's resource quota is exceeded"):
            await start(spawner)
        assert spawner.get_state().get("pod_name") is None  # nothing to stop
        await forget_connections()


async def test_start_timeout(kube: FakeKube) -> None:
    Node(kube, "hold")
    spawner = make(kube, start_timeout=3)
    with pytest.raises(SpawnError, match=r"was not ready within 3 s \(it was Pending"):
        await start(spawner)


@pytest.mark.parametrize("history_lost", [False, True])
async def test_watch_dropped_mid_spawn(
    kube: FakeKube, server_port: int, history_lost: bool
) -> None:
    node = Node(kube)
    node.hold = True
    spawner = make(kube, server_port)
    task = asyncio.create_task(start(spawner))
    pods = informer.shared(await client.connect(kube.url), NS, "pods")
    scheduled = asyncio.Event()
    name = names_for("alice").pod
    pods.add_waiter(name, scheduled)
    async with asyncio.timeout(HANG):
        while ((pods.get(name) or {}).get("spec") or {}).get("nodeName") is None:
            scheduled.clear()
            await scheduled.wait()
    assert kube.server.drop_watches() >= 1
    node.release()  # the pod runs while the watch is down
    if history_lost:
        kube.server.compact()  # the resume gets 410 Gone: the informer lists again
    assert await task == f"http://127.0.0.1:{server_port}"
    # resumed from its resourceVersion, nothing missed; or listed again after a 410
    assert pods.list_calls == (2 if history_lost else 1)


async def test_api_500s_are_retried(kube: FakeKube, server_port: int) -> None:
    Node(kube)
    kube.server.inject("GET", "/pods", status=500, times=2)  # the informer's first lists
    kube.server.inject("POST", "/pods", status=500, times=1)  # the pod's creation
    kube.server.inject("POST", "/persistentvolumeclaims", status=503, times=1)
    spawner = make(kube, server_port)
    assert await start(spawner) == f"http://127.0.0.1:{server_port}"
    assert len(kube.server.calls("POST", "/pods$")) == 2


async def test_adoption_after_a_hub_restart(kube: FakeKube, server_port: int) -> None:
    Node(kube)
    first = make(kube, server_port, server="lab")
    await start(first)
    state = first.get_state()
    await forget_connections()  # the hub restarts
    second = make(kube, server_port, server="lab")
    second.load_state(state)
    assert await second.poll() is None
    await stop(second)
    assert kube.server.store.find("pods", NS, state["pod_name"]) is None
    assert await second.poll() == 0


async def test_a_lost_state_is_found_again_by_label(kube: FakeKube, server_port: int) -> None:
    """A server the hub records as running, without its state: poll finds the pod by its
    labels (in the informer) and keeps it, and a stop ends it."""
    Node(kube)
    await start(make(kube, server_port, server="lab"))
    other = make(kube, server_port, user="bob", server="lab")
    await start(other)
    await forget_connections()
    lost = make(kube, server_port, server="lab")
    lost.load_state({})
    assert await lost.poll() is None
    assert lost.pod_name == names_for("alice", "lab").pod
    await stop(lost)
    assert await lost.poll() == 0
    assert await make(kube, server_port, user="nobody").poll() == 0
    assert kube.server.store.find("pods", NS, names_for("bob", "lab").pod) is not None


async def test_unrecorded_start_is_found_by_label(kube: FakeKube, server_port: int) -> None:
    """A hub that died between creating the pod and saving the state: its successor's
    stop(now=True) of the unfinished start still finds and deletes the pod."""
    Node(kube)
    first = make(kube, server_port)
    await start(first)
    await forget_connections()
    second = make(kube, server_port)
    second.load_state({})
    await stop(second, now=True)
    assert kube.server.store.find("pods", NS, names_for("alice").pod) is None


async def test_existing_pod_of_this_server_is_adopted(kube: FakeKube, server_port: int) -> None:
    Node(kube)
    first = make(kube, server_port)
    await start(first)
    second = make(kube, server_port)  # its state was lost
    assert await start(second) == f"http://127.0.0.1:{server_port}"
    assert any("adopting" in m for m in await messages(second))
    assert second.pod_uid == first.pod_uid


async def test_foreign_pod_with_the_name_is_refused(kube: FakeKube) -> None:
    name = names_for("alice").pod
    kube.server.store.create(
        "pods",
        NS,
        {"metadata": {"name": name}, "spec": {"containers": [{"name": "x", "image": "x:1"}]}},
    )
    spawner = make(kube)
    with pytest.raises(SpawnError, match="belongs to another server"):
        await start(spawner)
    await stop(spawner, now=True)
    assert kube.server.store.find("pods", NS, name) is not None  # not ours: left alone


async def test_user_volume_deleted_with_the_user_only_when_configured(
    kube: FakeKube, server_port: int
) -> None:
    Node(kube)
    claim = names_for("alice").claim
    keep = make(kube, server_port)
    await start(keep)
    await stop(keep)
    await keep.delete_forever()
    assert kube.server.store.find("persistentvolumeclaims", NS, claim) is not None
    delete = make(kube, server_port, delete_pvc_with_user=True)
    delete.load_state(keep.get_state())
    await delete.delete_forever()
    assert kube.server.store.find("persistentvolumeclaims", NS, claim) is None


async def test_unknown_profile_refused_before_anything_is_created(kube: FakeKube) -> None:
    spawner = make(kube, profile_list=[{"display_name": "Small"}])
    spawner.user_options = {"profile": "huge"}
    with pytest.raises(SpawnError, match="Unknown profile 'huge'"):
        await start(spawner)
    assert kube.server.calls("POST") == []


async def test_start_timeout_names_an_unreachable_api(kube: FakeKube) -> None:
    Node(kube)
    kube.server.inject("GET", "/pods", status=500, times=None)
    spawner = make(kube, start_timeout=3)
    with pytest.raises(SpawnError, match=r"could not be watched: 500"):
        await start(spawner)


async def test_per_pod_service(kube: FakeKube, server_port: int) -> None:
    """With services_enabled the server is reached through its Service (here a cluster IP
    nothing answers on), which is owned by the pod and deleted with it."""
    Node(kube)
    spawner = make(kube, server_port, services_enabled=True, http_timeout=0.5)
    with pytest.raises(SpawnError, match="did not answer"):
        await start(spawner)
    name = names_for("alice").service
    service = kube.server.store.get("services", NS, name)
    assert service["spec"]["selector"]["hub.jupyter.org/username"] == "alice"
    assert service["spec"]["ports"][0]["port"] == server_port
    assert service["metadata"]["ownerReferences"][0]["uid"] == spawner.pod_uid
    await stop(spawner, now=True)
    assert kube.server.store.find("services", NS, name) is None


async def test_spawns_share_one_informer_and_make_few_api_calls(
    kube: FakeKube, server_port: int
) -> None:
    Node(kube)
    users = ["ann", "bob", "cy"]
    spawners = [make(kube, server_port, user=u) for u in users]
    async with asyncio.timeout(HANG):
        await asyncio.gather(*(s.start() for s in spawners))
    for s in spawners:
        assert await s.poll() is None
    # per spawn: create the volume claim, create the pod; nothing polls
    assert [s.api_calls for s in spawners] == [2, 2, 2]
    pod_lists = [c for c in kube.server.calls("GET", "/pods$") if not c.watch]
    assert len(pod_lists) == 1  # one list (then a watch) for every server together
    await asyncio.gather(*(stop(s) for s in spawners))
    assert kube.server.store.items("pods", NS) == []


async def test_every_pod_setting_is_accepted_by_the_api(kube: FakeKube, server_port: int) -> None:
    Node(kube)
    spawner = make(
        kube,
        server_port,
        server="gpu",
        storage_per_server=True,
        image_pull_secrets=["regcred"],
        cpu_guarantee=0.5,
        cpu_limit=2.0,
        mem_guarantee="1G",
        mem_limit="2G",
        extra_resource_limits={"nvidia.com/gpu": "1"},
        node_selector={"pool": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        affinity={"podAntiAffinity": {}},
        service_account="notebook",
        extra_labels={"app.kubernetes.io/instance": "atrium"},
        priority_class_name="users",
        init_containers=[{"name": "init", "image": "busybox:1", "command": ["true"]}],
        extra_containers=[{"name": "side", "image": "busybox:1"}],
        volumes=[{"name": "data", "emptyDir": {}}],
        volume_mounts=[{"name": "data", "mountPath": "/data"}],
        read_only_root_filesystem=True,
    )
    await start(spawner)
    names = names_for("alice", "gpu", claim_per_server=True)
    assert spawner.get_state()["pvc_name"] == names.claim != names_for("alice").claim
    pod = kube.server.store.get("pods", NS, names.pod)
    assert pod["metadata"]["labels"]["hub.jupyter.org/servername"] == "gpu"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    await stop(spawner)


async def test_stop_leaves_a_newer_pod_of_the_same_name_alone(
    kube: FakeKube, server_port: int
) -> None:
    Node(kube)
    old = make(kube, server_port)
    await start(old)
    state = old.get_state()
    newer = make(kube, server_port)  # e.g. started by another hub meanwhile
    await stop(old)
    await start(newer)
    stale = make(kube, server_port)
    stale.load_state(state)  # remembers the first pod's uid
    await stop(stale)
    assert kube.server.store.find("pods", NS, state["pod_name"]) is not None
    assert await newer.poll() is None


async def test_stop_retries_api_500s(kube: FakeKube, server_port: int) -> None:
    Node(kube)
    spawner = make(kube, server_port)
    await start(spawner)
    kube.server.inject("DELETE", "/pods/", status=500, times=1)
    await stop(spawner)
    assert kube.server.store.find("pods", NS, spawner.pod_name) is None
    assert len(kube.server.calls("DELETE", "/pods/")) == 2
