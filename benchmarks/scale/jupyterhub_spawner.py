"""JupyterHub's spawner for the scale benchmark (run by JupyterHub 6's Python).

The same servers and the same check as Atrium's (`atrium_spawner.py`): state
`{"pid", "port"}`, `poll()` asks `probe.poll` (the process runs and its port
answers HTTP); `start()` refuses, `stop()` forgets. Loaded with
`c.JupyterHub.spawner_class = "jupyterhub_spawner.ScaleSpawner"` and this
directory on PYTHONPATH.
"""

from __future__ import annotations

from typing import Any

import probe
from jupyterhub.spawner import Spawner  # type: ignore[import-not-found]
from traitlets import Integer


class ScaleSpawner(Spawner):  # type: ignore[misc]
    """A server already running at 127.0.0.1:port in process pid."""

    # not `port`: JupyterHub's Spawner has one (where a server it starts listens)
    server_pid = Integer(0)
    server_port = Integer(0)

    async def start(self) -> tuple[str, int]:
        raise RuntimeError("the scale benchmark's servers are started by the benchmark")

    async def stop(self, now: bool = False) -> None:
        self.clear_state()

    async def poll(self) -> int | None:
        return await probe.poll(self.server_pid, self.server_port)

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.server_pid:
            state.update(pid=self.server_pid, port=self.server_port)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.server_pid = int(state.get("pid", 0))
        self.server_port = int(state.get("port", 0))

    def clear_state(self) -> None:
        super().clear_state()
        self.server_pid = 0
        self.server_port = 0
