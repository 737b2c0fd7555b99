"""What /proc says about the hubs' servers: process trees, their memory, leftovers.

Only reads /proc, except `kill` (SIGKILL by PID, for server processes a hub
left behind). Neighbours: `hubsetup.py` (which processes belong to a hub
itself), `scenarios.py` (the memory step and the leftover checks).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def _pids() -> list[int]:
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit()]


def parent_of(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1])


def children_map() -> dict[int, list[int]]:
    """Every live process's children, by parent PID (one pass over /proc)."""
    kids: dict[int, list[int]] = {}
    for pid in _pids():
        ppid = parent_of(pid)
        if ppid is not None:
            kids.setdefault(ppid, []).append(pid)
    return kids


def descendants(pid: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    """The children of `pid`, their children, and so on (not `pid` itself)."""
    kids = children_map() if kids is None else kids
    found: list[int] = []
    todo = list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(kids.get(p, []))
    return found


def cmdline(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def cwd(pid: int) -> str | None:
    try:
        return os.readlink(PROC / str(pid) / "cwd")
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Running (a zombie, waiting for its parent to reap it, is not)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def working_under(root: Path) -> list[int]:
    """Live processes whose working directory is inside `root` (servers and kernels
    start in their user's home, which the benchmark puts under its own directory)."""
    prefix = str(root.resolve()) + os.sep
    return [p for p in _pids() if (c := cwd(p)) and (c + os.sep).startswith(prefix) and alive(p)]


@dataclass(frozen=True)
class Memory:
    """A process tree's memory in KiB. PSS shares each page among the processes
    mapping it; USS is what only this tree maps (freed when it exits)."""

    pss_kib: int
    rss_kib: int
    uss_kib: int
    processes: int
    source: str  # "smaps_rollup" or "status" (RSS only, where smaps_rollup is missing)


def _rollup(pid: int) -> dict[str, int] | None:
    try:
        lines = (PROC / str(pid) / "smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    out: dict[str, int] = {}
    for line in lines[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


def _status_rss(pid: int) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(pids: Iterable[int]) -> Memory:
    pss = rss = uss = count = 0
    source = "smaps_rollup"
    for pid in pids:
        rollup = _rollup(pid)
        if rollup is None:
            source = "status"
            r = _status_rss(pid)
            pss, rss, uss = pss + r, rss + r, uss + r
        else:
            pss += rollup.get("Pss", 0)
            rss += rollup.get("Rss", 0)
            uss += rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)
        count += 1
    return Memory(pss, rss, uss, count, source)


def _cpu_ticks(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_elsewhere(root: int, window: float = 1.0, threshold: float = 5.0) -> dict[str, object]:
    """How busy the machine is over `window` s, and which processes outside `root`'s
    tree (the benchmark and everything it started) used at least `threshold` % of a CPU."""
    before = {pid: t for pid in _pids() if (t := _cpu_ticks(pid)) is not None}
    busy0, total0 = _machine_ticks()
    time.sleep(window)
    busy1, total1 = _machine_ticks()
    mine = {root, *descendants(root)}
    hz = os.sysconf("SC_CLK_TCK")
    others = []
    for pid, t0 in before.items():
        t1 = _cpu_ticks(pid)
        if pid in mine or t1 is None:
            continue
        percent = 100 * (t1 - t0) / hz / window
        if percent >= threshold:
            others.append((percent, f"{percent:.0f}% {pid} {cmdline(pid)[:100]}"))
    return {
        "machine_busy_percent": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
        "window_seconds": window,
        "others": [text for _p, text in sorted(others, reverse=True)[:8]],
    }


def kill(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def describe(pids: Iterable[int]) -> list[str]:
    return [f"{pid} {cmdline(pid)[:160]}" for pid in pids]


def kill_working_under(root: Path) -> list[str]:
    """Processes still working under `root` once every hub has stopped (servers the
    hubs left behind): killed by PID, and described."""
    pids = working_under(root)
    described = describe(pids)
    kill(pids)
    return described
