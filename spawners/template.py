"""The pre-forked template: a process that has already imported the single-user stack.

Most of a Jupyter server's start is Python importing jupyter_server and friends.
The template (`python -m spawners.template`, started by the hub's local spawner)
does that once (`singleuser.app.preload()`), then forks one child per server
start, and each child runs `singleuser.app.main(argv)` with the imports already
done. It is single-threaded and never starts an asyncio loop, so forking it is
safe.

The protocol, over a SOCK_SEQPACKET socket pair (one JSON object per message):

- template -> hub: {"ready": true, "pid": N} once preloaded (or {"error": "..."});
  {"id": K, "pid": N} for each fork; {"exited": N, "status": S} when a child ends
  (S as subprocess reports it: the exit code, or -signal);
- hub -> template: {"op": "fork", "id": K} with two file descriptors (SCM_RIGHTS):
  the read end of the child's start gate, and its log file.

The template never learns what a child will run: the child does setsid at once,
then blocks reading its start gate (`spawners.launcher`), a pipe whose write end
only the hub holds. The hub moves the child into its cgroups, saves its state,
and then writes the spec (argv, environment with the server's token, working
directory, uid/gid/groups, rlimits) to the gate. The child takes it on
(`launcher.become`: stdio to the log, every other descriptor closed, limits,
privileges dropped, environment replaced) and calls the target with argv[1:].
If the hub dies before that, the child reads EOF and exits. The token never
passes through the template, so no later child can find another user's secret
in memory inherited from it.

The template dies with the hub (PR_SET_PDEATHSIG, and EOF on its socket);
children it already forked are not its to kill. `TemplateClient` (the hub's end)
is below the process side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib
import itertools
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from spawners.launcher import GATE_CLOSED, GATE_FAILED, become, read_gate

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_MAX_MESSAGE = 1 << 16
_MAX_EXITS = 10000  # exit statuses the hub remembers per template
_CLOSED = "it was closed"
_MAX_FAILURES = 3  # templates that died or failed before the hub gives up on them


def load_callable(spec: str) -> Callable[..., Any]:
    """'package.module:function' -> the function."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    if not attr:
        raise ValueError(f"{spec!r} names no function (use 'module:function')")
    func = getattr(module, attr)
    if not callable(func):
        raise TypeError(f"{spec!r} is not callable")
    return func  # type: ignore[no-any-return]


# --- the template process --------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the hub died before the prctl took effect
        os._exit(0)


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.send(json.dumps(message).encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="atrium-template", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the control socket")
    parser.add_argument("--parent", type=int, required=True, help="the hub's pid")
    parser.add_argument("--target", required=True, help="module:function each child runs")
    parser.add_argument("--preload", default="", help="module:function called once first")
    parser.add_argument("--sys-path", default="[]", help="JSON list put before sys.path")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    sock = socket.socket(fileno=args.fd)
    extra = [p for p in json.loads(args.sys_path) if p not in sys.path]
    sys.path[:0] = extra
    try:
        if args.preload:
            module_name, _, attr = args.preload.partition(":")
            module = importlib.import_module(module_name)
            preload = getattr(module, attr, None) if attr else None
            if callable(preload):
                preload()
        target = load_callable(args.target)
        threads = len(os.listdir("/proc/self/task"))
        if threads != 1:
            raise RuntimeError(
                f"the preload left {threads} threads running, and forking a process with "
                "threads is unsafe"
            )
    except BaseException as e:
        _send(sock, {"error": f"{type(e).__name__}: {e}"})
        sys.exit(1)
    _serve(sock, target)


def _serve(sock: socket.socket, target: Callable[..., Any]) -> None:
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _send(sock, {"ready": True, "pid": os.getpid()})
    while True:
        _reap(sock)
        readable, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
        _reap(sock)
        if sock.fileno() not in readable:
            continue
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 4)
        except ConnectionError:
            data, fds = b"", []
        if not data:
            return  # the hub is gone: so is the template (its children live on)
        try:
            request = json.loads(data)
        except ValueError:
            request = {}
        if request.get("op") != "fork" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            _send(sock, {"id": request.get("id"), "error": "bad request"})
            continue
        gate, log_fd = fds
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(sock, (wake_r, wake_w), gate, log_fd, target)  # never returns
        os.close(gate)
        os.close(log_fd)
        _send(sock, {"id": request.get("id"), "pid": pid})


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, {"exited": pid, "status": os.waitstatus_to_exitcode(status)})


