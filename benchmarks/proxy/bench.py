"""Proxy benchmark, side by side in one run: no proxy, configurable-http-proxy 5, Atrium's proxy.

Behind every proxy: nginx (small responses, a 1 MiB file), an upload sink and
a websocket echo server, all on 127.0.0.1 and started here. Measures:

1. small GET: req/s, p50/p99 at 1, 16 and 64 connections (wrk);
2. 1 MiB downloads and uploads: MB/s (wrk);
3. websocket echo: round-trip latency on one socket, messages/s over 100 sockets;
4. 10,000 routes: add/delete latency, GET /api/routes, small GETs with 10,000 routes;
5. RSS per 1,000 idle websockets; RSS and fds after 10,000 open/close cycles.

Atrium's proxy is included when `atrium proxy --help` describes the proxy's
flags; a target that fails is reported and the others go on. Prints a table
and writes benchmarks/results/proxy.json.

    .venv/bin/python benchmarks/proxy/bench.py [--duration 5] [--rounds 3] [--profile]

See benchmarks/README.md. Neighbours: backends.py, proxies.py, scenarios.py,
wrk.py, wsclient.py; ../hubs.py (scratch installs, processes).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# the shared helpers (hubs.py, httpclient.py, ...) are one directory up
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backends
import hubs
import profiling
import proxies
import runinfo
import runner
import scenarios
import wrk
from hubs import BenchError, ProcessGroup
from proxies import Target
from scenarios import Context

RESULTS = Path(__file__).resolve().parent.parent / "results" / "proxy.json"
NAMES = ("direct", "chp", "atrium")


# --- the run -------------------------------------------------------------------


def start_targets(
    procs: ProcessGroup, workdir: Path, back: backends.Backends, chp: Path, args: argparse.Namespace
) -> tuple[list[Target], dict[str, list[str]], dict[str, str]]:
    """direct, CHP and (when it is there and starts) Atrium; and why any is missing."""
    targets = [proxies.direct(back)]
    atrium = [str(proxies.ATRIUM), "proxy", "--workers", str(args.atrium_workers)]
    commands = {"chp": [str(chp)], "atrium": atrium}
    missing: dict[str, str] = {}
    wanted = ["chp"] + (["atrium"] if not args.no_atrium else [])
    if "atrium" in wanted:
        ok, why = proxies.atrium_proxy_available()
        if not ok:
            missing["atrium"] = why
            wanted.remove("atrium")
            print(f"  Atrium's proxy left out: {why}", flush=True)
    for name in wanted:
        try:
            t = proxies.start_proxy(name, commands[name], procs, workdir, back)
        except (BenchError, OSError, http.client.HTTPException) as e:
            missing[name] = f"did not start: {e}"
            print(f"  ! {name} did not start: {e}", flush=True)
            continue
        print(
            f"  {t.label} on :{t.http_port} (API :{t.api_port}), {t.start_seconds:.2f}s", flush=True
        )
        targets.append(t)
    return targets, commands, missing


def routes_workload(target: Target, n: int, url: str) -> int:
    """POST then DELETE n routes through the routes API; the number of requests."""
    with target.api(timeout=30) as api:
        for method, status in (("POST", 201), ("DELETE", 204)):
            for i in range(n):
                body = (
                    json.dumps({"target": url, "user": f"p{i}"}).encode() if status == 201 else None
                )
                r = api.request(method, f"/api/routes/profiled/p{i:05d}", body)
                if r.status != status:
                    raise BenchError(f"profiling: {method} /api/routes/... answered {r.status}")
    return 2 * n


def profile_atrium(ctx: Context, py_spy: Path, results_dir: Path) -> dict[str, Any] | None:
    """py-spy samples of Atrium's proxy: small GETs, websocket echoes, routes API (untimed)."""
    atrium = next((t for t in ctx.targets if t.name == "atrium" and t.alive()), None)
    if atrium is None or atrium.proc is None:
        return None
    out: dict[str, Any] = {
        "target": "atrium proxy",
        "tool": "py-spy record",
        "rate_hz": profiling.RATE,
    }
    script = wrk.write_script(ctx.workdir / "get.lua")
    workloads: dict[str, Callable[[], int]] = {
        "small_get_c16": lambda: (
            wrk.run(
                f"http://127.0.0.1:{atrium.http_port}{backends.SMALL_PATH}",
                connections=16,
                threads=ctx.args.wrk_threads,
                duration=ctx.args.duration,
                script=script,
            ).requests
        ),
        "ws_echo_100": lambda: ctx.run_async(
            scenarios._echo_throughput(atrium.ws_port, ctx.args.ws_sockets, ctx.args.duration)
        )["messages"],
        "routes_api_add_delete": lambda: routes_workload(atrium, 2000, ctx.backends.nginx_url),
    }
    for name, workload in workloads.items():
        folded = ctx.workdir / f"atrium-{name}.folded"
        log = ctx.workdir / f"py-spy-{name}.log"
        cmd = [str(py_spy), "record", "--pid", str(atrium.proc.pid), "--rate", str(profiling.RATE)]
        cmd += ["--nonblocking", "--subprocesses", "--format", "raw", "--threads"]
        cmd += ["--output", str(folded)]
        spy = ctx.procs.start("py-spy", cmd, cwd=ctx.workdir, env={}, log=log)
        profiling._wait_sampling(spy, log)
        t0 = time.perf_counter()
        count = workload()
        wall = time.perf_counter() - t0
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            ctx.procs.stop(spy)
        if not folded.exists():
            raise BenchError(f"py-spy wrote no profile; its log:\n{hubs.log_tail(log)}")
        text = folded.read_text()
        (results_dir / f"proxy-profile-atrium-{name}.folded").write_text(text)
        out[name] = profiling.summarize(
            profiling.parse_folded(text.splitlines()), max(count, 1), wall
        )
    return out


