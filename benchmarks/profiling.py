"""Where a hub's time goes: py-spy samples of the hub process under one workload.

Used by `api_bench.py --profile` after its timed rounds (sampling slows the
target, so profiled requests are never part of the reported latencies).
py-spy records every thread's stack while it is busy; the summary gives each
thread's busy time per request, the share of samples by the package of the
innermost frame, and the hottest functions by self and inclusive samples.
The folded stacks are kept next to the results for a flame graph.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from hubs import BenchError, ProcessGroup, RunningHub, log_tail

RATE = 200  # samples per second
TOP = 12
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


class RequestPlan(Protocol):
    page_offsets: list[list[int]]
    user_names: list[list[str]]


def workloads(plan: RequestPlan) -> dict[str, list[tuple[str, str, int]]]:
    """(method, path, expected status) per profiled workload."""
    offsets = [o for r in plan.page_offsets for o in r]
    names = [n for r in plan.user_names for n in r]
    pages = [("GET", f"/hub/api/users?limit=200&offset={o}", 200) for o in offsets]
    return {
        "users_page": (pages * (1 + 200 // max(len(pages), 1)))[:200],
        "user": [("GET", f"/hub/api/users/{n}", 200) for n in (names * 2)[:800]],
        "create_user": [("POST", f"/hub/api/users/profiled{i:05d}", 201) for i in range(500)],
    }


def profile_hub(
    procs: ProcessGroup,
    py_spy: Path,
    hub: RunningHub,
    plan: RequestPlan,
    workdir: Path,
    results_dir: Path,
) -> dict[str, Any]:
    out: dict[str, Any] = {"hub": hub.name, "tool": "py-spy record", "rate_hz": RATE}
    for name, requests in workloads(plan).items():
        folded = workdir / f"{hub.name}-{name}.folded"
        spy_log = workdir / f"py-spy-{name}.log"
        cmd = [str(py_spy), "record", "--pid", str(hub.proc.pid), "--rate", str(RATE)]
        # --nonblocking: stopping the target for each sample makes py-spy count
        # threads waiting on a queue or in epoll as busy
        cmd += ["--nonblocking", "--format", "raw", "--threads", "--output", str(folded)]
        spy = procs.start("py-spy", cmd, cwd=workdir, env={}, log=spy_log)
        _wait_sampling(spy, spy_log)
        t0 = time.perf_counter()
        with hub.client() as c:
            for method, path, status in requests:
                r = c.request(method, path)
                if r.status != status:
                    raise BenchError(f"profiling: {method} {path} answered {r.status}")
        wall = time.perf_counter() - t0
        time.sleep(0.1)
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            procs.stop(spy)
        if not folded.exists():
            raise BenchError(f"py-spy wrote no profile; its log:\n{log_tail(spy_log)}")
        text = folded.read_text()
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / f"api-profile-{hub.name}-{name}.folded").write_text(text)
        out[name] = summarize(parse_folded(text.splitlines()), len(requests), wall)
    return out


def _wait_sampling(spy: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if spy.poll() is not None:
            raise BenchError(f"py-spy exited with {spy.returncode}:\n{log_tail(log)}")
        if "Sampling process" in log.read_text(errors="replace"):
            time.sleep(0.3)
            return
        time.sleep(0.1)
    raise BenchError(f"py-spy did not start sampling:\n{log_tail(log)}")


Stack = tuple[str, list[tuple[str, str]], int]  # thread name, [(function, file)], count


def parse_folded(lines: Iterable[str]) -> list[Stack]:
    stacks: list[Stack] = []
    for line in lines:
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        parts = body.split(";")
        thread = parts[0]
        # "thread (1234): atrium-db_0" -> "atrium-db_0"; the main thread has no name
        thread = thread.split(": ", 1)[1] if ": " in thread else "main"
        frames = []
        for part in parts[1:]:
            m = FRAME.match(part)
            frames.append((m["func"], m["file"]) if m else (part, "?"))
        stacks.append((thread, frames, int(count)))
    return stacks


def _package(file: str) -> str:
    head = file.split("/", 1)[0]
    return head.removesuffix(".py")


# Innermost frames where a thread waits rather than works. py-spy can count them
# as busy: epoll and the executor queue when it samples mid-syscall, and
# `_write_to_self` when the database thread, having woken the event loop, waits
# to get the GIL back (the loop thread runs meanwhile, so it is off the
# request's critical path).
WAITS = {
    "selectors.py:EpollSelector.select",
    "concurrent/futures/thread.py:_worker",
    "asyncio/selector_events.py:BaseSelectorEventLoop._write_to_self",
    "threading.py:Condition.wait",
}


def summarize(stacks: list[Stack], requests: int, wall: float) -> dict[str, Any]:
    """Busy samples per thread, package and function; in ms per request and %."""
    to_ms = 1000 / RATE / requests
    waiting = 0
    busy_total = 0
    threads: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for thread, frames, n in stacks:
        if not frames:
            continue
        func, file = frames[-1]
        leaf = f"{file}:{func}"
        if leaf in WAITS:
            waiting += n
            continue
        busy_total += n
        threads[re.sub(r"_\d+$", "", thread)] += n
        packages[_package(file)] += n
        self_time[leaf] += n
        for key in {f"{file}:{func}" for func, file in frames if file.startswith("hub/")}:
            inclusive[key] += n
    busy = busy_total or 1

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"name": k, "percent": round(100 * v / busy, 1), "ms_per_request": round(v * to_ms, 3)}
            for k, v in counter.most_common(TOP)
        ]

    return {
        "requests": requests,
        "wall_seconds": round(wall, 2),
        "wall_ms_per_request": round(1000 * wall / requests, 2),
        "busy_samples": busy_total,
        "waiting_samples": waiting,
        "busy_ms_per_request_by_thread": {t: round(n * to_ms, 2) for t, n in threads.most_common()},
        "by_package": rows(packages),
        "top_self": rows(self_time),
        "top_inclusive_hub": rows(inclusive),
    }


def report(profile: dict[str, Any]) -> str:
    lines = [
        f"Where {profile['hub']}'s time goes ({profile['tool']} --nonblocking, "
        f"{profile['rate_hz']} Hz, after the timed rounds). Busy samples only; "
        "ms = busy time per request, % = share of all busy samples."
    ]

    def fmt(row: dict[str, Any]) -> str:
        return f"    {row['ms_per_request']:6.2f} ms {row['percent']:5.1f}%  {row['name']}"

    for name, entry in profile.items():
        if not isinstance(entry, dict):
            continue
        threads = ", ".join(
            f"{t} {ms:.2f} ms" for t, ms in entry["busy_ms_per_request_by_thread"].items()
        )
        lines += [
            "",
            f"[{name}] {entry['requests']} requests, {entry['wall_ms_per_request']} ms each "
            f"while sampled; busy per request: {threads}",
            "  by package: "
            + ", ".join(f"{r['name']} {r['percent']}%" for r in entry["by_package"][:8]),
            "  top self:",
            *(fmt(r) for r in entry["top_self"][:8]),
            "  top inclusive (hub/):",
            *(fmt(r) for r in entry["top_inclusive_hub"][:10]),
        ]
    return "\n".join(lines)
