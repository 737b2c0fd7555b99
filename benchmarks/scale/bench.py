"""Hub start-up and memory at scale, side by side in one run: Atrium vs JupyterHub 6.

Each hub's SQLite database holds 10,000 users, 1,000 of them with a running
server: real sockets on 127.0.0.1 answering HTTP (`servers.py`, a few processes
listening on many ports each), recorded as a server the hub started before it
restarted. Per run and hub, on a fresh copy of its seeded database:

1. Start-up: from launching the hub process until its API answers (`GET
   /hub/api/` with an admin token: 200) and its proxy, which the hub starts,
   holds a route to every running server (`GET /api/routes` on the proxy's API).
   Both hubs must check each server through their spawner (`probe.py`: the
   process runs and its port answers); the servers count the requests they got,
   and a run in which a hub left a server unasked fails.
2. Memory: resident memory (VmRSS) of the hub process, and of its proxy
   (process tree; PSS too), after `--settle` seconds idle, then after paging
   through every user with `GET /hub/api/users?limit=200&offset=...`.

The hubs take turns, A B B A ..., one at a time. Prints medians over `--runs`
and the JupyterHub / Atrium ratios, and writes everything to
benchmarks/results/scale.json.

    .venv/bin/python benchmarks/scale/bench.py [--runs 3] [--users 10000] [--running 1000]

See benchmarks/README.md. Neighbours: scalehubs.py (configuring and starting
the hubs), atrium_seed.py / jupyterhub_seed.py (the databases),
atrium_spawner.py / jupyterhub_spawner.py / probe.py (adopting servers),
servers.py (the servers); ../hubs.py (scratch installs, ProcessGroup).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import math
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# the shared helpers (hubs.py, httpclient.py, ...) are one directory up
BENCHMARKS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCHMARKS))

import hubs  # noqa: E402
import runinfo  # noqa: E402
import runner  # noqa: E402
import scalehubs  # noqa: E402
import startprofile  # noqa: E402
from httpclient import Client, median  # noqa: E402
from hubs import BenchError, ProcessGroup  # noqa: E402
from scalehubs import HubSetup  # noqa: E402


def _load(name: str, path: Path) -> ModuleType:
    """A module of another benchmark's directory, without putting that directory on
    sys.path (its modules' names would shadow ours)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


proctree = _load("proctree", BENCHMARKS / "spawn" / "proctree.py")
# exporting Atrium's packages from a commit (--atrium-commit), as the admin benchmark does
exporter = _load("admin_hubsetup", BENCHMARKS / "admin" / "hubsetup.py")

RESULTS = BENCHMARKS / "results" / "scale.json"
HERE = Path(__file__).resolve().parent
PAGE = 200
PORTS_PER_PROCESS = 250
API_POLL = 0.02  # s between GET /hub/api/ while the hub comes up
ROUTES_POLL = 0.05  # s between reads of the proxy's routes


# --- the servers ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServerProcess:
    pid: int
    control: int
    ports: list[int]


def start_servers(procs: ProcessGroup, workdir: Path, count: int) -> list[ServerProcess]:
    """`count` answering ports, PORTS_PER_PROCESS per process."""
    started = []
    for i in range(math.ceil(count / PORTS_PER_PROCESS)):
        n = min(PORTS_PER_PROCESS, count - i * PORTS_PER_PROCESS)
        log = workdir / f"servers{i}.log"
        cmd = [sys.executable, str(HERE / "servers.py"), "--ports", str(n)]
        started.append(
            (procs.start(f"servers{i}", cmd, cwd=workdir, env=dict(os.environ), log=log), log)
        )
    out = []
    deadline = time.monotonic() + 60
    for proc, log in started:
        while True:
            text = log.read_text() if log.exists() else ""
            if text.endswith("\n"):
                info = json.loads(text.splitlines()[0])
                out.append(
                    ServerProcess(int(info["pid"]), int(info["control"]), list(info["ports"]))
                )
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the servers process did not start:\n{hubs.log_tail(log)}")
            time.sleep(0.05)
    return out


def server_hits(servers: Sequence[ServerProcess], reset: bool = False) -> dict[str, int]:
    """Ports that got a request and requests in all, since the last reset."""
    total = {"ports_hit": 0, "requests": 0}
    for s in servers:
        with Client("127.0.0.1", s.control, None, timeout=10) as c:
            r = c.request("POST" if reset else "GET", "/reset" if reset else "/hits")
        if r.status != 200:
            raise BenchError(f"servers process {s.pid} answered {r.status}")
        for k, v in json.loads(r.body).items():
            total[k] += int(v)
    return total


# --- one hub, one run ----------------------------------------------------------------


def _ask(port: int, token: str | None, path: str) -> tuple[int, bytes] | None:
    try:
        with Client("127.0.0.1", port, token, timeout=10) as c:
            r = c.request("GET", path)
        return r.status, r.body
    except (OSError, http.client.HTTPException):
        return None


def routes_present(setup: HubSetup, expected: dict[str, str]) -> int:
    """How many of the `expected` routes (prefix -> target) the proxy has."""
    answer = _ask(setup.api_port, setup.proxy_token, "/api/routes")
    if answer is None or answer[0] != 200:
        return 0
    routes = json.loads(answer[1])
    return sum(
        1
        for prefix, route in routes.items()
        if expected.get(prefix.rstrip("/")) == str(route.get("target", "")).rstrip("/")
    )


def wait_started(
    setup: HubSetup, proc: Any, log: Path, expected: dict[str, str], t0: float, bound: float
) -> dict[str, Any]:
    """Seconds from `t0` until the API answered, and until every route was in the proxy."""
    deadline = t0 + bound
    api_seconds = None
    while api_seconds is None:
        if proc.poll() is not None:
            raise BenchError(f"{setup.label} exited with {proc.returncode}:\n{hubs.log_tail(log)}")
        answer = _ask(setup.hub_port, setup.token, "/hub/api/")
        if answer is not None and answer[0] == 200:
            api_seconds = time.perf_counter() - t0
            break
        if time.perf_counter() > deadline:
            raise BenchError(
                f"{setup.label}'s API did not answer in {bound:.0f}s:\n{hubs.log_tail(log)}"
            )
        time.sleep(API_POLL)
    present = 0
    while True:
        present = routes_present(setup, expected)
        if present == len(expected):
            routes_seconds = time.perf_counter() - t0
            break
        if proc.poll() is not None:
            raise BenchError(f"{setup.label} exited with {proc.returncode}:\n{hubs.log_tail(log)}")
        if time.perf_counter() > deadline:
            return {
                "api_seconds": round(api_seconds, 3),
                "routes_seconds": None,
                "start_seconds": None,
                "routes_present_at_bound": present,
            }
        time.sleep(ROUTES_POLL)
    return {
        "api_seconds": round(api_seconds, 3),
        "routes_seconds": round(routes_seconds, 3),
        "start_seconds": round(max(api_seconds, routes_seconds), 3),
    }


def status_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of one process, KiB."""
    out = {"rss_kib": 0, "peak_rss_kib": 0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                out["peak_rss_kib"] = int(line.split()[1])
    return out


def memory(hub_pid: int, proxy_pid: int | None) -> dict[str, Any]:
    """The hub process alone (its proxy is its child, counted apart), and the proxy's
    process tree (Atrium's proxy forks its workers)."""
    out: dict[str, Any] = {"hub": status_kib(hub_pid)}
    if proxy_pid is not None:
        tree = [proxy_pid, *proctree.descendants(proxy_pid)]
        m = proctree.tree_memory(tree)
        out["proxy"] = {"rss_kib": m.rss_kib, "pss_kib": m.pss_kib, "processes": m.processes}
    return out


def page_through(setup: HubSetup, users: int) -> dict[str, Any]:
    """GET /hub/api/users?limit=200 at every offset until a short page; checks that every
    seeded user came back (Atrium also lists its admin, JupyterHub's admin is a service)."""
    seen = pages = 0
    t0 = time.perf_counter()
    with Client("127.0.0.1", setup.hub_port, setup.token, timeout=120) as c:
        while True:
            r = c.request("GET", f"/hub/api/users?limit={PAGE}&offset={seen}")
            if r.status != 200:
                raise BenchError(f"{setup.label}: GET /users at {seen} answered {r.status}")
            got = len(json.loads(r.body))
            seen, pages = seen + got, pages + 1
            if got < PAGE:
                break
    if seen < users:
        raise BenchError(f"{setup.label}: paging returned {seen} users, not {users}")
    return {"pages": pages, "users": seen, "seconds": round(time.perf_counter() - t0, 3)}


class Strays:
    """Processes a hub started for us (its proxy and the proxy's workers), noted by PID
    and start time, so that any still running after the hub stopped can be ended
    without touching a process that reused the PID."""

    def __init__(self) -> None:
        self.seen: dict[int, str] = {}

    @staticmethod
    def _start_time(pid: int) -> str | None:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        except (OSError, IndexError):
            return None

    def note(self, pids: Sequence[int]) -> None:
        for pid in pids:
            if (t := self._start_time(pid)) is not None:
                self.seen.setdefault(pid, t)

    def end(self) -> list[int]:
        ended = []
        for pid, started in list(self.seen.items()):
            if self._start_time(pid) == started and proctree.alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    ended.append(pid)
            del self.seen[pid]
        return ended


def one_hub(
    setup: HubSetup,
    procs: ProcessGroup,
    strays: Strays,
    servers: Sequence[ServerProcess],
    expected: dict[str, str],
    args: argparse.Namespace,
    run: int,
) -> dict[str, Any]:
    result: dict[str, Any] = {"noise_before": proctree.busy_elsewhere(os.getpid())}
    server_hits(servers, reset=True)
    t0 = time.perf_counter()
    proc, log = scalehubs.start(setup, procs, run)
    try:
        result.update(wait_started(setup, proc, log, expected, t0, args.start_bound))
        result["servers_checked"] = server_hits(servers)
        proxy_pid = scalehubs.read_pid(setup.proxy_pid_file)
        time.sleep(args.settle)
        result["idle"] = memory(proc.pid, proxy_pid)
        result["paging"] = page_through(setup, args.users)
        result["after_paging"] = memory(proc.pid, proxy_pid)
    finally:
        # what the hub started (its proxy, the proxy's workers), should one outlive it
        strays.note(proctree.descendants(proc.pid))
        procs.stop(proc)
        ended = strays.end()
        if ended:
            result["strays_killed"] = ended
    checked = result["servers_checked"]["ports_hit"]
    if checked < args.running:
        raise BenchError(
            f"{setup.label} asked only {checked} of {args.running} servers at start-up"
        )
    return result


# --- summary -------------------------------------------------------------------------


METRICS: list[tuple[str, str, tuple[str, ...], str]] = [
    ("start", "start-up: API answers + all routes in the proxy", ("start_seconds",), "s"),
    ("api", "start-up: API answers", ("api_seconds",), "s"),
    ("routes", "start-up: all routes in the proxy", ("routes_seconds",), "s"),
    ("hub_idle", "hub RSS, idle after start-up", ("idle", "hub", "rss_kib"), "MiB"),
    ("proxy_idle", "proxy RSS, idle", ("idle", "proxy", "rss_kib"), "MiB"),
    ("proxy_idle_pss", "proxy PSS, idle", ("idle", "proxy", "pss_kib"), "MiB"),
    ("hub_paged", "hub RSS after paging all users", ("after_paging", "hub", "rss_kib"), "MiB"),
    (
        "hub_peak",
        "hub peak RSS (VmHWM) after paging",
        ("after_paging", "hub", "peak_rss_kib"),
        "MiB",
    ),
    ("proxy_paged", "proxy RSS after paging", ("after_paging", "proxy", "rss_kib"), "MiB"),
    ("paging", "paging through all users (limit=200)", ("paging", "seconds"), "s"),
]


def _dig(d: Any, keys: tuple[str, ...]) -> float | None:
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return float(d)


def summarize(runs: list[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, label, path, unit in METRICS:
        entry: dict[str, Any] = {"label": label, "unit": unit}
        for name in names:
            values = [v for r in runs if (v := _dig(r[name], path)) is not None]
            if unit == "MiB":
                values = [v / 1024 for v in values]
            entry[name] = {
                "median": round(median(values), 3) if values else None,
                "runs": [round(v, 3) for v in values],
            }
        a, j = entry.get("atrium", {}).get("median"), entry.get("jupyterhub", {}).get("median")
        entry["ratio_jupyterhub_over_atrium"] = round(j / a, 2) if a and j else None
        out[key] = entry
    return out


def table(summary: dict[str, Any]) -> str:
    lines = [f"{'':<48}{'Atrium':>12}{'JupyterHub 6':>14}{'JH / Atrium':>13}"]
    for entry in summary.values():
        cells = []
        for name in ("atrium", "jupyterhub"):
            v = entry.get(name, {}).get("median")
            cells.append("-" if v is None else f"{v:.2f} {entry['unit']}")
        ratio = entry["ratio_jupyterhub_over_atrium"]
        lines.append(
            f"{entry['label']:<48}{cells[0]:>12}{cells[1]:>14}"
            f"{'-' if ratio is None else f'{ratio:.2f}x':>13}"
        )
    return "\n".join(lines)


# --- the run -------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="start-ups per hub (hubs take turns)")
    p.add_argument("--users", type=int, default=10_000, help="users in each hub's database")
    p.add_argument("--running", type=int, default=1000, help="of them with a running server")
    p.add_argument("--settle", type=float, default=5.0, help="s idle before the idle memory")
    p.add_argument(
        "--start-bound",
        type=float,
        default=120.0,
        help="s a start-up may take before it counts as failed",
    )
    p.add_argument(
        "--atrium-commit",
        metavar="REV",
        help="run Atrium as committed at REV (git archive), not the working tree",
    )
    p.add_argument("--only", choices=("atrium", "jupyterhub"), help="measure one hub only")
    p.add_argument("--timeout", type=int, default=1500, help="stop everything after this many s")
    p.add_argument("--output", type=Path, default=RESULTS, help="where the JSON results go")
    p.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, one more Atrium start under py-spy: where its start-up goes",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, DBs)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.users < 1 or not 0 <= args.running <= args.users:
        p.error("need --runs >= 1, --users >= 1 and 0 <= --running <= --users")
    return args


def run(
    args: argparse.Namespace, procs: ProcessGroup, strays: Strays, workdir: Path
) -> dict[str, Any]:
    done = runner.phase("Checking the scratch installs (JupyterHub 6, configurable-http-proxy)")
    jupyterhub, chp = hubs.ensure_jupyterhub(), hubs.ensure_chp()
    py_spy = hubs.ensure_py_spy() if args.profile else None
    done()
    names = [f"user{i:05d}" for i in range(args.users)]
    done = runner.phase(
        f"Starting {args.running:,} servers ({PORTS_PER_PROCESS} ports per process)"
    )
    servers = start_servers(procs, workdir, args.running)
    ports = [(s.pid, port) for s in servers for port in s.ports]
    running = dict(zip(names[: args.running], ports, strict=True))
    expected = {f"/user/{n}": f"http://127.0.0.1:{port}" for n, (_pid, port) in running.items()}
    done()

    setups: list[HubSetup] = []
    atrium_commit = None
    if args.only in (None, "atrium"):
        source = None
        if args.atrium_commit:
            source = workdir / "atrium-source"
            atrium_commit = exporter.export_atrium(args.atrium_commit, source)
            print(f"  Atrium from commit {atrium_commit[:12]} (git archive into {source})")
        setups.append(scalehubs.atrium_setup(workdir / "atrium", source))
    if args.only in (None, "jupyterhub"):
        setups.append(scalehubs.jupyterhub_setup(workdir / "jupyterhub", jupyterhub, chp))
    plan = {"users": names, "servers": running, "admin_password": secrets.token_urlsafe(16)}
    for setup in setups:
        done = runner.phase(
            f"Seeding {setup.label}: {args.users:,} users, {args.running:,} running"
        )
        python = Path(sys.executable) if setup.name == "atrium" else jupyterhub.parent / "python"
        scalehubs.seed(setup, python, plan)
        print(f"  {setup.seed_counts}", flush=True)
        done()

    runs: list[dict[str, Any]] = []
    for r in range(args.runs):
        order = setups if r % 2 == 0 else list(reversed(setups))
        this: dict[str, Any] = {"order": [s.name for s in order]}
        for setup in order:
            print(f"Run {r + 1}/{args.runs}: {setup.label} ...", flush=True)
            this[setup.name] = one_hub(setup, procs, strays, servers, expected, args, r)
            h = this[setup.name]
            print(
                f"  API {h['api_seconds']}s, routes {h['routes_seconds']}s, "
                f"hub RSS {h['idle']['hub']['rss_kib'] / 1024:.0f} -> "
                f"{h['after_paging']['hub']['rss_kib'] / 1024:.0f} MiB, "
                f"servers asked {h['servers_checked']}",
                flush=True,
            )
        runs.append(this)

    profile = None
    atrium_setup = next((s for s in setups if s.name == "atrium"), None)
    if py_spy is not None and atrium_setup is not None:
        done = runner.phase("Profiling one more Atrium start with py-spy (not timed)")
        server_hits(servers, reset=True)

        def wait(proc: Any, log: Path, t0: float) -> dict[str, Any]:
            return wait_started(atrium_setup, proc, log, expected, t0, args.start_bound)

        folded = args.output.parent / "scale-profile-atrium.folded"
        profile = startprofile.profile_start(atrium_setup, procs, py_spy, folded, wait, strays.note)
        strays.end()
        done()

    versions = {
        "atrium": hubs.tool_version([str(Path(sys.executable).parent / "atrium"), "--version"]),
        "jupyterhub": hubs.tool_version([str(jupyterhub), "--version"]),
        "configurable_http_proxy": hubs.tool_version([str(chp), "--version"]),
        "node": hubs.tool_version(["node", "--version"]),
    }
    return {
        "benchmark": "scale",
        "description": "hub start-up with many users and running servers, and hub/proxy memory",
        "machine": runinfo.machine(),
        "date": runinfo.now(),
        "loadavg_end": list(os.getloadavg()),
        "versions": versions,
        "atrium_git": runinfo.git_state(),
        # set when Atrium ran from a commit exported with git archive, not the working tree
        "atrium_commit": atrium_commit,
        "config": {
            "users": args.users,
            "running": args.running,
            "runs": args.runs,
            "settle_seconds": args.settle,
            "page_size": PAGE,
            "ports_per_server_process": PORTS_PER_PROCESS,
        },
        "seed": {s.name: {"seconds": s.seed_seconds, **s.seed_counts} for s in setups},
        "summary": summarize(runs, [s.name for s in setups]),
        "runs": runs,
        "profile": profile,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    strays = Strays()
    code, results = runner.run_guarded(
        lambda procs, workdir: run(args, procs, strays, workdir),
        timeout=args.timeout,
        keep=args.keep,
        prefix="atrium-scale-bench-",
        after_stop=lambda _workdir: strays.end(),
        kept="Logs and databases",
    )
    if code:
        return code
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    runinfo.write_results(results, args.output)
    m = results["machine"]
    print(
        f"\n{args.users:,} users, {args.running:,} running servers, {args.runs} runs, medians; "
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}"
    )
    print(table(results["summary"]))
    if results.get("profile"):
        print()
        print(startprofile.report(results["profile"]))
    print(f"\nResults: {args.output}  (whole run {results['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