def run(args: argparse.Namespace, procs: ProcessGroup, workdir: Path) -> dict[str, Any]:
    done = runner.phase("Checking tools (nginx, wrk, configurable-http-proxy 5, websockets venv)")
    wrk.command()
    chp, chp_version = proxies.ensure_chp()
    ws_python = backends.ensure_ws_venv()
    py_spy = hubs.ensure_py_spy() if args.profile else None
    done()
    env = environment(chp_version, ws_python)

    done = runner.phase("Starting nginx, the upload sink and the websocket echo server")
    back = backends.start_backends(procs, workdir, ws_python)
    done()
    done = runner.phase("Starting the proxies")
    targets, commands, missing = start_targets(procs, workdir, back, chp, args)
    done()
    ctx = Context(args, workdir, procs, back, targets, commands)
    for name, why in missing.items():
        ctx.failures.setdefault(name, {})["start"] = why

    done = runner.phase("Checking what works through each target")
    scenarios.check_targets(ctx)
    done()

    measurements: dict[str, Any] = {}
    steps: list[tuple[str, str, Callable[[Context], dict[str, Any]]]] = [
        ("small_get", f"1. small GET, wrk -t{args.wrk_threads}", scenarios.small_get),
        ("transfer", "2. 1 MiB downloads and uploads", scenarios.transfers),
        ("ws_latency", "3a. websocket echo round trips", scenarios.ws_latency),
        (
            "ws_throughput",
            f"3b. websocket echo, {args.ws_sockets} sockets",
            scenarios.ws_throughput,
        ),
        ("routes", f"4. {args.routes:,} routes", scenarios.routes),
        ("ws_resources", "5. idle websockets and open/close cycles", scenarios.ws_resources),
    ]
    for key, label, step in steps:
        if args.only and key not in args.only:
            continue
        done = runner.phase(label)
        measurements[key] = step(ctx)
        done()

    profile = None
    if py_spy is not None:
        done = runner.phase("Profiling Atrium's proxy with py-spy (after the timed runs)")
        try:
            profile = profile_atrium(ctx, py_spy, args.output.parent)
        except (BenchError, OSError) as e:
            print(f"  ! profiling failed: {e}", flush=True)
        done()

    final = {t.name: (s.as_dict() if (s := proxies.target_stats(t)) else None) for t in targets}
    env["loadavg_end"] = list(os.getloadavg())
    return {
        "benchmark": "proxy",
        "description": "HTTP and websocket proxying on loopback: direct vs "
        "configurable-http-proxy 5 vs Atrium's proxy",
        "environment": env,
        "targets": {
            t.name: {
                "label": t.label,
                "port": t.http_port,
                "start_seconds": round(t.start_seconds, 2),
                "works_for": [
                    k for k in ("small", "download", "upload", "ws") if k not in t.broken
                ],
                "final_stats": final[t.name],
            }
            for t in targets
        },
        "missing": missing,
        "config": {
            "duration_seconds": args.duration,
            "rounds": args.rounds,
            "wrk_threads": args.wrk_threads,
            "connections": args.connections,
            "transfer_connections": args.transfer_connections,
            "file_bytes": backends.FILE_SIZE,
            "ws_messages": args.ws_messages,
            "ws_payload_bytes": len(scenarios.WS_PAYLOAD),
            "ws_sockets": args.ws_sockets,
            "routes": args.routes,
            "routes_connections": args.routes_connections,
            "idle_ws": args.idle_ws,
            "ws_cycles": args.ws_cycles,
            "atrium_workers": args.atrium_workers,
            "proxy_flags": "--ip 127.0.0.1 --port P --api-ip 127.0.0.1 --api-port A "
            "--default-target http://127.0.0.1:NGINX (CONFIGPROXY_AUTH_TOKEN in the env)",
        },
        "measurements": measurements,
        "failures": ctx.failures,
        "profile": profile,
    }


