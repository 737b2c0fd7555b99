"""Progress of server starts: the events the spawn-pending page and API clients follow.

Each start in progress has one `ProgressLog` (owned by `hub.spawn.Orchestrator`):
the hub's own events ("Server requested", "Spawning server...", routing), the
spawner's (`Spawner.progress()`, copied in by `follow_spawner`), and a last
event saying the server is ready or the start failed. Events are kept from the
first, so every watcher, however late it connects, sees them all; the log is
dropped when the start ends, and watchers still reading keep it only until they
have sent the last event. `hub.api.servers` streams a log as server-sent events,
in JupyterHub's format:

    data: {"progress": 0, "message": "Server requested"}
    data: {"progress": 100, "ready": true, "message": "Server ready at /user/ann/",
           "html_message": "...", "url": "/user/ann/"}
    data: {"progress": 100, "failed": true, "message": "The server failed to start: ..."}
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from typing import Any

import orjson

from spawners.base import Spawner

log = logging.getLogger(__name__)

# a spawner that yields events without end cannot grow a log past this
MAX_EVENTS = 500
MAX_MESSAGE = 1000  # characters of a spawner's message kept
# keys only the hub may set: a spawner's event cannot end a watcher's wait
_FINAL_KEYS = ("ready", "failed", "url")


def requested_event() -> dict[str, Any]:
    return {"progress": 0, "message": "Server requested"}


def spawning_event() -> dict[str, Any]:
    return {"progress": 10, "message": "Spawning server..."}


def routing_event() -> dict[str, Any]:
    return {"progress": 90, "message": "Server started; connecting it to the proxy"}


def ready_event(url: str) -> dict[str, Any]:
    """`url` is the server's prefix (`/user/ann/`), as JupyterHub sends it."""
    escaped = html.escape(url)
    return {
        "progress": 100,
        "ready": True,
        "message": f"Server ready at {url}",
        "html_message": f'Server ready at <a href="{escaped}">{escaped}</a>',
        "url": url,
    }


def failed_event(message: str) -> dict[str, Any]:
    return {"progress": 100, "failed": True, "message": message}


def spawner_event(raw: object) -> dict[str, Any] | None:
    """A spawner's event as watchers get it, or None if it is not an event at all.

    `progress` is clamped to 0-100 (dropped if not a number), `message` is a bounded
    string, and `ready`/`failed`/`url` are removed (JupyterHub drops `ready` too).
    """
    if not isinstance(raw, dict):
        return None
    event = {k: v for k, v in raw.items() if isinstance(k, str) and k not in _FINAL_KEYS}
    progress = event.pop("progress", None)
    if isinstance(progress, int | float) and not isinstance(progress, bool):
        event["progress"] = max(0, min(100, progress))
    message = event.get("message", "")
    event["message"] = (message if isinstance(message, str) else str(message))[:MAX_MESSAGE]
    return event


class ProgressLog:
    """One start's events in order; `final` once the ready or failed event is in.

    Watchers register an `asyncio.Event` in `watchers`; it is set whenever the log
    grows, so each watcher sends what is new and waits again.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.frames: list[bytes] = []  # each event as a server-sent event
        self.final = False
        self.watchers: set[asyncio.Event] = set()

    @classmethod
    def finished(cls, event: dict[str, Any]) -> ProgressLog:
        """A log holding only its last event (a server already ready, or failed)."""
        done = cls()
        done.finish(event)
        return done

    def add(self, event: dict[str, Any]) -> bool:
        """Append an event; False (and nothing kept) if the log is over or full, or the
        event cannot be written as JSON."""
        if self.final or len(self.events) >= MAX_EVENTS:
            return False
        return self._append(event)

    def finish(self, event: dict[str, Any]) -> None:
        """Append the last event (ready or failed); later events are ignored."""
        if not self.final:
            self._append(event)
            self.final = True
            self._wake()

    def _append(self, event: dict[str, Any]) -> bool:
        try:
            frame = b"data: " + orjson.dumps(event) + b"\n\n"
        except TypeError:
            log.warning("A progress event that is not JSON was dropped: %.200r", event)
            return False
        self.events.append(event)
        self.frames.append(frame)
        self._wake()
        return True

    def _wake(self) -> None:
        for watcher in self.watchers:
            watcher.set()


async def follow_spawner(spawner: Spawner, events: ProgressLog) -> None:
    """Copy `spawner.progress()` into `events` until cancelled (when the start ends).

    A spawner whose progress fails only loses its events: the start goes on.
    """
    stream = spawner.progress()
    try:
        async for raw in stream:
            event = spawner_event(raw)
            if event is None:
                log.warning("%s: ignoring a progress event that is not a dict", spawner.log_name)
            else:
                events.add(event)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        log.warning("Progress events of %s stopped: %s", spawner.log_name, e)
    finally:
        # an async generator is closed here, not whenever it is garbage-collected
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
