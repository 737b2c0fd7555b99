"""Where Atrium's start-up goes: one more start, under py-spy, after the timed runs.

`py-spy record --subprocesses` launches the hub (so the samples begin with its
first import) and follows the proxy it starts. The start is waited for as in a
timed run (API answers, every route in the proxy), then the hub is stopped and
py-spy writes the stacks. The summary, per process (the hub; the proxy and its
workers): busy seconds, the part spent importing modules, the modules whose
import took longest (inclusive: a module's import counts the imports it makes),
and, outside imports, the hub's and spawners' functions that took longest.
The folded stacks go next to the results (`scale-profile-atrium.folded`, not
committed) for a flame graph. Neighbours: `bench.py`, `../profiling.py` (the
same for request workloads).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import hubs
import scalehubs
from hubs import BenchError, ProcessGroup
from scalehubs import HubSetup

RATE = 100  # samples per second
TOP = 12
IMPORT = "_find_and_load"


def _frames(part: str) -> tuple[str, str]:
    """'func (file:line)' -> (func, file)."""
    func, _, rest = part.partition(" (")
    return func, rest.rsplit(":", 1)[0] if ":" in rest else rest.rstrip(")")


def _role(process: str) -> str:
    """'process PID:"command"' -> hub, proxy (its main process and workers) or other."""
    if hubs.is_atrium_proxy(process):
        return "proxy"
    return "hub" if "atrium" in process else "other"


def summarize(lines: Iterable[str]) -> dict[str, Any]:
    """Per process role: busy seconds, import seconds, top modules and functions."""
    samples: Counter[str] = Counter()
    imports: Counter[str] = Counter()
    modules: dict[str, Counter[str]] = {}
    bodies: dict[str, Counter[str]] = {}
    functions: dict[str, Counter[str]] = {}
    pids: dict[str, set[str]] = {}
    for line in lines:
        body, _, count = line.rstrip("\n").rpartition(" ")
        if not body or not count.isdigit():
            continue
        parts = body.split(";")
        # a child's stacks come under its parents' labels: the last label is the process
        last = max(i for i, p in enumerate(parts) if p.startswith("process "))
        role = _role(parts[last])
        pids.setdefault(role, set()).add(parts[last].split(":", 1)[0])
        frames = [_frames(p) for p in parts[last + 1 :]]
        n = int(count)
        samples[role] += n
        if any(func == IMPORT for func, _ in frames):
            imports[role] += n
            files = [f for func, f in frames if func == "<module>" and "frozen" not in f]
            per = modules.setdefault(role, Counter())
            for file in set(files):
                per[file] += n
            if files:  # the module whose own code runs (not one it imports)
                bodies.setdefault(role, Counter())[files[-1]] += n
        else:
            per = functions.setdefault(role, Counter())
            for key in {f"{f}:{func}" for func, f in frames if f.startswith(("hub/", "spawners/"))}:
                per[key] += n

    def seconds(n: int) -> float:
        return round(n / RATE, 2)

    return {
        role: {
            "processes": len(pids.get(role, ())),
            "busy_seconds": seconds(total),
            "import_seconds": seconds(imports[role]),
            "top_imports_inclusive": [
                {"module": m, "seconds": seconds(v)}
                for m, v in modules.get(role, Counter()).most_common(TOP)
            ],
            "top_imports_self": [
                {"module": m, "seconds": seconds(v)}
                for m, v in bodies.get(role, Counter()).most_common(TOP)
            ],
            "top_functions_outside_imports": [
                {"function": f, "seconds": seconds(v)}
                for f, v in functions.get(role, Counter()).most_common(TOP)
            ],
        }
        for role, total in samples.most_common()
    }


def profile_start(
    setup: HubSetup,
    procs: ProcessGroup,
    py_spy: Path,
    folded: Path,
    wait: Any,
    note: Callable[[list[int]], None],
) -> dict[str, Any]:
    """Start Atrium under py-spy on a fresh copy of its database; `wait(proc, log, t0)`
    is the timed runs' wait for a complete start; `note` is given every process py-spy
    and the hub started, before they are stopped. The summary, with that start's times."""
    db = setup.db_for_run(99)
    scalehubs.fresh_copy(setup.template_db, db)
    setup.configure()
    setup.proxy_pid_file.unlink(missing_ok=True)
    log = setup.workdir / "profile.log"
    cmd = [
        str(py_spy),
        "record",
        "--subprocesses",
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--output",
        str(folded),
        "--",
        *setup.command(db),
    ]
    t0 = time.perf_counter()
    spy = procs.start("py-spy", cmd, cwd=setup.workdir, env=setup.env, log=log)
    try:
        started = wait(spy, log, t0)
    finally:
        note(_descendants(spy.pid))
        # the hub is py-spy's child: stopping it ends the recording, and py-spy writes
        for pid in _children(spy.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            procs.stop(spy, signal.SIGINT)
    if not folded.exists():
        raise BenchError(f"py-spy wrote no profile:\n{hubs.log_tail(log)}")
    with folded.open() as f:
        summary = summarize(f)
    return {"tool": "py-spy record --subprocesses", "rate_hz": RATE, "start": started, **summary}


def _descendants(pid: int) -> list[int]:
    found, todo = [], _children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo += _children(p)
    return found


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def report(profile: dict[str, Any]) -> str:
    lines = [f"Where Atrium's start-up went ({profile['tool']}, {profile['rate_hz']} Hz):"]
    for role in ("hub", "proxy"):
        entry = profile.get(role)
        if not isinstance(entry, dict):
            continue
        lines.append(
            f"  {role} ({entry['processes']} process(es)): busy {entry['busy_seconds']} s, "
            f"of which importing modules {entry['import_seconds']} s"
        )
        lines += [
            f"    {r['seconds']:6.2f} s  import {r['module']} (with what it imports)"
            for r in entry["top_imports_inclusive"][:8]
        ]
        lines += [
            f"    {r['seconds']:6.2f} s  import {r['module']} (its own code)"
            for r in entry["top_imports_self"][:4]
        ]
        lines += [
            f"    {r['seconds']:6.2f} s  {r['function']}"
            for r in entry["top_functions_outside_imports"][:6]
        ]
    return "\n".join(lines)
