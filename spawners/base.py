"""The spawner contract: how the hub starts, stops and watches one user server.

A spawner instance belongs to one server (`user_name`, `server_name`). The hub
calls `start()` (returns the URL the proxy should route to), `poll()` (None
while running, an exit status once it is gone), `stop()`, and persists
`get_state()` in the database so a restarted hub can find the server again via
`load_state()`. `progress()` yields events for the spawn-pending page.
Concrete spawners: `spawners.local` (processes) and `spawners.kubernetes` (pods).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from traitlets import Dict, Float, Unicode
from traitlets.config import LoggingConfigurable


class Spawner(LoggingConfigurable):
    """Base class: subclasses implement start, stop and poll."""

    start_timeout = Float(
        120.0,
        help="Seconds a server may take to start before the spawn fails and is cleaned up.",
    ).tag(config=True)
    stop_timeout = Float(
        30.0,
        help="Seconds a server may take to stop before it is killed.",
    ).tag(config=True)
    environment = Dict(
        help="Extra environment variables for every user server (values are strings).",
    ).tag(config=True)
    default_url = Unicode("", help="The URL path a user lands on in their server, e.g. /lab.").tag(
        config=True
    )

    def __init__(
        self,
        *,
        user_name: str,
        server_name: str = "",
        env: dict[str, str] | None = None,
        user_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.user_name = user_name
        self.server_name = server_name
        self.env = dict(env or {})
        self.user_options = dict(user_options or {})
        # set by the hub before start(): stores get_state() in the database at once
        self.save_state: Callable[[dict[str, Any]], Awaitable[None]] = _ignore_state

    def get_env(self) -> dict[str, str]:
        """The server's environment: `c.Spawner.environment`, then the hub's contract
        variables (`self.env`, set by the hub before each start), which win."""
        return {**{k: str(v) for k, v in self.environment.items()}, **self.env}

    @property
    def log_name(self) -> str:
        return f"{self.user_name}/{self.server_name}" if self.server_name else self.user_name

    async def start(self) -> str:
        """Start the server; return the URL it listens on once it answers."""
        raise NotImplementedError

    async def stop(self, now: bool = False) -> None:
        """Stop the server; return once it is gone."""
        raise NotImplementedError

    async def poll(self) -> int | None:
        """None while the server runs; its exit status (or 0) once it has stopped."""
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        """What the hub must store to find this server again after a restart."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore from `get_state()`'s output."""

    def clear_state(self) -> None:
        """Forget the stopped server."""

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Events while starting: {progress: 0-100, message: str}."""
        return
        yield


async def _ignore_state(state: dict[str, Any]) -> None:
    """The default `save_state`: a spawner used without a hub keeps nothing."""
