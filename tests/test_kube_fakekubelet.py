"""The simulated kubelet (tests.kube.kubelet) through the fake API server and kubernetes_asyncio.

A pod's command really runs as a local process and the pod reports what a
real node reports: phases, container states, conditions, podIP, events; and
each failure mode a spawner must recognise (image pull error, unschedulable,
crash loop) looks as it does on a real cluster.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiException, CoreV1Api, V1Pod

from tests.kube import FakeKube, fake_kube, start_fake_kube
from tests.kube.kubelet import FAILURE_ANNOTATION, PORT_ANNOTATION
from tests.waits import eventually

__all__ = ["fake_kube"]  # the fixture, used below

NS = "atrium-test"
PY = sys.executable


def pod(
    name: str,
    command: list[str] | None = None,
    image: str = "atrium/singleuser:1",
    port: int | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "notebook", "image": image}
    if command is not None:
        container["command"] = command
    if port is not None:
        container["ports"] = [{"containerPort": port, "name": "notebook"}]
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"containers": [container], **spec},
    }


async def until(v1: CoreV1Api, name: str, check: Callable[[V1Pod], bool]) -> V1Pod:
    """Read the pod until `check` holds (ends on the change, never on a clock)."""
    found: list[V1Pod] = []

    async def ok() -> bool:
        current = await v1.read_namespaced_pod(name, NS)
        found[:] = [current]
        return check(current)

    await eventually(ok, timeout=60)
    return found[0]


async def gone(v1: CoreV1Api, name: str) -> None:
    async def missing() -> bool:
        try:
            await v1.read_namespaced_pod(name, NS)
        except ApiException as e:
            return e.status == 404
        return False

    await eventually(missing, timeout=60)


async def reasons(v1: CoreV1Api, name: str) -> list[tuple[str, str, str]]:
    events = await v1.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}")
    return [(e.reason, e.type, e.source.component) for e in events.items]


def waiting_reason(p: V1Pod) -> str | None:
    statuses = p.status.container_statuses or []
    state = statuses[0].state if statuses else None
    return state.waiting.reason if state is not None and state.waiting is not None else None


@pytest.fixture
def v1(fake_kube: FakeKube) -> CoreV1Api:
    return CoreV1Api(fake_kube.api)


async def test_runs_the_command_and_reports_running_with_pod_ip(
    fake_kube: FakeKube, v1: CoreV1Api
) -> None:
    # the kubelet turns 0.0.0.0 (all of the pod's addresses) into 127.0.0.1
    command = [PY, "-m", "http.server", "8888", "--bind", "0.0.0.0"]  # noqa: S104
    body = pod("web", command, port=8888)
    body["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"path": "/", "port": 8888}}
    await v1.create_namespaced_pod(NS, body)
    running = await until(
        v1,
        "web",
        lambda p: p.status.phase == "Running" and bool(p.status.container_statuses[0].ready),
    )
    assert running.status.pod_ip == "127.0.0.1"
    assert running.spec.node_name == "atrium-node-1"
    status = running.status.container_statuses[0]
    assert status.state.running.started_at is not None
    assert status.restart_count == 0
    conditions = {c.type: c.status for c in running.status.conditions}
    assert conditions["Ready"] == "True"
    assert conditions["PodScheduled"] == "True"
    port = int(running.metadata.annotations[PORT_ANNOTATION])
    assert port != 8888

    # ready only once the readiness probe's port answers: no retry needed here
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{running.status.pod_ip}:{port}/") as resp,
    ):
        assert resp.status == 200
    seen = await reasons(v1, "web")
    assert [r for r, _, _ in seen] == ["Scheduled", "Pulled", "Created", "Started"]
    assert seen[0][2] == "default-scheduler"
    assert seen[1][2] == "kubelet"


async def test_environment_secrets_and_logs(v1: CoreV1Api) -> None:
    await v1.create_namespaced_secret(NS, {"metadata": {"name": "tok"}, "stringData": {"t": "s3"}})
    body = pod(
        "envpod",
        [PY, "-c", "import os; print(os.environ['A'], os.environ['T'], os.environ['POD'])"],
        restartPolicy="Never",
    )
    body["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "plain"},
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    await v1.create_namespaced_pod(NS, body)
    done = await until(v1, "envpod", lambda p: p.status.phase in ("Succeeded", "Failed"))
    assert done.status.phase == "Succeeded"
    terminated = done.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    assert terminated.reason == "Completed"
    logs = await v1.read_namespaced_pod_log("envpod", NS)
    assert logs.strip() == "plain s3 envpod"


async def test_port_substitution_in_args_and_env(v1: CoreV1Api) -> None:
    script = "import os, sys; print(sys.argv[1:], os.environ['URL'], os.environ['TOKEN'])"
    body = pod("ports", [PY, "-c", script, "--port=8888", "--ip=0.0.0.0"], port=8888)
    body["spec"]["restartPolicy"] = "Never"
    body["spec"]["containers"][0]["env"] = [
        {"name": "URL", "value": "http://0.0.0.0:8888/user/a/"},
        {"name": "TOKEN", "value": "8888abc"},
    ]
    await v1.create_namespaced_pod(NS, body)
    done = await until(v1, "ports", lambda p: p.status.phase in ("Succeeded", "Failed"))
    port = done.metadata.annotations[PORT_ANNOTATION]
    logs = await v1.read_namespaced_pod_log("ports", NS)
    assert logs.strip() == (
        f"['--port={port}', '--ip=127.0.0.1'] http://127.0.0.1:{port}/user/a/ 8888abc"
    )


async def test_exit_code_fails_a_never_restarting_pod(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(
        NS, pod("bad", [PY, "-c", "raise SystemExit(3)"], restartPolicy="Never")
    )
    done = await until(v1, "bad", lambda p: p.status.phase in ("Succeeded", "Failed"))
    assert done.status.phase == "Failed"
    terminated = done.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    # a finished pod is deleted at once, even with a grace period
    await v1.delete_namespaced_pod("bad", NS, grace_period_seconds=30)
    await gone(v1, "bad")


async def test_missing_executable_is_a_start_error(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(
        NS, pod("noexec", ["atrium-no-such-command"], restartPolicy="Never")
    )
    done = await until(v1, "noexec", lambda p: p.status.phase in ("Succeeded", "Failed"))
    assert done.status.phase == "Failed"
    terminated = done.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (128, "StartError")
    events = await v1.list_namespaced_event(NS, field_selector="involvedObject.name=noexec")
    failed = [e.message for e in events.items if e.reason == "Failed"]
    assert len(failed) == 1
    assert 'exec: "atrium-no-such-command": executable file not found in $PATH' in failed[0]


SIGTERM_SCRIPT = """
import pathlib, signal, sys, time
def stop(*_):
    pathlib.Path('stopped-by-sigterm').write_text('yes')
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print('handling SIGTERM', flush=True)
while True:
    time.sleep(1)
