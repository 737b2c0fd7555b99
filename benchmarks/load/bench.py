"""API latency while simulated users log in and work: Atrium vs JupyterHub 6, in one run.

Each hub in turn (fresh, on 127.0.0.1) gets the same load: `--users` simulated
users arrive evenly over `--ramp` seconds, at most `--concurrency` at a time, and
each logs in through the login form, starts its server (a light single-user
server, `lightserver.py`, the same for both hubs), reaches it through the proxy,
opens a kernel websocket, executes code and stops the server, every step timed
(`users.py`). Meanwhile a probe process (`probe.py`) sends a steady stream of
GET /hub/api/users/{name} straight to the hub: its p50/p95/p99 is the headline.
`--runs` runs (hub order alternating), medians over runs, ratios.

    .venv/bin/python benchmarks/load/bench.py [--users 500] [--runs 3] [--concurrency 50]

Prints a table and writes benchmarks/results/load.json. See benchmarks/README.md.
Neighbours: hubsetup.py, users.py, probe.py, report.py; ../hubs.py (installs,
processes), ../spawn/proctree.py (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

# the shared helpers (hubs.py, httpclient.py, ...) are one directory up, /proc helpers
# in the spawn benchmark's directory (after this one: both have a hubsetup and a report)
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent.parent / "spawn"))

import hubs
import hubsetup
import proctree
import report
import runinfo
import runner
from hubs import BenchError, ProcessGroup
from hubsetup import LoadHub
from users import Session, Users

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results" / "load.json"
USER_PREFIX = "load-"
SEED_CHUNK = 500
PROBE_READY_TIMEOUT = 30.0


# --- one hub's turn ----------------------------------------------------------------


def user_names(n: int) -> list[str]:
    return [f"{USER_PREFIX}{i:04d}" for i in range(n)]


async def drive(hub: LoadHub, args: argparse.Namespace) -> dict[str, Any]:
    """The load: users arrive evenly over --ramp s, at most --concurrency at a time."""
    users = Users(hub, args.step_timeout)
    gate = asyncio.Semaphore(args.concurrency)
    active = peak = 0
    t0 = time.perf_counter()

    async def one(i: int, name: str) -> Session:
        nonlocal active, peak
        arrive = i * args.ramp / args.users
        await asyncio.sleep(max(0.0, t0 + arrive - time.perf_counter()))
        s = Session(name, arrived=time.perf_counter() - t0)
        async with gate:
            s.waited = time.perf_counter() - t0 - s.arrived
            active += 1
            peak = max(peak, active)
            try:
                await users.session(s)
            finally:
                active -= 1
        return s

    try:
        sessions = await asyncio.gather(*(one(i, n) for i, n in enumerate(user_names(args.users))))
    finally:
        await users.close()
    return {
        "sessions": sessions,
        "wall_seconds": time.perf_counter() - t0,
        "peak_concurrency": peak,
    }


def start_probe(
    procs: ProcessGroup, hub: LoadHub, args: argparse.Namespace
) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        str(HERE / "probe.py"),
        f"--port={hub.api_port}",
        f"--token={hub.token}",
        f"--users={args.users}",
        f"--prefix={USER_PREFIX}",
        f"--rate={args.probe_rate}",
        f"--workers={args.probe_workers}",
    ]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    procs.procs.append(("probe", proc))  # type: ignore[arg-type]  # stopped by PID like the rest
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        raise BenchError(f"the probe did not start (said {line!r})")
    return proc


def probe_command(proc: subprocess.Popen[str], command: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()


def probe_samples(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The probe's samples and its unsent counts, once it has stopped."""
    probe_command(proc, "stop")
    out, _ = proc.communicate(timeout=120)
    return dict(json.loads(out.strip().splitlines()[-1]))


def proxy_pids(hub: LoadHub, procs: ProcessGroup) -> list[int]:
    """The processes of the hub's proxy: Atrium's built-in one (a child of the hub, with
    its workers), JupyterHub's configurable-http-proxy (started here)."""
    if hub.name == "jupyterhub":
        return [p.pid for name, p in procs.procs if name == "configurable-http-proxy"]
    kids = proctree.children_map()
    found = []
    for child in kids.get(hub.hub.proc.pid, []):
        command = proctree.cmdline(child)
        if hubs.is_atrium_proxy(command):
            found += [child, *proctree.descendants(child, kids)]
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    hz = os.sysconf("SC_CLK_TCK")
    return sum((proctree._cpu_ticks(p) or 0) for p in pids) / hz


