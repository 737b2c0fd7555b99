"""A real spawner for the API tests: each server is a local `http.server` process.

`ProcessSpawner` implements the contract in `spawners.base`: `start()` launches a
real subprocess (Python's `http.server`, bound to 127.0.0.1 on a free port) and
returns its URL once it answers HTTP; `stop()` ends it by PID and waits until it
is gone; `poll()` asks the process; `get_state()`/`load_state()` keep its pid and
port. Traits make it slow or fail on purpose, and a start request's user options
may override `start_delay` and `failure` for that one start:

- `start_delay`: seconds the process waits before it listens;
- `failure`: "exception" (start() raises), "never_answer" (a process that never
  listens, so the start timeout hits), "exit" (a process that exits at once);
- `stop_delay`: seconds stop() waits before it signals the process;
- `fail_stop`: how many stop() calls raise before one succeeds.

While a server starts, `progress()` yields an event once its process runs and
one every `progress_interval` seconds until it answers.

Every process started here is remembered (`started_pids`) and killed at
interpreter exit if still running, so a failing test cannot leak one.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from traitlets import Bool, Enum, Float, Integer, List, Unicode

from spawners.base import Spawner
from tests.pg import free_port

FAILURES = ("", "exception", "never_answer", "exit")

# every process started here, until it has been reaped
_live: dict[int, subprocess.Popen[bytes]] = {}
started_pids: list[int] = []
# what the servers serve: an empty directory
_EMPTY_DIR = tempfile.mkdtemp(prefix="atrium-test-spawner-")


@atexit.register
def _kill_leftovers() -> None:
    for pid, proc in list(_live.items()):
        if proc.poll() is None:
            os.kill(pid, signal.SIGKILL)
            proc.wait()
        _live.pop(pid, None)
    os.rmdir(_EMPTY_DIR)


def pid_alive(pid: int) -> bool:
    """Is the process with this PID still running (a reaped child is not)?"""
    proc = _live.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an exited process nobody has reaped yet (a zombie) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _server_command(port: int, delay: float) -> list[str]:
    script = (
        "import functools, http.server, sys, time\n"
        "time.sleep(float(sys.argv[3]))\n"
        "class Quiet(http.server.SimpleHTTPRequestHandler):\n"
        "    def log_message(self, *args): pass\n"
        "handler = functools.partial(Quiet, directory=sys.argv[2])\n"
        "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), handler)"
        ".serve_forever()\n"
    )
    return [sys.executable, "-c", script, str(port), _EMPTY_DIR, str(delay)]


class ProcessSpawner(Spawner):
    """Runs each user server as a local `http.server` process."""

    start_delay = Float(0.0, help="Seconds the process waits before it listens.").tag(config=True)
    failure = Enum(FAILURES, "", help="Fail the start on purpose (see the module doc).").tag(
        config=True
    )
    stop_delay = Float(0.0, help="Seconds stop() waits before it signals the process.").tag(
        config=True
    )
    fail_stop = Integer(0, help="How many stop() calls raise before one succeeds.").tag(config=True)
    cmd = List(
        Unicode(),
        help="Run this instead of http.server ({port} is replaced by the port to listen on).",
    ).tag(config=True)
    progress_interval = Float(
        0.5, help="Seconds between progress events while the server does not answer yet."
    ).tag(config=True)
    kill_at_exit = Bool(
        True,
        help="Kill this spawner's servers when the Python process that started them exits "
        "(off for tests that check servers outlive a hub).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pid = 0
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        if "start_delay" in self.user_options:
            self.start_delay = float(self.user_options["start_delay"])
        if "failure" in self.user_options:
            self.failure = str(self.user_options["failure"])

    def _command(self) -> list[str]:
        if self.cmd:
            return [part.format(port=self.port) for part in self.cmd]
        if self.failure == "never_answer":
            return [sys.executable, "-c", "import time; time.sleep(3600)"]
        if self.failure == "exit":
            return [sys.executable, "-c", "raise SystemExit(3)"]
        return _server_command(self.port, self.start_delay)

    async def start(self) -> str:
        if self.failure == "exception":
            raise RuntimeError("ProcessSpawner was told to fail")
        self.port = free_port()
        proc = await asyncio.to_thread(
            subprocess.Popen,
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # a real server's complaints show in the test's captured output
            stderr=None if self.cmd else subprocess.DEVNULL,
            start_new_session=True,
            # the contract's variables, as a real server gets them (readable in /proc)
            env=self._env(),
        )
        self._proc = proc
        self.pid = proc.pid
        if self.kill_at_exit:
            _live[proc.pid] = proc
        started_pids.append(proc.pid)
        while not await self._answers():
            if proc.poll() is not None:
                raise RuntimeError(f"the server process exited with status {proc.returncode}")
            await asyncio.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", ""), **self.get_env()}
        # what only the spawner knows: where the server listens
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        env["JUPYTERHUB_SERVICE_URL"] = f"http://127.0.0.1:{self.port}{prefix}"
        return env

    async def _answers(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"HEAD / HTTP/1.0\r\n\r\n")
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), timeout=2)
            return status.startswith(b"HTTP/")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Events while starting (the hub stops reading them when the start ends)."""
        # start() sets the pid once the process runs (polled, so start() stays as it is)
        while not self.pid:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        yield {"progress": 30, "message": f"Server process {self.pid} started"}
        waited = 0.0
        while True:
            await asyncio.sleep(self.progress_interval)
            waited += self.progress_interval
            yield {
                "progress": min(85, 30 + int(waited * 10)),
                "message": f"Waiting for the server to answer ({waited:.1f} s)",
            }

    async def stop(self, now: bool = False) -> None:
        if self.fail_stop > 0:
            self.fail_stop -= 1
            raise RuntimeError("ProcessSpawner was told not to stop")
        if self.stop_delay and not now:
            await asyncio.sleep(self.stop_delay)
        pid = self.pid
        if not pid:
            return
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL if now else signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while pid_alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.02)
        _live.pop(pid, None)
        self._proc = None

    async def poll(self) -> int | None:
        if not self.pid:
            return 0
        if self._proc is not None:
            return self._proc.poll()
        return None if pid_alive(self.pid) else 0

    def get_state(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port} if self.pid else {}

    def load_state(self, state: dict[str, Any]) -> None:
        self.pid = int(state.get("pid", 0))
        self.port = int(state.get("port", 0))
        self._proc = _live.get(self.pid)

    def clear_state(self) -> None:
        self.pid = 0
        self.port = 0
        self._proc = None
