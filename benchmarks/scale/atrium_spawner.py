"""Atrium's spawner for the scale benchmark: adopts servers it never started.

The servers (`servers.py`) are started by the benchmark and recorded in the
database as running, with `{"pid", "port"}` as their state; `poll()` checks that
the process runs and the port answers HTTP (`probe.py`), as a hub adopting them
after a restart must. `start()` refuses (nothing here starts servers), `stop()`
forgets the server and leaves the shared process alone. Loaded by Atrium with
`c.Hub.spawner_class = "atrium_spawner.ScaleSpawner"` and this directory on
PYTHONPATH. JupyterHub's twin: `jupyterhub_spawner.py`.
"""

from __future__ import annotations

from typing import Any

import probe

from spawners.base import Spawner


class ScaleSpawner(Spawner):
    """A server already running at 127.0.0.1:port in process pid."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pid = 0
        self.port = 0

    async def start(self) -> str:
        raise RuntimeError("the scale benchmark's servers are started by the benchmark")

    async def stop(self, now: bool = False) -> None:
        self.clear_state()

    async def poll(self) -> int | None:
        return await probe.poll(self.pid, self.port)

    def get_state(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port} if self.pid else {}

    def load_state(self, state: dict[str, Any]) -> None:
        self.pid = int(state.get("pid", 0))
        self.port = int(state.get("port", 0))

    def clear_state(self) -> None:
        self.pid = 0
        self.port = 0
