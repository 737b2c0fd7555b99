"""The tests' fake Kubernetes API server and simulated node, in a process of their own.

    .venv/bin/python benchmarks/kube/fake_server.py WORKDIR

Runs `tests.kube.apiserver.FakeApiServer` (real list/watch semantics) and
`tests.kube.kubelet.Kubelet` (pods run as local processes) on 127.0.0.1, so
the spawner processes the benchmark measures share nothing with it. Commands
on the channel (`channel.py`):

- `info`: the API URL;
- `calls(since)`: every request recorded from index `since` on (method, path,
  query, watch) and the next index: what `bench.py` counts;
- `preload(namespace, count, python)`: store `count` running pods at once
  (straight into the store: no requests, no watch history worth replaying),
  labelled as both spawners label theirs and bound to another node, so the
  simulated kubelet leaves them alone;
- `modify(namespace, count, rate)`: `count` pod status changes, round-robin
  over the preloaded pods, `rate` per second; each is one MODIFIED watch event.

On SIGTERM, `quit` or the end of stdin it stops the kubelet (and with it every
pod process it started) and the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))
# bench.py's copy of the code measured, taken when the benchmark began
sys.path.insert(0, os.environ.get("ATRIUM_BENCH_SRC") or str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from channel import serve  # noqa: E402

from tests.kube.apiserver import FakeApiServer  # noqa: E402
from tests.kube.kubelet import Kubelet  # noqa: E402
from tests.kube.store import Obj, now_iso  # noqa: E402

OTHER_NODE = "bench-other-node"
# room for every event of the modification stream: no spawner falls out of history
HISTORY = 50_000


def preloaded_pod(i: int) -> Obj:
    """A running user pod of about the size a real one has (~3 KB of JSON), carrying
    Atrium's labels and KubeSpawner's (`component=singleuser-server` is both's)."""
    user = f"user{i:05d}"
    stamp = now_iso()
    image = "quay.io/jupyter/base-notebook:2024-10-07"
    env = {
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": f"http://hub:8081/hub/api/users/{user}/activity",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"/user/{user}/oauth_callback",
        "JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/",
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/{user}/",
        "JUPYTERHUB_USER": user,
        "JUPYTER_IMAGE": image,
        "MEM_LIMIT": "2147483648",
    }
    ready = "True"
    return {
        "metadata": {
            "name": f"jupyter-{user}",
            "labels": {
                "app": "jupyterhub",
                "heritage": "jupyterhub",
                "component": "singleuser-server",
                "hub.jupyter.org/network-access-hub": "true",
                "hub.jupyter.org/username": user,
                "hub.jupyter.org/servername": "",
                "app.kubernetes.io/name": "atrium",
                "app.kubernetes.io/component": "singleuser-server",
                "app.kubernetes.io/managed-by": "atrium-hub",
            },
            "annotations": {
                "hub.jupyter.org/username": user,
                "hub.jupyter.org/servername": "",
            },
        },
        "spec": {
            "nodeName": OTHER_NODE,
            "restartPolicy": "OnFailure",
            "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": False,
            "securityContext": {"fsGroup": 100, "runAsUser": 1000},
            "containers": [
                {
                    "name": "notebook",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["jupyterhub-singleuser"],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "ports": [{"name": "notebook-port", "containerPort": 8888}],
                    "resources": {
                        "limits": {"memory": "2Gi", "cpu": "1"},
                        "requests": {"memory": "1Gi", "cpu": "100m"},
                    },
                    "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
                }
            ],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": f"claim-{user}"}}],
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.4",
            "podIP": f"10.1.{i // 250}.{i % 250 + 2}",
            "startTime": stamp,
            "conditions": [
                {"type": kind, "status": ready, "lastProbeTime": None, "lastTransitionTime": stamp}
                for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "notebook",
                    "image": image,
                    "imageID": f"docker-pullable://{image}@sha256:{'0' * 64}",
                    "containerID": f"containerd://{i:064x}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": stamp}},
                    "lastState": {},
                }
            ],
        },
    }


class Runner:
    def __init__(self, workdir: Path) -> None:
        self.server = FakeApiServer(history_size=HISTORY)
        self.workdir = workdir
        self.kubelet: Kubelet | None = None
        self.preloaded: dict[str, list[str]] = {}
        self.modified = 0

    async def start(self) -> None:
        await self.server.start()
        self.kubelet = Kubelet(self.server, self.workdir, restart_backoff=0.2)
        self.kubelet.start()

    async def stop(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.stop()
        await self.server.stop()

    async def info(self) -> dict[str, Any]:
        return {"url": self.server.url}

    async def calls(self, since: int = 0) -> dict[str, Any]:
        records = self.server.requests[since:]
        return {
            "next": since + len(records),
            "calls": [[r.method, r.path, r.query, r.watch] for r in records],
        }

    async def preload(self, namespace: str, count: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        names = self.preloaded.setdefault(namespace, [])
        store = self.server.store
        for i in range(len(names), len(names) + count):
            pod = preloaded_pod(i)
            store.create("pods", namespace, pod)
            names.append(pod["metadata"]["name"])
            if i % 200 == 0:
                await asyncio.sleep(0)
        return {"pods": len(names), "rv": store.rv, "seconds": time.perf_counter() - t0}

    async def modify(self, namespace: str, count: int, rate: float) -> dict[str, Any]:
        """`count` status changes at `rate` per second, in 10 ms batches."""
        names = self.preloaded[namespace]
        store = self.server.store
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        done, last, last_rv = 0, "", 0
        while done < count:
            due = min(count, int((loop.time() - t0) * rate) + 1)
            while done < due:
                self.modified += 1
                name = names[self.modified % len(names)]
                serial = self.modified

                def change(pod: Obj, serial: int = serial) -> None:
                    status = pod["status"]["containerStatuses"][0]
                    status["restartCount"] = serial
                    status["state"] = {"running": {"startedAt": now_iso()}}
                    pod["status"]["conditions"][1]["lastProbeTime"] = now_iso()

                new = store.update("pods", namespace, name, change)
                last, last_rv = name, int(new["metadata"]["resourceVersion"])
                done += 1
            await asyncio.sleep(0.01)
        return {"rv": last_rv, "last_pod": last, "seconds": loop.time() - t0}


async def main() -> None:
    runner = Runner(Path(sys.argv[1]))
    await runner.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(
            {
                "info": runner.info,
                "calls": runner.calls,
                "preload": runner.preload,
                "modify": runner.modify,
            },
            stop,
        )
    finally:
        await runner.stop()


if __name__ == "__main__":
    asyncio.run(main())
