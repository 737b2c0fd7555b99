"""Start or stop one server through the hub's API and wait until it is done.

A start asks `POST .../server`: 201 means ready; 202 means the hub is still
starting it, so its progress stream (`GET .../server/progress`, server-sent
events) is followed until the ready or failed event. A hub that refuses with
429 (too many starts at once) is asked again after its Retry-After, until the
deadline. A stop asks `DELETE .../server`: 204 means stopped; 202 means still
stopping, so the user model is polled until the server is stopped.

Everything here runs in one worker thread per server (`hub.cli.servers` runs
them `--parallel` at a time) and returns an `Outcome`, never raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hub.cli.errors import CLIError
from hub.cli.rest import HubError, RestBackend, server_path

# polling a stopping server: first wait, growth, longest wait (seconds)
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.2, 1.5, 2.0
# what a 429 without Retry-After waits before asking again
RETRY_DEFAULT = 5.0


@dataclass(frozen=True)
class ServerId:
    user: str
    server: str = ""

    @property
    def label(self) -> str:
        return f"{self.user}/{self.server}" if self.server else self.user


@dataclass(frozen=True)
class Outcome:
    target: ServerId
    ok: bool
    result: str  # ready, already running, stopped, already stopped, failed, timed out, skipped
    seconds: float
    message: str = ""


class TimedOut(Exception):
    pass


def server_state(model: Any) -> str:
    """ready, pending spawn, pending stop or stopped, from a server model."""
    if not isinstance(model, dict) or model.get("stopped", False):
        return "stopped"
    if model.get("pending"):
        return f"pending {model['pending']}"
    return "ready" if model.get("ready") else "stopped"


class ServerControl:
    def __init__(
        self,
        rest: RestBackend,
        wait: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rest = rest
        self.wait = wait  # seconds each server gets
        self.sleep = sleep

    # --- the one place that measures and catches ------------------------------------

    def run(self, target: ServerId, action: Callable[[ServerId, float], str]) -> Outcome:
        started = time.monotonic()
        deadline = started + self.wait
        try:
            result = action(target, deadline)
            return Outcome(target, True, result, time.monotonic() - started)
        except TimedOut as e:
            message = str(e) or f"not done within {self.wait:g} seconds"
            return Outcome(target, False, "timed out", time.monotonic() - started, message)
        except CLIError as e:
            if time.monotonic() >= deadline:
                message = f"not done within {self.wait:g} seconds"
                return Outcome(target, False, "timed out", time.monotonic() - started, message)
            return Outcome(target, False, "failed", time.monotonic() - started, e.message)
        except Exception as e:  # one server's surprise must not stop the others
            message = f"unexpected {type(e).__name__}: {e}"
            return Outcome(target, False, "failed", time.monotonic() - started, message)

    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimedOut()
        return left

    # --- state --------------------------------------------------------------------------

    def state(self, target: ServerId, deadline: float) -> str:
        path = f"/users/{quote(target.user, safe='')}?include_stopped_servers=1"
        _status, user = self.rest.request("GET", path, timeout=self._remaining(deadline))
        servers = user.get("servers") if isinstance(user, dict) else None
        model = servers.get(target.server) if isinstance(servers, dict) else None
        return server_state(model)

    # --- starting -----------------------------------------------------------------------

    def start(self, target: ServerId, deadline: float) -> str:
        path = server_path(target.user, target.server)
        while True:
            try:
                status, _ = self.rest.request("POST", path, timeout=self._remaining(deadline))
            except HubError as e:
                if e.status == 429:
                    pause = e.retry_after if e.retry_after is not None else RETRY_DEFAULT
                    self.sleep(min(pause, self._remaining(deadline)))
                    continue
                if e.status == 400 and "is already running" in e.message:
                    return "already running"
                if e.status == 400 and "is pending spawn" in e.message:
                    break
                if e.status == 400 and "is pending stop" in e.message:
                    self._wait_stopped(target, deadline)
                    continue
                raise
            if status == 201:
                return "ready"
            break
        return self._follow(target, deadline)

    def _follow(self, target: ServerId, deadline: float) -> str:
        """Wait for a start under way: its progress events, then the user model."""
        progress = server_path(target.user, target.server) + "/progress"
        delay = POLL_FIRST
        while True:
            self._remaining(deadline)
            try:
                for event in self.rest.events(progress, deadline):
                    if event.get("ready"):
                        return "ready"
                    if event.get("failed"):
                        raise CLIError(str(event.get("message") or "the server failed to start"))
            except HubError as e:
                if e.status != 400:  # 400: not starting (any more); the model says why
                    raise
            # the stream ended without its last event (the hub went away, or a read
            # timed out): the user model says where the start is
            state = self.state(target, deadline)
            if state == "ready":
                return "ready"
            if state == "stopped":
                raise CLIError("the server stopped before it was ready; see the hub's log")
            self.sleep(min(delay, self._remaining(deadline)))
            delay = min(delay * POLL_GROWTH, POLL_MAX)

    # --- stopping -----------------------------------------------------------------------

    def stop(self, target: ServerId, deadline: float) -> str:
        path = server_path(target.user, target.server)
        status, _ = self.rest.request("DELETE", path, timeout=self._remaining(deadline))
        if status != 202:
            return "stopped"
        self._wait_stopped(target, deadline)
        return "stopped"

    def _wait_stopped(self, target: ServerId, deadline: float) -> None:
        delay = POLL_FIRST
        while True:
            state = self.state(target, deadline)
            if state == "stopped":
                return
            if state == "ready":
                raise CLIError("the server failed to stop and is still running")
            self.sleep(min(delay, self._remaining(deadline)))
            delay = min(delay * POLL_GROWTH, POLL_MAX)
