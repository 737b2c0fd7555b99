"""A simulated node (scheduler + kubelet) for the fake API server: runs pods as local processes.

It subscribes to pod changes in the fake's store (in-process, so it adds no
API calls to what the tests count) and, for each new pod using the default
scheduler, does what a one-node cluster does:

- schedules it (spec.nodeName, PodScheduled condition, a `Scheduled` event
  from default-scheduler), or leaves it Pending with PodScheduled False,
  reason Unschedulable and a `FailedScheduling` Warning when its nodeSelector
  does not match the node labels, it asks for more of an extended resource
  (e.g. `nvidia.com/gpu`) than the node has left (counting the pods bound to
  it), or the failure mode says so; it tries again when a pod leaves the node;
- "pulls" the image (`Pulling`/`Pulled`, or `Failed` ErrImagePull then
  `BackOff` with the waiting reason ImagePullBackOff for the pull failure mode);
- runs the FIRST container's `command` + `args` (with `$(VAR)` expanded) as a
  local process: `Created`, `Started`; the pod becomes Running with podIP
  127.0.0.1, containerStatuses running and ready (after the readiness probe's
  port answers, when it has one), conditions Ready/ContainersReady True.
  Other containers are reported running without a process. A container with
  no command runs an idle process (there are no image entrypoints here); a
  command that cannot be executed is a StartError (exit 128, `Failed` event).
  Readiness probes (httpGet/tcpSocket) are a TCP connect to the substituted port.
  A repeated event bumps the `count` of the first one, as the real recorder does.
- when the process exits: restartPolicy Never (or OnFailure with exit 0) ends
  the pod Succeeded/Failed with a terminated state; otherwise it is restarted
  after a back-off, with restartCount, lastState, waiting reason
  CrashLoopBackOff and a `BackOff` Warning event (the crash loop mode swaps the
  command for one that exits 1);
- on graceful deletion (deletionTimestamp): a `Killing` event, SIGTERM, up to
  deletionGracePeriodSeconds, then SIGKILL, then the pod is removed (DELETED).

Failure modes, chosen by the annotation `atrium.test/kubelet-failure` or by a
word in the first container's image name: `image-pull` (image names with
`pull-error` or `does-not-exist`), `unschedulable`, `crashloop`. Exceeded
quota is the API server's (`FakeApiServer(pod_quota=N)`).

PORTS (every "pod" shares the host's network, so two pods cannot both listen
on 8888): before starting the process the kubelet picks a free port P on
127.0.0.1 for the first container's first `ports[].containerPort` C and
  - sets the pod annotation `atrium.test/host-port: "P"` (written before the
    pod reports Running), so a spawner under test connects to
    `<status.podIP>:<that annotation>` instead of `<podIP>:C`;
  - replaces C by P, and the address 0.0.0.0 by 127.0.0.1, in the command,
    args (`--port=8888`, `8888`, `--ip=0.0.0.0`) and env values (URLs such as
    `http://0.0.0.0:8888/user/x/`), so the process listens on P: C is replaced
    only as a whole value, after `=`, or after `:` at the end or before `/`;
  - sets env `ATRIUM_POD_PORT=P` and `ATRIUM_POD_IP=127.0.0.1`.
The process runs with the host environment plus the container's env (values,
secretKeyRef, configMapKeyRef, fieldRef, envFrom), cwd and HOME set to its own
directory `<workdir>/<namespace>/<pod>/home/`, output in
`<workdir>/<namespace>/<pod>/<container>.log`, out of the user's files (served
at `GET .../pods/<name>/log`). Processes are started in their own
session and stopped by their PID's process group; `stop()` stops every
process this kubelet started and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from tests.kube.apiserver import FakeApiServer
from tests.kube.store import ApiError, Obj, WatchEvent, now_iso

log = logging.getLogger("tests.kube.kubelet")

FAILURE_ANNOTATION = "atrium.test/kubelet-failure"
PORT_ANNOTATION = "atrium.test/host-port"
POD_IP = "127.0.0.1"
IDLE = [sys.executable, "-c", "import time\nwhile True: time.sleep(3600)"]
CRASH = [sys.executable, "-c", "import sys; print('crashing on purpose'); sys.exit(1)"]


class PodGone(Exception):
    """The pod was removed from the API while the kubelet worked on it."""


def failure_mode(pod: Obj) -> str | None:
    annotations = pod["metadata"].get("annotations") or {}
    if mode := annotations.get(FAILURE_ANNOTATION):
        return str(mode)
    image = pod["spec"]["containers"][0].get("image", "")
    if "pull-error" in image or "does-not-exist" in image:
        return "image-pull"
    for mode in ("unschedulable", "crashloop"):
        if mode in image:
            return mode
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((POD_IP, 0))
        return int(s.getsockname()[1])


class Kubelet:
    """One node, named `node_name`, with `node_labels` and extended-resource `capacity`."""

    def __init__(
        self,
        server: FakeApiServer,
        workdir: Path,
        *,
        node_name: str = "atrium-node-1",
        node_labels: dict[str, str] | None = None,
        capacity: dict[str, int] | None = None,
        restart_backoff: float = 0.2,
    ) -> None:
        self.server = server
        self.store = server.store
        self.workdir = workdir
        self.node_name = node_name
        self.node_labels = {"kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux"}
        self.node_labels.update(node_labels or {})
        self.capacity = capacity or {}
        self.restart_backoff = restart_backoff
        self.runners: dict[tuple[str, str], PodRunner] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.store.subscribers.append(self.on_pod_change)
        self.server.log_reader = self.read_log
        for pod in self.store.items("pods"):
            self.on_pod_change("pods", WatchEvent("ADDED", self.store.rv, pod))

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.store.subscribers.remove(self.on_pod_change)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(r.kill_process(grace=2) for r in list(self.runners.values())))
        self.runners.clear()

    def on_pod_change(self, plural: str, event: WatchEvent) -> None:
        if plural != "pods":
            return
        meta = event.obj["metadata"]
        key = (meta["namespace"], meta["name"])
        runner = self.runners.get(key)
        phase = event.obj.get("status", {}).get("phase")
        if event.type == "DELETED" or phase in ("Succeeded", "Failed"):
            for waiting in self.runners.values():
                waiting.retry.set()
        if event.type == "ADDED":
            spec = event.obj["spec"]
            if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                return
            if spec.get("nodeName") and spec["nodeName"] != self.node_name:
                return
            runner = PodRunner(self, event.obj)
            self.runners[key] = runner
            task = asyncio.get_running_loop().create_task(self._run(runner))
            self.tasks.add(task)
        elif runner is not None and runner.uid == meta["uid"]:
            if event.type == "DELETED":  # removed without the kubelet: stop at once
                runner.removed.set()
                runner.grace = 0
                runner.deleting.set()
            elif "deletionTimestamp" in meta:
                runner.grace = int(meta.get("deletionGracePeriodSeconds", 30))
                runner.deleting.set()

    async def _run(self, runner: PodRunner) -> None:
        try:
            await runner.run()
        except PodGone:
            pass
        except Exception:
            log.exception("kubelet: pod %s/%s failed", runner.namespace, runner.name)
        finally:
            await runner.kill_process(grace=0)
            if self.runners.get(runner.key) is runner:
                del self.runners[runner.key]
            task = asyncio.current_task()
            if task is not None:
                self.tasks.discard(task)

    def read_log(self, namespace: str, name: str, container: str) -> str | None:
        path = self.workdir / namespace / name / f"{container}.log"
        return path.read_text(errors="replace") if path.exists() else None


class PodRunner:
    """Takes one pod through scheduling, pulling, running and termination."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.store = kubelet.store
        self.namespace: str = pod["metadata"]["namespace"]
        self.name: str = pod["metadata"]["name"]
        self.uid: str = pod["metadata"]["uid"]
        self.key = (self.namespace, self.name)
        self.pod = pod
        self.deleting = asyncio.Event()
        self.retry = asyncio.Event()  # set when a pod left the node: schedule again
        self.removed = asyncio.Event()
        self.grace = 30
        self.process: asyncio.subprocess.Process | None = None
        self.port: int | None = None
        self.restarts = 0
        # (reason, message, type, component) -> event name: repeats bump `count`
        self.sent: dict[tuple[str, str, str, str], str] = {}
        self.container = pod["spec"]["containers"][0]

    # -- API helpers ---------------------------------------------------------

    def update(self, change: Any) -> Obj:
        try:
            self.pod = self.store.update("pods", self.namespace, self.name, change)
        except ApiError as e:
            raise PodGone from e
        if self.pod["metadata"]["uid"] != self.uid:
            raise PodGone
        return self.pod

    def set_status(self, **fields: Any) -> None:
        def change(pod: Obj) -> None:
            pod.setdefault("status", {}).update(fields)

        self.update(change)

    def event(
        self, reason: str, message: str, kind: str = "Normal", component: str = "kubelet"
    ) -> None:
        stamp = now_iso()
        key = (reason, message, kind, component)
        if key in self.sent:
            # the real recorder aggregates a repeated event: count + 1, a new lastTimestamp

            def again(event: Obj) -> None:
                event["count"] = event.get("count", 1) + 1
                event["lastTimestamp"] = stamp

            with contextlib.suppress(ApiError):
                self.store.update("events", self.namespace, self.sent[key], again)
                return
        involved = {
            "kind": "Pod",
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "apiVersion": "v1",
            "resourceVersion": self.pod["metadata"]["resourceVersion"],
        }
        if component == "kubelet":
            involved["fieldPath"] = f"spec.containers{{{self.container['name']}}}"
        source = {"component": component}
        if component == "kubelet":
            source["host"] = self.kubelet.node_name
        name = f"{self.name}.{event_stamp():x}"
        self.sent[key] = name
        self.store.create(
            "events",
            self.namespace,
            {
                "metadata": {"name": name},
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": kind,
                "source": source,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
                "reportingComponent": component,
                "reportingInstance": self.kubelet.node_name if component == "kubelet" else "",
            },
        )

    def condition(self, kind: str, status: bool, reason: str = "", message: str = "") -> Obj:
        cond: Obj = {
            "type": kind,
            "status": "True" if status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": now_iso(),
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def container_statuses(self, state: Obj, ready: bool, last: Obj | None = None) -> list[Obj]:
        statuses = []
        for i, container in enumerate(self.pod["spec"]["containers"]):
            first = i == 0
            statuses.append(
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": f"docker-pullable://{container['image']}@sha256:{'0' * 64}",
                    "containerID": container_id(self.uid, container["name"]),
                    "ready": ready,
                    "started": "running" in state,
                    "restartCount": self.restarts if first else 0,
                    "state": state,
                    "lastState": (last or {}) if first else {},
                }
            )
        return statuses

    async def wait_deleting_or_retry(self) -> bool:
        """Wait for a deletion request (True) or room on the node (False)."""
        waits = {
            asyncio.ensure_future(self.deleting.wait()),
            asyncio.ensure_future(self.retry.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return self.deleting.is_set()

    async def wait_deleting(self, timeout: float | None = None) -> bool:
        """Wait for a deletion request (True) or the timeout (False)."""
        try:
            await asyncio.wait_for(self.deleting.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        await asyncio.sleep(0)  # let the create call answer before the first change
        mode = failure_mode(self.pod)
        while not self.schedule(mode):
            # like the scheduler's queue: try again when a pod leaves the node
            self.retry.clear()
            if await self.wait_deleting_or_retry():
                return
        if not await self.pull(mode):
            await self.wait_deleting()
            self.finish_deletion()
            return
        await self.run_containers(mode)

    def schedule(self, mode: str | None) -> bool:
        spec = self.pod["spec"]
        reason = ""
        selector = spec.get("nodeSelector") or {}
        if mode == "unschedulable" or any(
            self.kubelet.node_labels.get(k) != v for k, v in selector.items()
        ):
            reason = "1 node(s) didn't match Pod's node affinity/selector"
        used: dict[str, int] = {}
        for other in self.store.items("pods"):
            if (
                other["spec"].get("nodeName") == self.kubelet.node_name
                and other["metadata"]["uid"] != self.uid
                and other.get("status", {}).get("phase") not in ("Succeeded", "Failed")
            ):
                for resource, amount in extended_requests(other).items():
                    used[resource] = used.get(resource, 0) + amount
        for resource, amount in extended_requests(self.pod).items():
            if amount + used.get(resource, 0) > self.kubelet.capacity.get(resource, 0):
                reason = f"1 Insufficient {resource}"
        if reason:
            message = (
                f"0/1 nodes are available: {reason}. preemption: 0/1 nodes are available: "
                "1 Preemption is not helpful for scheduling."
            )
            self.set_status(
                phase="Pending",
                conditions=[self.condition("PodScheduled", False, "Unschedulable", message)],
            )
            self.event("FailedScheduling", message, "Warning", "default-scheduler")
            return False

        def bind(pod: Obj) -> None:
            pod["spec"]["nodeName"] = self.kubelet.node_name
            pod["status"]["conditions"] = [self.condition("PodScheduled", True)]

        self.update(bind)
        self.event(
            "Scheduled",
            f"Successfully assigned {self.namespace}/{self.name} to {self.kubelet.node_name}",
            component="default-scheduler",
        )
        return True

    def pending_status(self, waiting: Obj) -> None:
        conditions = [
            self.condition("PodReadyToStartContainers", True),
            self.condition("Initialized", True),
            self.condition("Ready", False, "ContainersNotReady", "containers with unready status"),
            self.condition("ContainersReady", False, "ContainersNotReady"),
            self.condition("PodScheduled", True),
        ]
        self.set_status(
            phase="Pending",
            hostIP=POD_IP,
            hostIPs=[{"ip": POD_IP}],
            podIP=POD_IP,
            podIPs=[{"ip": POD_IP}],
            startTime=self.pod.get("status", {}).get("startTime") or now_iso(),
            conditions=conditions,
            containerStatuses=self.container_statuses({"waiting": waiting}, False),
        )

    async def pull(self, mode: str | None) -> bool:
        image = self.container["image"]
        self.pending_status({"reason": "ContainerCreating"})
        if mode == "image-pull":
            self.event("Pulling", f'Pulling image "{image}"')
            detail = (
                f'failed to pull and unpack image "{image}": failed to resolve reference '
                f'"{image}": not found'
            )
            self.event("Failed", f'Failed to pull image "{image}": {detail}', "Warning")
            self.event("Failed", "Error: ErrImagePull", "Warning")
            self.pending_status({"reason": "ErrImagePull", "message": detail})
            if await self.wait_deleting(self.kubelet.restart_backoff):
                return False
            self.event("BackOff", f'Back-off pulling image "{image}"')
            self.event("Failed", "Error: ImagePullBackOff", "Warning")
            self.pending_status(
                {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
            )
            return False
        if self.container.get("imagePullPolicy") == "Always":
            self.event("Pulling", f'Pulling image "{image}"')
            self.event(
                "Pulled", f'Successfully pulled image "{image}" in 5ms (5ms including waiting)'
            )
        else:
            self.event("Pulled", f'Container image "{image}" already present on machine')
        return True

    async def run_containers(self, mode: str | None) -> None:
        name = self.container["name"]
        last: Obj | None = None
        backoff = self.kubelet.restart_backoff
        while True:
            error = await self.start_process(mode)
            self.event("Created", f"Created container {name}")
            started = now_iso()
            if error is not None:
                self.event("Failed", error, "Warning")
                code, reason = 128, "StartError"
            else:
                self.event("Started", f"Started container {name}")
                if await self.run_process(started, last):
                    await self.terminate()
                    return
                assert self.process is not None
                code = self.process.returncode or 0
                reason = "Completed" if code == 0 else "Error"
            terminated = {
                "exitCode": code,
                "reason": reason,
                "startedAt": started,
                "finishedAt": now_iso(),
                "containerID": container_id(self.uid, name),
            }
            policy = self.pod["spec"].get("restartPolicy", "Always")
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                self.set_status(
                    phase="Succeeded" if code == 0 else "Failed",
                    conditions=self.ready_conditions(False, "PodCompleted"),
                    containerStatuses=self.container_statuses({"terminated": terminated}, False),
                )
                await self.wait_deleting()
                self.finish_deletion()
                return
            self.restarts += 1
            last = {"terminated": terminated}
            message = (
                f"back-off {backoff:g}s restarting failed container={name} "
                f"pod={self.name}_{self.namespace}({self.uid})"
            )
            self.set_status(
                phase="Running",
                conditions=self.ready_conditions(False, "ContainersNotReady"),
                containerStatuses=self.container_statuses(
                    {"waiting": {"reason": "CrashLoopBackOff", "message": message}}, False, last
                ),
            )
            self.event(
                "BackOff",
                f"Back-off restarting failed container {name} in pod "
                f"{self.name}_{self.namespace}({self.uid})",
                "Warning",
            )
            if await self.wait_deleting(backoff):
                self.event("Killing", f"Stopping container {name}")
                self.finish_deletion()
                return
            backoff = min(backoff * 2, self.kubelet.restart_backoff * 16)

    async def run_process(self, started: str, last: Obj | None) -> bool:
        """Report Running (Ready after the probe) until the process exits or the pod is
        being deleted (True)."""
        self.running_status(started, ready=False, last=last)
        ready_task = asyncio.ensure_future(self.wait_ready(started, last))
        exit_task = asyncio.ensure_future(self.process_exit())
        delete_task = asyncio.ensure_future(self.deleting.wait())
        try:
            await asyncio.wait({exit_task, delete_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ready_task, delete_task):
                task.cancel()
            await asyncio.gather(ready_task, delete_task, return_exceptions=True)
        if exit_task.done():
            return False
        exit_task.cancel()
        await asyncio.gather(exit_task, return_exceptions=True)
        return True

    def ready_conditions(self, ready: bool, reason: str = "") -> list[Obj]:
        return [
            self.condition("PodReadyToStartContainers", True),
            self.condition("Initialized", True),
            self.condition("Ready", ready, "" if ready else reason),
            self.condition("ContainersReady", ready, "" if ready else reason),
            self.condition("PodScheduled", True),
        ]

    def running_status(self, started: str, ready: bool, last: Obj | None) -> None:
        self.set_status(
            phase="Running",
            podIP=POD_IP,
            podIPs=[{"ip": POD_IP}],
            conditions=self.ready_conditions(ready, "ContainersNotReady"),
            containerStatuses=self.container_statuses(
                {"running": {"startedAt": started}}, ready, last
            ),
        )

    async def wait_ready(self, started: str, last: Obj | None) -> None:
        probe = self.container.get("readinessProbe") or {}
        target = probe.get("httpGet") or probe.get("tcpSocket")
        if target and self.port is not None:
            while True:
                try:
                    _, writer = await asyncio.open_connection(POD_IP, self.port)
                except OSError:
                    await asyncio.sleep(float(probe.get("periodSeconds", 1)) / 10)
                    continue
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                break
        self.running_status(started, ready=True, last=last)

    async def process_exit(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def terminate(self) -> None:
        """Graceful stop: Killing event, SIGTERM, the grace period, SIGKILL, then removal."""
        self.event("Killing", f"Stopping container {self.container['name']}")
        await self.kill_process(self.grace)
        self.finish_deletion()

    def finish_deletion(self) -> None:
        """The kubelet's final delete once nothing runs any more (a DELETED event)."""
        current = self.store.find("pods", self.namespace, self.name)
        if current is not None and current["metadata"]["uid"] == self.uid:
            self.store.remove("pods", self.namespace, self.name)

    # -- the process ---------------------------------------------------------

    def pod_dir(self) -> Path:
        """The pod's own directory: its logs, and its home (`home_dir`)."""
        path = self.kubelet.workdir / self.namespace / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def home_dir(self) -> Path:
        """The container's working directory and HOME."""
        path = self.pod_dir() / "home"
        path.mkdir(exist_ok=True)
        return path

    async def start_process(self, mode: str | None) -> str | None:
        """Start the container's process; the reason it could not start, if so."""
        container = self.container
        ports = container.get("ports") or []
        container_port = ports[0].get("containerPort") if ports else None
        if container_port is not None and self.port is None:
            self.port = free_port()

            def annotate(pod: Obj) -> None:
                annotations = pod["metadata"].setdefault("annotations", {})
                annotations[PORT_ANNOTATION] = str(self.port)

            self.update(annotate)
        env = self.environment(container_port)
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        argv = [self.substitute(expand(arg, env), container_port) for arg in argv]
        if mode == "crashloop":
            argv = CRASH
        elif not argv:
            argv = IDLE
        directory = self.pod_dir()
        with open_log(directory / f"{container['name']}.log") as out:
            try:
                self.process = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=self.home_dir(),
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                )
            except OSError as e:
                self.process = None
                why = (
                    "executable file not found in $PATH"
                    if isinstance(e, FileNotFoundError)
                    else e.strerror
                )
                out.write(f"exec {argv[0]}: {why}\n".encode())
                return (
                    "Error: failed to create containerd task: failed to create shim task: OCI "
                    "runtime create failed: runc create failed: unable to start container "
                    f'process: exec: "{argv[0]}": {why}: unknown'
                )
        return None

    def substitute(self, value: str, container_port: int | None) -> str:
        value = value.replace("0.0.0.0", POD_IP)  # noqa: S104 - the pod's address
        if container_port is not None and self.port is not None:
            # the port as a whole value, after `=` (--port=8888) or `:` (a URL), never
            # inside another word (a token that happens to contain the digits)
            value = re.sub(rf"(^|[:=]){container_port}(?=$|/)", rf"\g<1>{self.port}", value)
        return value

    def environment(self, container_port: int | None) -> dict[str, str]:
        env = dict(os.environ)
        # the "image" has this Python environment's commands (atrium-singleuser, ...)
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
        env["HOME"] = str(self.home_dir())
        env["HOSTNAME"] = self.name
        for source in self.container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for key, value in self.lookup_all(source).items():
                env[prefix + key] = value
        for item in self.container.get("env") or []:
            if "value" in item:
                env[item["name"]] = expand(str(item["value"]), env)
            elif "valueFrom" in item:
                value = self.value_from(item["valueFrom"])
                if value is not None:
                    env[item["name"]] = value
        for key in [k for k in env if k in {i["name"] for i in self.container.get("env") or []}]:
            env[key] = self.substitute(env[key], container_port)
        env["ATRIUM_POD_IP"] = POD_IP
        if self.port is not None:
            env["ATRIUM_POD_PORT"] = str(self.port)
        return env

    def lookup_all(self, source: Obj) -> dict[str, str]:
        if ref := source.get("secretRef"):
            obj = self.store.find("secrets", self.namespace, ref["name"]) or {}
            return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        if ref := source.get("configMapRef"):
            obj = self.store.find("configmaps", self.namespace, ref["name"]) or {}
            return dict(obj.get("data") or {})
        return {}

    def value_from(self, source: Obj) -> str | None:
        if ref := source.get("secretKeyRef"):
            data = self.lookup_all({"secretRef": ref})
            return data.get(ref["key"])
        if ref := source.get("configMapKeyRef"):
            return self.lookup_all({"configMapRef": ref}).get(ref["key"])
        if ref := source.get("fieldRef"):
            path = ref["fieldPath"]
            fields = {
                "metadata.name": self.name,
                "metadata.namespace": self.namespace,
                "metadata.uid": self.uid,
                "spec.nodeName": self.kubelet.node_name,
                "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", "default"),
                "status.podIP": POD_IP,
                "status.hostIP": POD_IP,
            }
            if m := re.match(r"metadata\.(labels|annotations)\['(.+)'\]", path):
                return (self.pod["metadata"].get(m.group(1)) or {}).get(m.group(2))
            return fields.get(path)
        return None

    async def kill_process(self, grace: float) -> None:
        """SIGTERM to the process group this kubelet started, SIGKILL after `grace`."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace if grace > 0 else 0.5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def extended_requests(pod: Obj) -> dict[str, int]:
    """What a pod asks of extended resources (names with a '/', e.g. nvidia.com/gpu)."""
    total: dict[str, int] = {}
    for container in pod["spec"]["containers"]:
        resources = container.get("resources") or {}
        asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for resource, amount in asked.items():
            if "/" in resource:
                total[resource] = total.get(resource, 0) + int(amount)
    return total


def container_id(pod_uid: str, name: str) -> str:
    return f"containerd://{uuid.uuid5(uuid.NAMESPACE_URL, pod_uid + name).hex}"


def open_log(path: Path) -> BinaryIO:
    """The container's output file (opened once per start: a quick local open)."""
    return open(path, "ab")  # the caller closes it


_last_stamp = 0


def event_stamp() -> int:
    """Strictly increasing nanoseconds: event names sort in the order they happened."""
    global _last_stamp
    _last_stamp = max(time.time_ns(), _last_stamp + 1)
    return _last_stamp


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) references; $$(VAR) stays literal."""

    def replace(m: re.Match[str]) -> str:
        if m.group(0).startswith("$$"):
            return m.group(0)[1:]
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$?\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, value)
