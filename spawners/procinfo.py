"""What /proc says about processes: identity (pid + start time), liveness, groups.

A pid alone does not name a process: once it exits, the kernel may give the
number to another one. The local spawner therefore records a server's start
time (field 22 of /proc/<pid>/stat, clock ticks since boot) and the boot id,
and only ever signals a pid whose start time still matches. Kernels run in
their own sessions (jupyter_client starts them with setsid), so the servers'
descendants are found by an environment marker too (`marked_processes`).
Used by `spawners.local`; no asyncio here, only quick reads of /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str  # R, S, D, Z, T...
    ppid: int
    pgrp: int
    session: int
    start_time: int  # clock ticks after boot
    uid: int


def read_stat(pid: int) -> ProcStat | None:
    """The process's /proc status, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        uid = os.stat(f"/proc/{pid}").st_uid
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = raw[raw.rindex(b")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        start_time=int(fields[19]),
        uid=uid,
    )


def start_time(pid: int) -> int | None:
    stat = read_stat(pid)
    return None if stat is None else stat.start_time


_boot_id: str | None = None


def boot_id() -> str:
    """This boot's id: start times from another boot name other processes."""
    global _boot_id
    if _boot_id is None:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _boot_id = f.read().strip()
        except OSError:
            _boot_id = ""
    return _boot_id


def is_running(pid: int, started: int) -> bool:
    """Is `pid` still the process that started at `started`, and not a zombie?"""
    if pid <= 0:
        return False
    stat = read_stat(pid)
    return stat is not None and stat.start_time == started and stat.state not in ("Z", "X")


def exists_as(pid: int, started: int) -> bool:
    """Like `is_running`, but a zombie (exited, not yet reaped) counts as existing."""
    stat = read_stat(pid)
    return stat is not None and stat.start_time == started


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def server_processes(pgid: int | None, marker: str, uid: int | None) -> list[int]:
    """Live processes that belong to a server: members of its process group `pgid`
    (None once that group id may belong to someone else), and processes of `uid` whose
    environment holds the entry `marker` ('ATRIUM_SERVER_ID=...'): its kernels, which
    jupyter_client starts in sessions of their own."""
    needle = b"\0" + marker.encode() + b"\0" if marker else b""
    me = os.getpid()
    out = []
    for pid in all_pids():
        if pid == me:
            continue
        stat = read_stat(pid)
        if stat is None or stat.state in ("Z", "X"):
            continue
        if pgid is not None and stat.pgrp == pgid:
            out.append(pid)
            continue
        if not needle or (uid is not None and stat.uid != uid):
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = b"\0" + f.read() + b"\0"
        except OSError:
            continue
        if needle in env:
            out.append(pid)
    return out


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False if it has no members left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def describe_status(status: int) -> str:
    """'exited with status 3' / 'was killed by signal SIGKILL' for a Popen-style code."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"was killed by {name}"
    return f"exited with status {status}"
