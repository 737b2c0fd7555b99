"""The benchmark's side of the command channel (`channel.py`): one process it started,
asked one command at a time, every answer awaited with a deadline; its CPU and
memory read from `/proc/<pid>` so the figures cover the whole process whatever
it is doing."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubs import BenchError, ProcessGroup, log_tail

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Peer:
    """A process speaking the channel protocol on its stdin/stdout; stderr goes to `log`."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        procs: ProcessGroup,
        cwd: Path,
        env: dict[str, str],
        log: Path,
    ) -> None:
        self.name = name
        self.log = log
        with open(log, "wb") as out:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=out,
                start_new_session=True,
            )
        procs.procs.append((name, self.proc))
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, op: str, timeout: float = 60.0, **arguments: Any) -> Any:
        """Run `op` in the process; its result, or BenchError (with the log's tail)."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"op": op, **arguments}).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._failure(f"{op}: the process is gone") from None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._failure(f"{op}: no answer within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise self._failure(f"{op}: the process exited ({self.proc.poll()})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if not reply.get("ok"):
            raise self._failure(f"{op}: {reply.get('error')}\n{reply.get('trace', '')}")
        return reply.get("result")

    def _failure(self, message: str) -> BenchError:
        return BenchError(f"{self.name}: {message}\nits log:\n{log_tail(self.log, 40)}")

    def usage(self) -> dict[str, float]:
        """CPU seconds (user + system, all threads) and RSS in MiB, from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # after the ")": state is field 3, utime 14 and stime 15 (1-based, man 5 proc)
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        rss_kib = 0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
        return {"cpu": cpu, "rss_mib": round(rss_kib / 1024, 1)}

    def quit(self, procs: ProcessGroup) -> None:
        """Ask the process to end, then make sure it has (by its PID)."""
        with contextlib.suppress(BenchError):
            self.call("quit", timeout=30)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            procs.stop(self.proc)
        procs.procs[:] = [(n, p) for n, p in procs.procs if p is not self.proc]
