"""What a cluster does besides the API server and the kubelet: garbage collection and the
node's service proxy.

`GarbageCollector` is the controller manager's garbage collector: when an object is
deleted, the objects in its namespace whose `metadata.ownerReferences` name its uid are
deleted too, in the background (shortly after, not in the same write), as
`propagationPolicy: Background` does. A per-pod Service owned by its pod goes with it.

`ServiceProxy` plays kube-proxy for ClusterIP Services. A real cluster IP is a virtual
address that kube-proxy's rules on each node send to one of the Service's ready
endpoints. Here cluster IPs (10.96.x.y) are not routable, so the proxy gives each
Service a real listening address on 127.0.0.1 instead, set as the annotation
`atrium.test/host-port` when the Service is created (an admission step, so it is in the
create response), and forwards every TCP connection to it to one of the Service's
endpoints, chosen at connection time as kube-proxy does: the pods of the Service's
namespace matching its selector that are Ready and not being deleted, at the target
port (a container port by number or name, which on the simulated node is the pod's own
host port, see `tests.kube.kubelet`). With no ready endpoint the connection is closed at
once, as kube-proxy rejects it. Deleting the Service closes its listener. A spawner
under test connects to the annotation's port where it would connect to
`<clusterIP>:<port>` (`tests.test_kube_pods.NodeSpawner.service_address`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from typing import Any

from tests.kube.apiserver import FakeApiServer
from tests.kube.kubelet import POD_IP, PORT_ANNOTATION
from tests.kube.store import ApiError, Obj, WatchEvent

log = logging.getLogger("tests.kube.controllers")

COPY_CHUNK = 65536


class GarbageCollector:
    """Deletes the dependants of a deleted object (by ownerReferences uid)."""

    def __init__(self, server: FakeApiServer) -> None:
        self.store = server.store
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.store.subscribers.append(self.on_change)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.store.subscribers.remove(self.on_change)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def on_change(self, plural: str, event: WatchEvent) -> None:
        if event.type != "DELETED":
            return
        meta = event.obj["metadata"]
        task = asyncio.get_running_loop().create_task(
            self.collect(meta.get("namespace", ""), meta["uid"])
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def collect(self, namespace: str, owner_uid: str) -> None:
        await asyncio.sleep(0)  # after the owner's own write, as the controller would be
        for plural in self.store.kinds:
            for obj in self.store.items(plural, namespace):
                owners = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in owners):
                    with contextlib.suppress(ApiError):  # deleted meanwhile
                        self.store.remove(plural, namespace, obj["metadata"]["name"])


class ServiceProxy:
    """kube-proxy for ClusterIP Services, each on its own port of 127.0.0.1."""

    def __init__(self, server: FakeApiServer) -> None:
        self.server = server
        self.store = server.store
        # (namespace, name) -> the listening server for the Service's first port
        self.listeners: dict[tuple[str, str], asyncio.Server] = {}
        # bound at admission, served once the create is stored
        self.pending: dict[tuple[str, str], tuple[socket.socket, Obj]] = {}
        self.connections: set[asyncio.Task[None]] = set()
        self.turn = itertools.count()

    def start(self) -> None:
        self.server.admission.append(self.admit)
        self.store.subscribers.append(self.on_change)

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.server.admission.remove(self.admit)
        with contextlib.suppress(ValueError):
            self.store.subscribers.remove(self.on_change)
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        for sock, _ in self.pending.values():
            sock.close()
        self.pending.clear()
        for task in self.connections:
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)

    def admit(self, plural: str, namespace: str, obj: Obj) -> None:
        """On a Service's create: listen for it, and say where (the annotation)."""
        if plural != "services":
            return
        spec = obj.get("spec") or {}
        if spec.get("type", "ClusterIP") != "ClusterIP" or spec.get("clusterIP") == "None":
            return
        if not spec.get("ports"):
            return
        name = obj["metadata"]["name"]
        key = (namespace, name)
        if self.store.find("services", namespace, name) is not None:
            return  # the create fails with 409 AlreadyExists
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((POD_IP, 0))
        sock.listen(64)
        sock.setblocking(False)
        annotations = obj["metadata"].setdefault("annotations", {})
        annotations[PORT_ANNOTATION] = str(sock.getsockname()[1])
        self.pending[key] = (sock, spec["ports"][0])

    def on_change(self, plural: str, event: WatchEvent) -> None:
        if plural != "services":
            return
        meta = event.obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if event.type == "DELETED":
            listener = self.listeners.pop(key, None)
            if listener is not None:
                listener.close()
            return
        if event.type == "ADDED" and key in self.pending:
            sock, port = self.pending.pop(key)
            task = asyncio.get_running_loop().create_task(self.serve(key, sock, port))
            self.connections.add(task)
            task.add_done_callback(self.connections.discard)

    async def serve(self, key: tuple[str, str], sock: socket.socket, port: Obj) -> None:
        namespace, name = key

        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.forward(namespace, name, port, reader, writer)

        listener = await asyncio.start_server(forward, sock=sock)
        if self.store.find("services", namespace, name) is None:
            listener.close()  # deleted meanwhile
        else:
            self.listeners[key] = listener

    def endpoint(self, namespace: str, name: str, port: Obj) -> int | None:
        """The host port of one ready endpoint of the Service, in turn; None without one."""
        service = self.store.find("services", namespace, name)
        if service is None:
            return None
        selector: dict[str, str] = (service.get("spec") or {}).get("selector") or {}
        if not selector:
            return None  # a Service without a selector has no endpoints of its own
        ports: list[int] = []
        for pod in self.store.items("pods", namespace):
            labels = pod["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            if "deletionTimestamp" in pod["metadata"] or not _ready(pod):
                continue
            host_port = _target_port(pod, port.get("targetPort", port.get("port")))
            if host_port is not None:
                ports.append(host_port)
        if not ports:
            return None
        return ports[next(self.turn) % len(ports)]

    async def forward(
        self,
        namespace: str,
        name: str,
        port: Obj,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            target = self.endpoint(namespace, name, port)
            if target is None:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(POD_IP, target)
            except OSError:
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            if task is not None:
                self.connections.discard(task)


def _ready(pod: Obj) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _target_port(pod: Obj, target: Any) -> int | None:
    """Where the pod answers for `target` (a port number or a container port's name): the
    pod's host port for its first container's first port, else the number itself."""
    containers = pod["spec"].get("containers") or []
    ports = (containers[0].get("ports") or []) if containers else []
    first = ports[0] if ports else None
    host = (pod["metadata"].get("annotations") or {}).get(PORT_ANNOTATION)
    if isinstance(target, str):
        named = [p for c in containers for p in c.get("ports") or [] if p.get("name") == target]
        if not named:
            return None
        target = named[0]["containerPort"]
    if first is not None and host and target == first.get("containerPort"):
        return int(host)
    return int(target) if isinstance(target, int) else None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(COPY_CHUNK):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
