"""Reading a pod's status: ready, still starting, or failed (and why).

`starting_state(pod)` tells a start under way whether the pod is ready, still
coming up, or has failed in a way waiting cannot fix: the image cannot be
pulled, no node can run it, its container crashes. `exit_status(pod)` is what
`poll()` returns for a pod (None while it runs). `event_progress` turns pod
events into the spawn page's progress messages. Plain functions over the
API's JSON, used by `spawners.kubernetes.spawner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

IMAGE_PULL_REASONS = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "RegistryUnavailable",
}
CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
CRASH_REASONS = {"CrashLoopBackOff"}


@dataclass(frozen=True)
class Starting:
    """The state of a pod being started: `ready`, or `failure` (a message), or neither;
    `running` once it has an IP and every container runs (ready or not yet)."""

    ready: bool = False
    running: bool = False
    failure: str = ""
    detail: str = ""  # what it is waiting for, for messages


def _statuses(pod: Json) -> list[Json]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _condition(pod: Json, kind: str) -> Json | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def _terminated_text(name: str, terminated: Json) -> str:
    code = terminated.get("exitCode")
    reason = terminated.get("reason") or ""
    message = (terminated.get("message") or "").strip()
    text = f"the container {name} exited with status {code}"
    if reason and reason not in ("Error", "Completed"):
        text += f" ({reason})"
    if message:
        text += f": {message[:300]}"
    return text


def _image_of(pod: Json, name: str) -> str:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if container.get("name") == name:
            return str(container.get("image") or "")
    return ""


def container_failure(pod: Json) -> str:
    """Why a container of `pod` cannot run ('' when none is known to fail)."""
    for cs in _statuses(pod):
        name = str(cs.get("name") or "")
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason") or ""
        message = (waiting.get("message") or "").strip()[:300]
        if reason in IMAGE_PULL_REASONS:
            image = cs.get("image") or _image_of(pod, name)
            return f"the image {image} could not be pulled ({reason})" + (
                f": {message}" if message else ""
            )
        if reason in CONFIG_REASONS:
            return f"the container {name} could not be created ({reason})" + (
                f": {message}" if message else ""
            )
        if reason in CRASH_REASONS:
            last = (cs.get("lastState") or {}).get("terminated") or {}
            crash = _terminated_text(name, last) if last else f"the container {name} crashed"
            return f"{crash}, and keeps crashing (CrashLoopBackOff)"
    return ""


def unschedulable(pod: Json) -> str:
    """Why no node can run `pod` ('' when it is scheduled or may still be)."""
    scheduled = _condition(pod, "PodScheduled")
    if (
        scheduled
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == ("Unschedulable")
    ):
        message = (scheduled.get("message") or "").strip()[:300]
        return "no node can run the server" + (f": {message}" if message else "")
    return ""


def starting_state(pod: Json) -> Starting:
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return Starting(failure="the pod is being deleted")
    if phase in ("Failed", "Succeeded"):
        for cs in _statuses(pod):
            terminated = (cs.get("state") or {}).get("terminated")
            if terminated:
                return Starting(failure=_terminated_text(str(cs.get("name")), terminated))
        reason = status.get("reason") or phase
        message = (status.get("message") or "").strip()[:300]
        return Starting(
            failure=f"the pod {phase.lower()} ({reason})" + (f": {message}" if message else "")
        )
    failure = unschedulable(pod) or container_failure(pod)
    if failure:
        return Starting(failure=failure)
    ready = _condition(pod, "Ready")
    if phase == "Running" and status.get("podIP") and ready and ready.get("status") == "True":
        return Starting(ready=True, running=True)
    statuses = _statuses(pod)
    running = (
        phase == "Running"
        and bool(status.get("podIP"))
        and bool(statuses)
        and all("running" in (cs.get("state") or {}) for cs in statuses)
    )
    waiting = [
        (cs.get("state") or {}).get("waiting", {}).get("reason")
        for cs in _statuses(pod)
        if (cs.get("state") or {}).get("waiting")
    ]
    detail = phase + (f", {', '.join(str(w) for w in waiting if w)}" if any(waiting) else "")
    if running:
        detail += ", not ready yet"
    return Starting(running=running, detail=detail)


def exit_status(pod: Json) -> int | None:
    """None while the pod runs (or starts); an exit status once its server is gone
    (the main container's, else 1 for a failed pod, 0 for one that is being deleted)."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase in ("Failed", "Succeeded"):
        for cs in status.get("containerStatuses") or []:
            terminated = (cs.get("state") or {}).get("terminated")
            if terminated:
                return int(terminated.get("exitCode") or 0) or (1 if phase == "Failed" else 0)
        return 1 if phase == "Failed" else 0
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return 0
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in CRASH_REASONS:
            last = (cs.get("lastState") or {}).get("terminated") or {}
            return int(last.get("exitCode") or 1)
    return None


def pod_ip(pod: Json) -> str:
    return str((pod.get("status") or {}).get("podIP") or "")


def event_text(event: Json) -> str:
    reason = event.get("reason") or ""
    message = (event.get("message") or "").strip()[:300]
    return f"{reason}: {message}" if reason and message else str(reason or message)


def event_uid(event: Json) -> str:
    meta = event.get("metadata") or {}
    return str(meta.get("uid") or meta.get("name") or "")


def event_is_for(event: Json, pod_uid: str) -> bool:
    """Events name the pod; the uid tells this pod from an earlier one of the same name."""
    uid = (event.get("involvedObject") or {}).get("uid")
    return not uid or not pod_uid or uid == pod_uid


def event_time(event: Json) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )
