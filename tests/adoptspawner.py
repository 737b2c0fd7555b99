"""A process spawner that stores its state as soon as its process exists.

Real spawners call the hub's `save_state` hook during `start()`, so that a hub
killed in the middle of a start leaves the process's identity in the database
and the next hub can end it (`hub.spawn.Orchestrator.adopt`). `ProcessSpawner`
(`tests.spawner`) does not; this one does, once, right after launching.
"""

from __future__ import annotations

from tests.spawner import ProcessSpawner


class StateSavingSpawner(ProcessSpawner):
    _saved = False

    async def start(self) -> str:
        self._saved = False
        return await super().start()

    async def _answers(self) -> bool:
        # first called once the process runs, before the server answers
        if not self._saved:
            self._saved = True
            await self.save_state(self.get_state())
        return await super()._answers()