def turn(
    kind: str, run: int, args: argparse.Namespace, procs: ProcessGroup, workdir: Path
) -> dict[str, Any]:
    """Start one hub, seed it, probe it idle then under the load, stop it."""
    first = len(procs.procs)
    where = workdir / f"run{run}-{kind}"
    try:
        if kind == "atrium":
            hub = hubsetup.start_atrium(procs, where)
        else:
            hub = hubsetup.start_jupyterhub(procs, where, args.jupyterhub, args.chp)
        print(
            f"  {hub.label} {hub.hub.version}: {hub.hub.start_seconds:.1f}s to answer", flush=True
        )
        seeded = hubs.seed_users(hub.hub, user_names(args.users), SEED_CHUNK)
        noise = proctree.busy_elsewhere(os.getpid())
        probe = start_probe(procs, hub, args)
        probe_command(probe, "phase baseline")
        time.sleep(args.baseline)
        hub_pids, proxies = [hub.hub.proc.pid], proxy_pids(hub, procs)
        cpu0 = cpu_seconds(hub_pids), cpu_seconds(proxies)
        probe_command(probe, "phase load")
        load = asyncio.run(drive(hub, args))
        cpu1 = cpu_seconds(hub_pids), cpu_seconds(proxies)
        samples = probe_samples(probe)
        if hub.hub.proc.poll() is not None:
            raise BenchError(f"{hub.label} exited during the load:\n{hubs.log_tail(hub.hub.log)}")
        out = report.turn_summary(load, samples)
        out.update(
            hub=kind,
            run=run,
            version=hub.hub.version,
            seed_seconds=round(seeded, 2),
            hub_cpu_seconds=round(cpu1[0] - cpu0[0], 2),
            proxy_cpu_seconds=round(cpu1[1] - cpu0[1], 2),
            machine_before=noise,
            loadavg_after=list(os.getloadavg()),
            log_problems=report.log_problems(hub.hub.log),
        )
        return out
    finally:
        for _name, proc in reversed(procs.procs[first:]):
            procs.stop(proc)  # type: ignore[arg-type]
        del procs.procs[first:]
        if "out" in locals():
            out["left_after_stop"] = leftovers(where)


def leftovers(where: Path) -> list[str]:
    """Light servers still running in the users' directories once their hub has
    stopped: killed by PID, and reported."""
    deadline = time.monotonic() + 10
    pids = proctree.working_under(where)
    while pids and time.monotonic() < deadline:
        time.sleep(0.2)
        pids = [p for p in pids if proctree.alive(p)]
    described = proctree.describe(pids)
    proctree.kill(pids)
    return described


def run(args: argparse.Namespace, procs: ProcessGroup, workdir: Path) -> dict[str, Any]:
    done = runner.phase("Checking the scratch installs (JupyterHub 6, configurable-http-proxy)")
    args.jupyterhub, args.chp = hubs.ensure_jupyterhub(), hubs.ensure_chp()
    done()
    env = {
        "machine": runinfo.machine(),
        "loadavg_start": list(os.getloadavg()),
        "atrium_git": runinfo.git_state(),
        "configurable_http_proxy": hubs.tool_version([str(args.chp), "--version"]),
        "node": hubs.tool_version(["node", "--version"]),
    }
    kinds = [k for k in ("atrium", "jupyterhub") if args.only in (None, k)]
    turns = []
    for r in range(args.runs):
        order = kinds if r % 2 == 0 else list(reversed(kinds))
        for kind in order:
            done = runner.phase(f"Run {r + 1}/{args.runs}: {kind}, {args.users} users")
            t = turn(kind, r + 1, args, procs, workdir)
            print("  " + report.turn_line(t), flush=True)
            turns.append(t)
            done()
    env["loadavg_end"] = list(os.getloadavg())
    return {
        "benchmark": "load",
        "description": "Hub API latency (GET /hub/api/users/{name}) while simulated users log "
        "in, start a light server, run a kernel request and stop it: Atrium vs JupyterHub 6",
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": runinfo.now(),
        "environment": env,
        "config": config(args),
        "turns": turns,
        "summary": report.summarize(turns),
    }


def config(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("users", "runs", "concurrency", "ramp", "step_timeout", "probe_rate")
    keys += ("probe_workers", "baseline", "timeout", "only")
    out = {k: getattr(args, k) for k in keys}
    out["server"] = "benchmarks/load/lightserver.py (stdlib asyncio; no kernel process)"
    out["server_cmd"] = hubsetup.LIGHT_CMD
    out["as_root"] = os.geteuid() == 0
    return out


# --- main ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=500, help="simulated users per hub and run")
    p.add_argument("--runs", type=int, default=3, help="runs (each hub fresh in each)")
    p.add_argument("--concurrency", type=int, default=50, help="most users active at once")
    p.add_argument("--ramp", type=float, default=60, help="s over which users arrive, evenly")
    p.add_argument("--step-timeout", type=float, default=60, help="s one step may take")
    p.add_argument("--probe-rate", type=float, default=20, help="probe requests per s")
    p.add_argument("--probe-workers", type=int, default=8, help="probe connections")
    p.add_argument("--baseline", type=float, default=5, help="s probed before the load")
    p.add_argument("--only", choices=["atrium", "jupyterhub"], help="measure one hub only")
    p.add_argument("--timeout", type=int, default=1800, help="stop everything after this many s")
    p.add_argument("--output", type=Path, default=RESULTS, help="where the JSON results go")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = p.parse_args(argv)
    if min(args.users, args.runs, args.concurrency, args.probe_workers) < 1:
        p.error("--users, --runs, --concurrency and --probe-workers must be at least 1")
    if args.ramp < 0 or args.probe_rate <= 0:
        p.error("--ramp must be >= 0 and --probe-rate > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def strays(workdir: Path) -> None:
        for line in proctree.kill_working_under(workdir):
            print(f"! left after the hubs stopped (killed): {line}", file=sys.stderr)

    code, results = runner.run_guarded(
        lambda procs, workdir: run(args, procs, workdir),
        timeout=args.timeout,
        keep=args.keep,
        prefix="atrium-load-bench-",
        errors=(httpx.HTTPError, subprocess.TimeoutExpired),
        after_stop=strays,
    )
    if code:
        return code
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    runinfo.write_results(results, args.output)
    print()
    print(report.table(results))
    print(f"\nRaw numbers: {args.output}  (whole run {results['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
