"""Spawn and kernel benchmark, side by side in one run: Atrium vs JupyterHub 6.

Both hubs start real single-user servers (jupyter_server + JupyterLab +
ipykernel, the same versions) as local processes on 127.0.0.1, and every
request goes through each hub's own proxy with an admin token. Measures:

1. spawn latency: POST /hub/api/users/{name}/server -> first 200 from
   GET /user/{name}/api through the proxy (N users one after another);
2. time to first execution: spawn + kernel + websocket + print(1);
3. bursts: B users started at once, how many get through and how fast, and
   whether stopping them all leaves any process behind;
4. idle memory: PSS of each of K servers' process trees;
5. kernel round trip over the websocket (through the proxy) vs direct ZMQ.

Prints a table and writes benchmarks/results/spawn.json.

    .venv/bin/python benchmarks/spawn/bench.py [--users 10] [--burst 20 50] [--only atrium]
    .venv/bin/python benchmarks/spawn/bench.py --combine results/spawn-run*.json

See benchmarks/README.md. Neighbours: hubsetup.py, hubapi.py, scenarios.py,
kernels.py, proctree.py, report.py; ../hubs.py (scratch installs, processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

# the shared helpers (hubs.py, httpclient.py, ...) are one directory up
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hubs
import hubsetup
import proctree
import report
import runinfo
import runner
import scenarios
from hubapi import HubAPI
from hubs import BenchError, ProcessGroup
from hubsetup import SpawnHub
from scenarios import Context

RESULTS = Path(__file__).resolve().parent.parent / "results" / "spawn.json"
Step = Callable[[Context], Awaitable[dict[str, Any]]]


# --- the run -------------------------------------------------------------------------


def start_hubs(args: argparse.Namespace, procs: ProcessGroup, workdir: Path) -> list[SpawnHub]:
    started = []
    if args.only in (None, "atrium"):
        started.append(hubsetup.start_atrium(procs, workdir))
    if args.only in (None, "jupyterhub"):
        jupyterhub = jupyterhub_command(args)
        chp = hubs.ensure_chp()
        started.append(hubsetup.start_jupyterhub(procs, workdir / "jupyterhub", jupyterhub, chp))
    for h in started:
        print(
            f"  {h.label} {h.hub.version}: public port {h.public_port}, "
            f"{h.hub.start_seconds:.1f}s to answer",
            flush=True,
        )
    return started


def jupyterhub_command(args: argparse.Namespace) -> Path:
    if args.jupyterhub_venv is None:
        return hubsetup.ensure_jupyterhub_with_lab()
    command = args.jupyterhub_venv.resolve() / "bin" / "jupyterhub"
    if not command.exists():
        raise BenchError(f"--jupyterhub-venv: {command} not found")
    return command


def steps(args: argparse.Namespace) -> list[tuple[str, str, Step]]:
    """The steps to run, in order: (results key, label, coroutine)."""
    every: list[tuple[str, bool, str, Step]] = [
        ("spawn_latency", args.skip_latency, f"1. spawn latency, {args.users} users each",
         scenarios.spawn_latency),
        ("first_execution", args.skip_exec, "2. time to first execution",
         scenarios.first_execution),
        ("bursts", args.skip_bursts, f"3. bursts of {args.burst}", scenarios.bursts),
        ("memory_rtt", args.skip_memory and args.skip_rtt,
         "4-5. idle memory and kernel round trips", scenarios.memory_and_kernel_rtt),
    ]  # fmt: skip
    return [(key, label, step) for key, skipped, label, step in every if not skipped]


async def measure(args: argparse.Namespace, started: list[SpawnHub]) -> Context:
    ctx = Context(args, [HubAPI(h) for h in started])
    try:
        for key, label, step in steps(args):
            done = runner.phase(label)
            ctx.noise[key] = noise = await asyncio.to_thread(proctree.busy_elsewhere, os.getpid())
            if noise["others"]:
                print(f"  (busy elsewhere: {'; '.join(noise['others'][:3])})", flush=True)
            ctx.results[key] = await step(ctx)
            for h in started:
                scenarios.check_alive(h)
            done()
    finally:
        await asyncio.gather(*(api.close() for api in ctx.apis))
    return ctx


def run(args: argparse.Namespace, procs: ProcessGroup, workdir: Path) -> dict[str, Any]:
    # the code the hubs load now is what is measured, whatever changes in the tree later
    env = {
        "machine": runinfo.machine(),
        "loadavg_start": list(os.getloadavg()),
        "atrium_git": runinfo.git_state(),
    }
    done = runner.phase("Starting the hubs on 127.0.0.1 (fresh SQLite, servers as local processes)")
    started = start_hubs(args, procs, workdir)
    done()
    ctx = asyncio.run(measure(args, started))
    env["loadavg_end"] = list(os.getloadavg())
    return {
        "benchmark": "spawn",
        "description": "Server spawn, first execution, bursts, idle memory and kernel round "
        "trips: Atrium vs JupyterHub 6, on loopback, through each hub's proxy",
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": runinfo.now(),
        "environment": {**env, **versions(args, started)},
        "hubs": {h.name: hub_info(h) for h in started},
        "config": config(args),
        "measurements": ctx.results,
        "anomalies": ctx.anomalies,
        "noise_before_step": ctx.noise,
        # distinct warnings and errors; JupyterHub's servers log into its own log
        "hub_log_problems": {h.name: report.log_problems([h.hub.log]) for h in started},
        "server_log_problems": {
            h.name: report.log_problems(sorted(h.users_dir.rglob("*.log"))) for h in started
        },
    }


def versions(args: argparse.Namespace, started: list[SpawnHub]) -> dict[str, Any]:
    out: dict[str, Any] = {"stack_atrium": hubsetup.stack_versions()}
    if any(h.name == "jupyterhub" for h in started):
        venv = args.jupyterhub_venv or hubsetup.LAB_VENV
        out["jupyterhub_venv"] = str(venv)
        out["stack_jupyterhub"] = hubsetup.stack_versions(venv / "bin" / "python")
        out["configurable_http_proxy"] = hubs.tool_version([str(hubs.ensure_chp()), "--version"])
        out["node"] = hubs.tool_version(["node", "--version"])
    return out


def hub_info(h: SpawnHub) -> dict[str, Any]:
    return {
        "label": h.label,
        "version": h.hub.version,
        "start_seconds": round(h.hub.start_seconds, 2),
        "proxy": "atrium (built-in)" if h.name == "atrium" else "configurable-http-proxy",
        "spawner": "spawners.local.LocalProcessSpawner (one-account, template)"
        if h.name == "atrium"
        else "SimpleLocalProcessSpawner (jupyterhub-singleuser)",
    }


def config(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("users", "burst", "burst_bound", "spawn_bound", "rtt_iterations", "rtt_warmup")
    keys += ("memory_servers", "settle", "only")
    out = {k: getattr(args, k) for k in keys}
    out["jupyterhub_venv"] = str(args.jupyterhub_venv or hubsetup.LAB_VENV)
    out["skipped"] = [k[5:] for k, v in vars(args).items() if k.startswith("skip_") and v]
    out["as_root"] = os.geteuid() == 0
    out["memory_measure"] = "PSS from /proc/PID/smaps_rollup, summed over the server's tree"
    return out


# --- main ----------------------------------------------------------------------------


def positive_list(text: str) -> list[int]:
    values = [int(v) for v in text.replace(",", " ").split()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a list of positive numbers, like 20,50")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10, help="sequential starts per hub (+1 warm-up)")
    p.add_argument("--burst", type=positive_list, default=[20, 50], help="burst sizes: 20,50")
    p.add_argument("--burst-bound", type=float, default=120, help="s a burst start may take")
    p.add_argument("--spawn-bound", type=float, default=120, help="s a single start may take")
    p.add_argument("--rtt-iterations", type=int, default=200, help="timed round trips per case")
    p.add_argument("--rtt-warmup", type=int, default=20, help="untimed round trips first")
    p.add_argument("--memory-servers", type=int, default=10, help="idle servers measured")
    p.add_argument("--settle", type=float, default=5, help="s idle servers settle before")
    p.add_argument("--only", choices=["atrium", "jupyterhub"], help="measure one hub only")
    for step in ("latency", "exec", "bursts", "memory", "rtt"):
        p.add_argument(f"--skip-{step}", action="store_true", help=f"leave out the {step} step")
    p.add_argument(
        "--jupyterhub-venv",
        type=Path,
        help="run JupyterHub and its servers from this virtualenv instead of "
        ".scratch/spawn-jupyterhub-venv (e.g. .scratch/jupyterhub-venv: no JupyterLab, "
        "no ipykernel, so only the spawn steps work)",
    )
    p.add_argument("--timeout", type=int, default=900, help="stop everything after this many s")
    p.add_argument("--output", type=Path, default=RESULTS, help="where the JSON results go")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    p.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print the medians over these runs' result files instead of measuring",
    )
    args = p.parse_args(argv)
    if args.users < 1 or args.rtt_iterations < 1 or args.memory_servers < 1:
        p.error("need --users, --rtt-iterations and --memory-servers of at least 1")
    return args


def print_summary(results: dict[str, Any], output: Path) -> None:
    env, h = results["environment"], results["hubs"]
    m = env["machine"]
    names = " vs ".join(f"{v['label']} {v['version']}" for v in h.values())
    print(
        f"\n{names}, {results['date']}, {m['cpu_count']} CPUs ({m['cpu_model']}), "
        f"load {env['loadavg_start'][0]:.1f} -> {env['loadavg_end'][0]:.1f}"
    )
    print(report.table(results["table"]))
    for a in results["anomalies"]:
        print(f"! {a['hub']}, {a['step']}: {a['what'][:300]}")
    for line in results["stray_processes"]:
        print(f"! left after the hubs stopped (killed): {line}")
    print(f"\nRaw numbers: {output}  (whole run {results['wall_seconds']:.0f}s)")


def combine(paths: Sequence[Path]) -> int:
    runs = [json.loads(p.read_text()) for p in paths]
    rows = report.combine(runs)
    print(f"Medians over {len(runs)} runs: {', '.join(str(p) for p in paths)}")
    print(report.runs_table(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.combine:
        return combine(args.combine)
    started = time.perf_counter()
    strays: list[str] = []

    def stray_processes(workdir: Path) -> None:
        # server processes still working in the temporary directory (their users' homes)
        strays.extend(proctree.kill_working_under(workdir))
        for line in strays:
            print(f"! left after the hubs stopped (killed): {line}", file=sys.stderr)

    code, results = runner.run_guarded(
        lambda procs, workdir: run(args, procs, workdir),
        timeout=args.timeout,
        keep=args.keep,
        prefix="atrium-spawn-bench-",
        errors=(httpx.HTTPError,),
        after_stop=stray_processes,
    )
    if code:
        return code
    results["stray_processes"] = strays
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["table"] = report.table_rows(results["measurements"], args.burst)
    runinfo.write_results(results, args.output)
    print_summary(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