def environment(chp_version: str, ws_python: Path) -> dict[str, Any]:
    def sysctl(name: str) -> str:
        try:
            return Path("/proc/sys", *name.split(".")).read_text().strip()
        except OSError:
            return "unknown"

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_note": f"wrk (or the Python websocket client), nginx/the echo server and the proxy "
        f"share these {os.cpu_count()} CPUs; nothing is pinned",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "node": hubs.tool_version(["node", "--version"]),
        "configurable_http_proxy": chp_version,
        "wrk": wrk.version(),
        **backends.versions(ws_python),
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "sysctl": {
            k: sysctl(k)
            for k in ("net.core.somaxconn", "net.ipv4.tcp_tw_reuse", "net.ipv4.ip_local_port_range")
        },
        "loadavg_start": list(os.getloadavg()),
        "atrium_git": runinfo.git_state(),
    }


# --- report ----------------------------------------------------------------------


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """(metric, unit, direct, CHP, Atrium, Atrium/CHP) rows; None where not measured."""
    m = results["measurements"]
    rows: list[dict[str, Any]] = []

    def row(metric: str, unit: str, values: dict[str, Any]) -> None:
        chp, atrium = values.get("chp"), values.get("atrium")
        # a ratio of deltas (which may be zero or negative) means nothing
        ratio = None
        if isinstance(chp, int | float) and isinstance(atrium, int | float) and chp > 0 < atrium:
            ratio = round(atrium / chp, 2)
        rows.append(
            {
                "metric": metric,
                "unit": unit,
                **{n: values.get(n) for n in NAMES},
                "atrium_over_chp": ratio,
            }
        )

    for key, per in (m.get("small_get") or {}).items():
        c = key[1:]
        row(f"small GET c={c}", "req/s", {n: _get(per, n, "requests_per_second") for n in NAMES})
        row(f"small GET c={c}", "p50 ms", {n: _get(per, n, "p50_ms") for n in NAMES})
        row(f"small GET c={c}", "p99 ms", {n: _get(per, n, "p99_ms") for n in NAMES})
        row(
            f"small GET c={c}",
            "proxy CPU µs/req",
            {n: _get(per, n, "proxy_cpu_us_per_request") for n in NAMES},
        )
    for kind in ("download", "upload"):
        per = _get(m, "transfer", kind)
        if per is not None:
            row(f"1 MiB {kind}", "MB/s", {n: _get(per, n, "mb_per_second") for n in NAMES})
    per = m.get("ws_latency")
    if per:
        row("WS echo RTT", "p50 µs", {n: _us(_get(per, n, "p50_ms")) for n in NAMES})
        row("WS echo RTT", "p99 µs", {n: _us(_get(per, n, "p99_ms")) for n in NAMES})
        row(
            "WS echo overhead vs direct",
            "p50 µs",
            {n: _get(per, n, "overhead_p50_us") for n in NAMES},
        )
        row(
            "WS echo overhead vs direct",
            "p99 µs",
            {n: _get(per, n, "overhead_p99_us") for n in NAMES},
        )
    per = m.get("ws_throughput")
    if per:
        s = results["config"]["ws_sockets"]
        row(
            f"WS echo, {s} sockets",
            "msg/s",
            {n: _get(per, n, "messages_per_second") for n in NAMES},
        )
    per = m.get("routes")
    if per:
        r = f"{results['config']['routes']:,}"
        row(f"add {r} routes", "p50 ms", {n: _get(per, n, "add", "p50_ms") for n in NAMES})
        row(f"add {r} routes", "p99 ms", {n: _get(per, n, "add", "p99_ms") for n in NAMES})
        row(f"add {r} routes", "total s", {n: _get(per, n, "add", "total_seconds") for n in NAMES})
        row(
            f"GET /api/routes ({r})", "ms", {n: _get(per, n, "get_all", "median_ms") for n in NAMES}
        )
        row(f"delete {r} routes", "p50 ms", {n: _get(per, n, "delete", "p50_ms") for n in NAMES})
        row(f"delete {r} routes", "p99 ms", {n: _get(per, n, "delete", "p99_ms") for n in NAMES})
        c = results["config"]["routes_connections"]
        row(
            f"small GET c={c}, {r} routes",
            "req/s",
            {n: _get(per, n, "small_get_many_routes", "requests_per_second") for n in NAMES},
        )
        row(
            f"small GET c={c}, 3 routes",
            "req/s",
            {n: _get(per, n, "small_get_main_instance", "requests_per_second") for n in NAMES},
        )
        row(f"RSS with {r} routes", "MiB", {n: _get(per, n, "after_add", "rss_mib") for n in NAMES})
    per = m.get("ws_resources")
    if per:
        i = f"{results['config']['idle_ws']:,}"
        row(
            "RSS before idle websockets",
            "MiB",
            {n: _get(per, n, "idle", "before", "rss_mib") for n in NAMES},
        )
        row(
            "RSS per 1,000 idle websockets",
            "MiB",
            {n: _get(per, n, "idle", "rss_mib_per_1000") for n in NAMES},
        )
        row(f"fds with {i} idle websockets", "+fds", {n: _fd_delta(per, n) for n in NAMES})
        cyc = f"{results['config']['ws_cycles']:,}"
        row(
            f"{cyc} WS open/close cycles",
            "cycles/s",
            {n: _get(per, n, "cycles", "cycles_per_second") for n in NAMES},
        )
        row(
            f"RSS after {cyc} cycles",
            "Δ MiB",
            {n: _get(per, n, "cycles", "rss_delta_mib") for n in NAMES},
        )
        row(
            f"fds after {cyc} cycles",
            "Δ fds",
            {n: _get(per, n, "cycles", "fds_delta") for n in NAMES},
        )
    return rows