def _child(
    sock: socket.socket,
    wake: tuple[int, int],
    gate: int,
    log_fd: int,
    target: Callable[..., Any],
) -> None:
    """In the forked child: wait at the gate, become the server, run the target."""
    try:
        sock.close()
        signal.set_wakeup_fd(-1)
        for fd in wake:
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        spec = read_gate(gate)
        if spec is None:
            os._exit(GATE_CLOSED)
        os.close(gate)
        become(spec, log_fd)
    except BaseException as e:
        with contextlib.suppress(BaseException):
            message = f"atrium: the server could not be started: {e}\n"
            os.write(2, message.encode())
        os._exit(GATE_FAILED)
    sys.argv = [str(a) for a in spec["argv"]]
    target(sys.argv[1:])
    sys.exit(0)


# --- the hub's end -----------------------------------------------------------------------


class TemplateUnavailable(Exception):
    """The template is not running (failed to start, died, or was closed)."""


class TemplateClient:
    """The hub's connection to one template process (on the event loop it started on)."""

    def __init__(self, target: str, preload: str, env: dict[str, str]) -> None:
        self.target = target
        self.preload = preload
        self.env = env
        self.loop = asyncio.get_running_loop()
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.dead = False
        self.reason = ""
        self.exits: dict[int, int] = {}  # child pid -> exit status, as reported
        self._ready: asyncio.Future[None] = self.loop.create_future()
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def launch(self) -> None:
        """Start the template process; `ready()` waits until it has preloaded."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # started from the event loop's thread: PR_SET_PDEATHSIG follows the thread
            # that forked it, and the loop's thread lives as long as the hub
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "spawners.template",
                    f"--fd={theirs.fileno()}",
                    f"--parent={os.getpid()}",
                    f"--target={self.target}",
                    f"--preload={self.preload}",
                    f"--sys-path={json.dumps([p for p in sys.path if p])}",
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=self.env,
                close_fds=True,
            )
        except OSError as e:
            ours.close()
            self._gone(f"could not start: {e}")
            raise TemplateUnavailable(self.reason) from None
        finally:
            theirs.close()
        self.sock = ours
        ours.setblocking(False)
        self.loop.add_reader(ours.fileno(), self._readable)

    async def ready(self, within: float) -> None:
        """Wait until the template has preloaded; TemplateUnavailable if it does not."""
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), within)
        except TimeoutError:
            self.close(f"it did not preload within {within:g} seconds")
            raise TemplateUnavailable(self.reason) from None
        except TemplateUnavailable:
            self.close()
            raise

    def _readable(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(_MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError as e:
                self._gone(f"its socket failed: {e}")
                return
            if not data:
                self._gone("it exited")
                return
            try:
                self._handle(json.loads(data))
            except (ValueError, AttributeError, TypeError):
                log.warning("Ignoring a bad message from the server template")

    def _handle(self, message: dict[str, Any]) -> None:
        if "exited" in message:
            self.exits[int(message["exited"])] = int(message["status"])
            if len(self.exits) > _MAX_EXITS:  # forget the oldest
                del self.exits[next(iter(self.exits))]
        elif message.get("ready"):
            if not self._ready.done():
                self._ready.set_result(None)
        elif "id" in message:
            future = self._pending.pop(int(message["id"] or 0), None)
            if future is not None and not future.done():
                if "pid" in message:
                    # a new child may have the pid of one that exited long ago
                    self.exits.pop(int(message["pid"]), None)
                    future.set_result(int(message["pid"]))
                else:
                    future.set_exception(TemplateUnavailable(str(message.get("error"))))
        elif "error" in message:
            self._gone(f"it failed to preload: {message['error']}")

    def _gone(self, reason: str) -> None:
        if self.dead:
            return
        self.dead = True
        self.reason = reason
        if self.sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        error = TemplateUnavailable(reason)
        if not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()  # retrieved: a start that timed out never awaits it
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        if self.proc is not None and self.proc.poll() is None and not self.loop.is_closed():
            # it closed its socket while exiting: reap it once it has finished (a client
            # whose loop has closed is reaped by wait_closed)
            self.loop.call_later(1.0, self.proc.poll)

    async def fork(self, gate_fd: int, log_fd: int, within: float = 10.0) -> int:
        """Ask for a child waiting at `gate_fd`, writing to `log_fd`; returns its pid."""
        if self.dead or self.sock is None:
            raise TemplateUnavailable(self.reason or "not started")
        request_id = next(self._ids)
        future: asyncio.Future[int] = self.loop.create_future()
        self._pending[request_id] = future
        data = json.dumps({"op": "fork", "id": request_id}).encode()
        try:
            await self._send(data, [gate_fd, log_fd])
            return await asyncio.wait_for(future, within)
        except TimeoutError:
            raise TemplateUnavailable("it did not answer a fork request") from None
        finally:
            self._pending.pop(request_id, None)

    async def _send(self, data: bytes, fds: list[int]) -> None:
        sock = self.sock
        while True:
            if self.dead or sock is None:
                raise TemplateUnavailable(self.reason)
            try:
                socket.send_fds(sock, [data], fds)
                return
            except BlockingIOError:
                writable = self.loop.create_future()
                self.loop.add_writer(sock.fileno(), writable.set_result, None)
                try:
                    await writable
                finally:
                    self.loop.remove_writer(sock.fileno())
            except OSError as e:
                self._gone(f"its socket failed: {e}")
                raise TemplateUnavailable(self.reason) from None

    def exit_status(self, pid: int) -> int | None:
        """The child's exit status if the template reported it (it reaps its children)."""
        return self.exits.get(pid)

    def close(self, reason: str = "") -> None:
        """Stop the template (its released children keep running)."""
        self._gone(reason or _CLOSED)
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def wait_closed(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(self.proc.wait)


# one template per (target, preload, mode), started at the first spawn that needs it
_clients: dict[tuple[str, str, str], TemplateClient] = {}
_failures: dict[tuple[str, str, str], int] = {}


async def get_template(
    target: str, preload: str, mode: str, env: dict[str, str], within: float
) -> TemplateClient:
    """The running template for this target, started if needed; TemplateUnavailable when
    it cannot start or has failed too often (then servers start by a plain exec)."""
    key = (target, preload, mode)
    loop = asyncio.get_running_loop()
    client = _clients.get(key)
    if client is not None and client.loop is not loop:  # left by an event loop now closed
        del _clients[key]
        client.close()
        await client.wait_closed()
        client = None
    if client is not None and client.dead:
        del _clients[key]
        client.close()
        await client.wait_closed()
        if client.reason != _CLOSED:
            # this start goes by exec; a new template preloads meanwhile for later ones
            failures = _failures[key] = _failures.get(key, 0) + 1
            if failures >= _MAX_FAILURES:
                raise TemplateUnavailable(
                    f"{client.reason}, and it failed {failures} times, so it is not restarted"
                )
            _launch(key, env)
            raise TemplateUnavailable(f"{client.reason}; a new one is starting")
        client = None
    if client is None:
        failures = _failures.get(key, 0)
        if failures >= _MAX_FAILURES:
            raise TemplateUnavailable(f"it failed {failures} times, so it is not restarted")
        client = _launch(key, env)
    await client.ready(within)
    return client


def _launch(key: tuple[str, str, str], env: dict[str, str]) -> TemplateClient:
    client = TemplateClient(key[0], key[1], env)
    _clients[key] = client
    client.launch()  # TemplateUnavailable if it cannot even start; the next call counts it
    return client


def running_templates() -> list[TemplateClient]:
    return [client for client in _clients.values() if not client.dead]


async def shutdown_templates() -> None:
    """Stop every template this process started (servers they started keep running)."""
    clients = list(_clients.values())
    _clients.clear()
    _failures.clear()
    for client in clients:
        client.close()
    for client in clients:
        await client.wait_closed()


if __name__ == "__main__":
    main()