"""


async def test_graceful_delete_sigterm_then_deleted(
    fake_kube: FakeKube, v1: CoreV1Api, tmp_path: Path
) -> None:
    await v1.create_namespaced_pod(NS, pod("graceful", [PY, "-c", SIGTERM_SCRIPT]))
    running = await until(v1, "graceful", lambda p: p.status.phase == "Running")

    async def handling() -> bool:
        return "handling SIGTERM" in await v1.read_namespaced_pod_log("graceful", NS)

    await eventually(handling, timeout=30)
    running = await v1.read_namespaced_pod("graceful", NS)
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_namespaced_pod,
            NS,
            field_selector="metadata.name=graceful",
            resource_version=running.metadata.resource_version,
            timeout_seconds=60,
        )
        deleted = await v1.delete_namespaced_pod("graceful", NS, grace_period_seconds=30)
        assert deleted.metadata.deletion_timestamp is not None
        assert deleted.metadata.deletion_grace_period_seconds == 30
        types = []
        async with asyncio.timeout(60):
            async for event in stream:
                types.append(event["type"])
                if event["type"] == "DELETED":
                    break
    assert types[0] == "MODIFIED"  # deletionTimestamp set
    assert types[-1] == "DELETED"
    assert (
        tmp_path / "kube" / NS / "graceful" / "home" / "stopped-by-sigterm"
    ).read_text() == "yes"
    assert ("Killing", "Normal", "kubelet") in await reasons(v1, "graceful")


async def test_sigkill_after_the_grace_period(fake_kube: FakeKube, v1: CoreV1Api) -> None:
    script = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring SIGTERM', flush=True)\ntime.sleep(600)"
    )
    await v1.create_namespaced_pod(NS, pod("stubborn", [PY, "-c", script]))
    await until(v1, "stubborn", lambda p: p.status.phase == "Running")

    async def ignoring() -> bool:
        return "ignoring SIGTERM" in await v1.read_namespaced_pod_log("stubborn", NS)

    await eventually(ignoring, timeout=30)
    assert fake_kube.kubelet is not None
    process = fake_kube.kubelet.runners[(NS, "stubborn")].process
    assert process is not None
    await v1.delete_namespaced_pod("stubborn", NS, grace_period_seconds=1)
    await gone(v1, "stubborn")
    assert process.returncode == -9


async def test_image_pull_error(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("pull", image="registry.example/pull-error:1"))
    backing_off = await until(v1, "pull", lambda p: waiting_reason(p) == "ImagePullBackOff")
    assert backing_off.status.phase == "Pending"
    seen = await reasons(v1, "pull")
    assert ("Failed", "Warning", "kubelet") in seen
    assert ("BackOff", "Normal", "kubelet") in seen
    events = await v1.list_namespaced_event(NS, field_selector="involvedObject.name=pull")
    messages = [e.message for e in events.items]
    assert "Error: ErrImagePull" in messages
    assert any(
        m.startswith('Failed to pull image "registry.example/pull-error:1"') for m in messages
    )
    await v1.delete_namespaced_pod("pull", NS)
    await gone(v1, "pull")


async def test_unschedulable(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(
        NS, pod("nowhere", annotations={FAILURE_ANNOTATION: "unschedulable"})
    )
    await v1.create_namespaced_pod(NS, pod("gpu", nodeSelector={"gpu": "a100"}))
    for name in ("nowhere", "gpu"):
        pending = await until(v1, name, lambda p: bool(p.status.conditions))
        assert pending.status.phase == "Pending"
        scheduled = pending.status.conditions[0]
        assert (scheduled.type, scheduled.status, scheduled.reason) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        )
        assert pending.spec.node_name is None
        assert await reasons(v1, name) == [("FailedScheduling", "Warning", "default-scheduler")]
        await v1.delete_namespaced_pod(name, NS)  # unscheduled: removed at once
        await gone(v1, name)


async def test_insufficient_extended_resource(v1: CoreV1Api) -> None:
    body = pod("needs-gpu")
    body["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    await v1.create_namespaced_pod(NS, body)
    pending = await until(v1, "needs-gpu", lambda p: bool(p.status.conditions))
    assert "Insufficient nvidia.com/gpu" in pending.status.conditions[0].message


async def test_node_with_gpus_and_labels_schedules_and_retries(tmp_path: Path) -> None:
    async with start_fake_kube(
        tmp_path, node_labels={"gpu": "a100"}, capacity={"nvidia.com/gpu": 1}
    ) as kube:
        v1 = CoreV1Api(kube.api)
        body = pod("gpu", [PY, "-c", "import time; time.sleep(600)"], nodeSelector={"gpu": "a100"})
        body["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1}}
        await v1.create_namespaced_pod(NS, body)
        running = await until(v1, "gpu", lambda p: p.status.phase == "Running")
        assert running.spec.node_name == "atrium-node-1"
        body["metadata"]["name"] = "gpu2"  # the node's only GPU is taken
        await v1.create_namespaced_pod(NS, body)
        pending = await until(v1, "gpu2", lambda p: bool(p.status.conditions))
        assert pending.status.conditions[0].reason == "Unschedulable"
        assert "Insufficient nvidia.com/gpu" in pending.status.conditions[0].message
        # the scheduler tries again once the GPU is free
        await v1.delete_namespaced_pod("gpu", NS, grace_period_seconds=1)
        await until(v1, "gpu2", lambda p: p.status.phase == "Running")


async def test_crash_loop(v1: CoreV1Api) -> None:
    await v1.create_namespaced_pod(NS, pod("crash", image="atrium/crashloop:1"))
    looping = await until(
        v1,
        "crash",
        lambda p: (
            waiting_reason(p) == "CrashLoopBackOff"
            and p.status.container_statuses[0].restart_count >= 2
        ),
    )
    status = looping.status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 1
    assert status.ready is False
    seen = await reasons(v1, "crash")
    assert ("BackOff", "Warning", "kubelet") in seen
    # a repeated event is one Event whose count goes up, as the real recorder does
    assert [r for r, _, _ in seen].count("Started") == 1
    events = await v1.list_namespaced_event(NS, field_selector="involvedObject.name=crash")
    started = next(e for e in events.items if e.reason == "Started")
    assert started.count >= 2
    await v1.delete_namespaced_pod("crash", NS, grace_period_seconds=5)
    await gone(v1, "crash")


async def test_processes_stop_with_the_fixture(tmp_path: Path) -> None:
    async with start_fake_kube(tmp_path) as kube:
        v1 = CoreV1Api(kube.api)
        await v1.create_namespaced_pod(NS, pod("idle", [PY, "-c", "import time; time.sleep(600)"]))
        await until(v1, "idle", lambda p: p.status.phase == "Running")
        assert kube.kubelet is not None
        process = kube.kubelet.runners[(NS, "idle")].process
        assert process is not None
    assert process.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)