def _us(ms_: float | None) -> float | None:
    return None if ms_ is None else round(ms_ * 1000, 1)


def _fd_delta(per: dict[str, Any], name: str) -> int | None:
    idle = _get(per, name, "idle")
    return None if idle is None else idle["open"]["fds"] - idle["before"]["fds"]


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(results: dict[str, Any]) -> str:
    rows = results["table"]
    head = (
        f"{'measurement':<34}{'unit':<17}{'direct':>10}{'CHP':>10}{'Atrium':>10}{'Atrium/CHP':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = "-" if r["atrium_over_chp"] is None else f"{r['atrium_over_chp']:.2f}x"
        lines.append(
            f"{r['metric']:<34}{r['unit']:<17}{_cell(r['direct']):>10}{_cell(r['chp']):>10}"
            f"{_cell(r['atrium']):>10}{ratio:>12}"
        )
    return "\n".join(lines)


def header(results: dict[str, Any]) -> str:
    env, cfg = results["environment"], results["config"]
    present = ", ".join(t["label"] for t in results["targets"].values())
    return (
        f"Proxy benchmark, {env['date']}: {present}; CHP {env['configurable_http_proxy']} "
        f"(node {env['node']}), nginx {env['nginx']}, {env['wrk']}\n"
        f"{env['cpu_count']} CPUs shared by the load generator, the backends and the proxy. "
        f"wrk -t{cfg['wrk_threads']}, {cfg['duration_seconds']:g}s x {cfg['rounds']} interleaved "
        f"runs per cell, medians; 1 MiB transfers at c={cfg['transfer_connections']}; "
        f"WS: {cfg['ws_messages']:,} round trips of {cfg['ws_payload_bytes']} B per target. "
        f"Atrium's proxy runs {cfg.get('atrium_workers', 1)} process(es) (--workers); "
        "CHP is one Node process.\n"
        "Atrium/CHP: above 1 is better for req/s, MB/s, msg/s and cycles/s; below 1 is better "
        "for times, CPU, memory and fds.\n"
    )


def failures_report(results: dict[str, Any]) -> str:
    lines = []
    for name, why in results["missing"].items():
        lines.append(f"{proxies.LABELS.get(name, name)} not measured: {why}")
    for name, per in results["failures"].items():
        for what, why in per.items():
            if what == "start":
                continue
            first = why.strip().splitlines()[0] if why.strip() else why
            lines.append(
                f"{proxies.LABELS.get(name.split('-')[0], name)} ({name}), {what}: {first[:300]}"
            )
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--duration", type=float, default=5, help="seconds per wrk run / WS throughput run"
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved runs per cell (median)")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk -t (2 CPUs here: 1 leaves one)")
    p.add_argument(
        "--connections", type=int, nargs="+", default=[1, 16, 64], help="small GET wrk -c values"
    )
    p.add_argument("--transfer-connections", type=int, default=4, help="wrk -c for 1 MiB transfers")
    p.add_argument("--ws-messages", type=int, default=5000, help="WS echo round trips per target")
    p.add_argument("--ws-sockets", type=int, default=100, help="sockets for WS messages/s")
    p.add_argument("--routes", type=int, default=10_000, help="routes added to each proxy")
    p.add_argument("--routes-connections", type=int, default=16, help="wrk -c with many routes")
    p.add_argument("--idle-ws", type=int, default=1000, help="idle websockets held open at once")
    p.add_argument("--ws-cycles", type=int, default=10_000, help="websocket open/close cycles")
    p.add_argument(
        "--only",
        nargs="+",
        choices=["small_get", "transfer", "ws_latency", "ws_throughput", "routes", "ws_resources"],
        help="run only these measurements",
    )
    p.add_argument("--no-atrium", action="store_true", help="leave Atrium's proxy out")
    p.add_argument(
        "--atrium-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="atrium proxy --workers (default: one per CPU, as the hub starts it)",
    )
    p.add_argument(
        "--profile", action="store_true", help="afterwards, py-spy samples of Atrium's proxy"
    )
    p.add_argument("--timeout", type=int, default=840, help="stop everything after this many s")
    p.add_argument("--output", type=Path, default=RESULTS, help="where the JSON results go")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.rounds < 1 or args.routes < 2 or args.ws_messages < 1:
        p.error("need --duration > 0, --rounds >= 1, --routes >= 2, --ws-messages >= 1")
    return args


def raise_fd_limit() -> None:
    """Thousands of sockets at once: soft open-files limit up to the hard one (inherited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    started = time.perf_counter()
    code, results = runner.run_guarded(
        lambda procs, workdir: run(args, procs, workdir),
        timeout=args.timeout,
        keep=args.keep,
        prefix="atrium-proxy-bench-",
        timeout_is_error=True,
    )
    if code:
        return code
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["table"] = table_rows(results)
    runinfo.write_results(results, args.output)
    print()
    print(header(results))
    print(table(results))
    problems = failures_report(results)
    if problems:
        print("\nNot measured or failed:\n" + problems)
    if results["profile"]:
        print()
        print(profiling.report({**results["profile"], "hub": "Atrium's proxy"}))
    print(f"\nRaw numbers: {args.output}  (whole run {results['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
