"""A task the hub runs while it serves (the culler, the event loop's monitor)."""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    """`start()` once the hub listens, `stop()` at shutdown; subclasses write `run()`."""

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        raise NotImplementedError
