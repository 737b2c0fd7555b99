"""Reading pod status (spawners.kubernetes.podstatus): what a start waits for, fails on,
and what poll() reports."""

from __future__ import annotations

from typing import Any

from spawners.kubernetes.podstatus import event_text, exit_status, starting_state


def pod(
    phase: str = "Pending",
    conditions: list[dict[str, str]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    ip: str = "",
    deleting: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if containers is not None:
        status["containerStatuses"] = containers
    if init is not None:
        status["initContainerStatuses"] = init
    if ip:
        status["podIP"] = ip
    meta: dict[str, Any] = {"name": "p"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "notebook", "image": "lab:1"}]},
        "status": status,
    }


def waiting(reason: str, message: str = "", name: str = "notebook") -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}


READY = [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]


def test_ready_needs_running_ready_and_an_ip() -> None:
    assert starting_state(pod("Running", READY, ip="10.0.0.5")).ready
    assert not starting_state(pod("Running", READY)).ready
    not_ready = [{"type": "Ready", "status": "False"}]
    state = starting_state(pod("Running", not_ready, ip="10.0.0.5"))
    assert not state.ready
    assert not state.failure
    assert starting_state(pod("Pending", containers=[waiting("ContainerCreating")])).detail == (
        "Pending, ContainerCreating"
    )


def test_failures_a_user_can_act_on() -> None:
    pull = starting_state(pod(containers=[waiting("ImagePullBackOff", "not found")]))
    assert pull.failure == "the image lab:1 could not be pulled (ImagePullBackOff): not found"
    unschedulable = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/2 nodes are available: 2 Insufficient memory.",
        }
    ]
    assert starting_state(pod(conditions=unschedulable)).failure == (
        "no node can run the server: 0/2 nodes are available: 2 Insufficient memory."
    )
    config = starting_state(pod(containers=[waiting("CreateContainerConfigError", "no secret")]))
    assert "could not be created (CreateContainerConfigError): no secret" in config.failure
    init = starting_state(pod(init=[waiting("ErrImagePull", name="init")]))
    assert "could not be pulled" in init.failure
    failed = pod(
        "Failed",
        containers=[{"name": "notebook", "state": {"terminated": {"exitCode": 2}}}],
    )
    assert starting_state(failed).failure == "the container notebook exited with status 2"
    assert starting_state(pod(deleting=True)).failure == "the pod is being deleted"


def test_exit_status() -> None:
    assert exit_status(pod("Running", READY, ip="10.0.0.5")) is None
    assert exit_status(pod("Pending")) is None
    done = [{"name": "notebook", "state": {"terminated": {"exitCode": 0}}}]
    assert exit_status(pod("Succeeded", containers=done)) == 0
    assert exit_status(pod("Failed", containers=done)) == 1  # failed, whatever the code says
    assert exit_status(pod("Failed")) == 1
    assert exit_status(pod("Running", READY, deleting=True)) == 0
    crash = waiting("CrashLoopBackOff")
    crash["lastState"] = {"terminated": {"exitCode": 137}}
    assert exit_status(pod("Running", containers=[crash])) == 137


def test_event_text() -> None:
    assert event_text({"reason": "Pulling", "message": 'Pulling image "lab:1"'}) == (
        'Pulling: Pulling image "lab:1"'
    )
    assert event_text({"reason": "Killing"}) == "Killing"
