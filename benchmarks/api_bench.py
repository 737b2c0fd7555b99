"""REST API latency, side by side: Atrium and JupyterHub 6, 10,000 users each.

Measures, in one run and with the same client for both hubs:

- GET /hub/api/users?limit=200 at offsets spread over all pages (bare list),
  and the same with the pagination media type (items + total, as the admin
  panel asks for it);
- GET /hub/api/users/{name} for random existing users;
- POST /hub/api/users/{name}, creating new users one request at a time;
- for reference, GET /hub/api/ without and with the token.

Both hubs run on 127.0.0.1 with fresh SQLite databases and are seeded through
their own bulk API (not timed). Requests are sequential over one keep-alive
connection per hub; the hubs take turns every few requests, so machine noise
hits both. Prints a table and writes the raw samples to benchmarks/results/api.json.

    .venv/bin/python benchmarks/api_bench.py [--users 10000] [--rounds 5] [--profile]

See benchmarks/README.md. Neighbours: hubs.py (installs, processes), httpclient.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hubs
import profiling
import runinfo
import runner
from httpclient import Client, median, percentile
from hubs import BenchError, ProcessGroup, RunningHub

RESULTS = Path(__file__).resolve().parent / "results" / "api.json"
PAGE = 200
PAGINATION = "application/jupyterhub-pagination+json"


# --- what each metric sends ----------------------------------------------------


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    method: str
    expected_status: int
    accept: str | None = None
    auth: bool = True


PAGE_LIST = Metric("users_page", "GET /users?limit=200 (list)", "GET", 200)
PAGE_PAGINATED = Metric(
    "users_page_paginated", "GET /users?limit=200 (paginated)", "GET", 200, PAGINATION
)
ONE_USER = Metric("user", "GET /users/{name}", "GET", 200)
CREATE = Metric("create_user", "POST /users/{name} (create)", "POST", 201)
# Not goals, but where the time of a small request goes: an HTTP round trip
# through the hub's web framework alone, and that plus resolving the token.
FLOOR = Metric("floor", "GET /hub/api/ (no token)", "GET", 200, auth=False)
TOKEN_ONLY = Metric("token_only", "GET /hub/api/ (token)", "GET", 200)
METRICS = (PAGE_LIST, PAGE_PAGINATED, ONE_USER, CREATE, FLOOR, TOKEN_ONLY)


@dataclass
class Plan:
    """The requests of every round, identical for both hubs."""

    page_offsets: list[list[int]]
    user_names: list[list[str]]
    new_names: list[list[str]]

    def paths(self, metric: Metric, round_: int) -> list[str]:
        if metric in (PAGE_LIST, PAGE_PAGINATED):
            return [f"/hub/api/users?limit={PAGE}&offset={o}" for o in self.page_offsets[round_]]
        if metric is ONE_USER:
            return [f"/hub/api/users/{n}" for n in self.user_names[round_]]
        if metric is CREATE:
            return [f"/hub/api/users/{n}" for n in self.new_names[round_]]
        return ["/hub/api/"] * len(self.user_names[round_])


def make_plan(args: argparse.Namespace, seeded: Sequence[str]) -> Plan:
    rng = random.Random(args.seed)
    offsets = list(range(0, len(seeded) - PAGE + 1, PAGE)) or [0]
    per_round_new = [args.create // args.rounds] * args.rounds
    for i in range(args.create % args.rounds):
        per_round_new[i] += 1
    page_offsets, user_names, new_names = [], [], []
    n = 0
    for r in range(args.rounds):
        # every page once per pass, in a different order each round
        pages: list[int] = []
        while len(pages) < args.page_requests:
            pages += rng.sample(offsets, len(offsets))
        page_offsets.append(pages[: args.page_requests])
        user_names.append([rng.choice(seeded) for _ in range(args.user_requests)])
        new_names.append([f"new{n + i:05d}" for i in range(per_round_new[r])])
        n += per_round_new[r]
    return Plan(page_offsets, user_names, new_names)


def check_response(metric: Metric, path: str, status: int, body: bytes) -> None:
    """Fail loudly if a hub answered something other than what was asked."""
    if status != metric.expected_status:
        raise BenchError(f"{metric.method} {path} answered {status}: {body[:300]!r}")
    data = json.loads(body)
    if metric is PAGE_LIST and len(data) != PAGE:
        raise BenchError(f"GET {path} returned {len(data)} users, not {PAGE}")
    if metric is PAGE_PAGINATED and (
        len(data["items"]) != PAGE or data["_pagination"]["total"] < PAGE
    ):
        raise BenchError(f"GET {path} (paginated) returned an unexpected page")
    if metric in (ONE_USER, CREATE) and data.get("name") != path.rsplit("/", 1)[1]:
        raise BenchError(f"{metric.method} {path} returned the wrong user")
    if metric in (FLOOR, TOKEN_ONLY) and "version" not in data:
        raise BenchError(f"GET {path} returned no version")


# --- measuring -----------------------------------------------------------------


@dataclass
class Samples:
    """Latencies (seconds) per round, and each round's summed wall time."""

    rounds: list[list[float]] = field(default_factory=list)
    round_seconds: list[float] = field(default_factory=list)
    body_bytes: list[int] = field(default_factory=list)

    @property
    def all(self) -> list[float]:
        return [s for r in self.rounds for s in r]


def run_batch(client: Client, metric: Metric, paths: Sequence[str], out: Samples) -> None:
    """Send `paths` one after the other; adds to the current (last) round of `out`."""
    latencies = out.rounds[-1]
    t0 = time.perf_counter()
    for path in paths:
        r = client.request(metric.method, path, accept=metric.accept, auth=metric.auth)
        latencies.append(r.seconds)
        check_response(metric, path, r.status, r.body)
        out.body_bytes.append(len(r.body))
    out.round_seconds[-1] += time.perf_counter() - t0


def warm_up(client: Client, plan: Plan) -> None:
    """A few untimed requests of each reading kind, so round 1 is not a cold start."""
    for metric in (PAGE_LIST, PAGE_PAGINATED, ONE_USER, FLOOR, TOKEN_ONLY):
        for path in plan.paths(metric, 0)[:10]:
            r = client.request("GET", path, accept=metric.accept, auth=metric.auth)
            check_response(metric, path, r.status, r.body)


def measure(
    hubs_: Sequence[RunningHub], plan: Plan, rounds: int, chunk: int
) -> dict[str, dict[str, Samples]]:
    """Every round: each request kind in chunks, hubs alternating A B B A A B ... per chunk.

    Short alternating chunks put both hubs under the same machine noise (other
    processes on a small machine come and go within seconds).
    """
    samples = {m.key: {h.name: Samples() for h in hubs_} for m in METRICS}
    clients = {h.name: h.client() for h in hubs_}
    try:
        for r in range(rounds):
            t0 = time.perf_counter()
            for metric in METRICS:
                for per_hub in samples[metric.key].values():
                    per_hub.rounds.append([])
                    per_hub.round_seconds.append(0.0)
                paths = plan.paths(metric, r)
                for i, start in enumerate(range(0, len(paths), chunk)):
                    order = list(hubs_) if (r + i) % 2 == 0 else list(reversed(hubs_))
                    for hub in order:
                        run_batch(
                            clients[hub.name],
                            metric,
                            paths[start : start + chunk],
                            samples[metric.key][hub.name],
                        )
            print(f"  round {r + 1}/{rounds} done in {time.perf_counter() - t0:.1f}s", flush=True)
    finally:
        for c in clients.values():
            c.close()
    return samples


# --- reporting -----------------------------------------------------------------


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def summarize(samples: Samples) -> dict[str, Any]:
    values = samples.all
    return {
        "n": len(values),
        "median_ms": ms(median(values)),
        "p95_ms": ms(percentile(values, 95)),
        "mean_ms": ms(sum(values) / len(values)),
        "min_ms": ms(min(values)),
        "max_ms": ms(max(values)),
        "round_medians_ms": [ms(median(r)) for r in samples.rounds],
        "total_seconds": round(sum(samples.round_seconds), 3),
        "response_bytes_median": int(median(samples.body_bytes)),
        "samples_ms": [[ms(s) for s in r] for r in samples.rounds],
    }


def ratios(jh: dict[str, Any], atrium: dict[str, Any]) -> dict[str, Any]:
    per_round = [
        round(j / a, 2)
        for j, a in zip(jh["round_medians_ms"], atrium["round_medians_ms"], strict=True)
    ]
    return {
        "median": round(jh["median_ms"] / atrium["median_ms"], 2),
        "p95": round(jh["p95_ms"] / atrium["p95_ms"], 2),
        "total_seconds": round(jh["total_seconds"] / atrium["total_seconds"], 2),
        "per_round_median": per_round,
    }


def table(metrics: dict[str, Any], create_total: int) -> str:
    lines = [
        f"{'request':<34}{'Atrium':>20}{'JupyterHub 6':>20}{'JupyterHub / Atrium':>28}",
        f"{'':<34}{'median':>10}{'p95':>10}{'median':>10}{'p95':>10}"
        f"{'median':>9}{'p95':>9}{'rounds':>10}",
    ]
    lines.append("-" * len(lines[1]))
    for m in METRICS:
        entry = metrics[m.key]
        a, j, r = entry["atrium"], entry["jupyterhub"], entry["ratio_jupyterhub_over_atrium"]
        spread = f"{min(r['per_round_median']):.1f}-{max(r['per_round_median']):.1f}"
        lines.append(
            f"{m.label:<34}{a['median_ms']:>8.2f}ms{a['p95_ms']:>8.2f}ms"
            f"{j['median_ms']:>8.2f}ms{j['p95_ms']:>8.2f}ms"
            f"{r['median']:>8.2f}x{r['p95']:>8.2f}x{spread:>10}"
        )
    c = metrics["create_user"]
    lines.append(
        f"{f'create {create_total:,} users, total':<34}"
        f"{c['atrium']['total_seconds']:>9.2f}s{'':>10}{c['jupyterhub']['total_seconds']:>9.2f}s"
        f"{'':>10}{c['ratio_jupyterhub_over_atrium']['total_seconds']:>8.2f}x"
    )
    sizes = ", ".join(
        f"{m.key} {metrics[m.key]['atrium']['response_bytes_median']:,}"
        f"/{metrics[m.key]['jupyterhub']['response_bytes_median']:,}"
        for m in (PAGE_LIST, ONE_USER)
    )
    lines.append(f"response bytes, Atrium/JupyterHub: {sizes}")
    return "\n".join(lines)


def environment(jupyterhub: Path, chp: Path) -> dict[str, Any]:
    jh_python = jupyterhub.parent / "python"
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python_atrium": platform.python_version(),
        "python_jupyterhub": hubs.tool_version([str(jh_python), "--version"]).split()[-1],
        "sqlite": sqlite3.sqlite_version,
        "node": hubs.tool_version(["node", "--version"]),
        "configurable_http_proxy": hubs.tool_version([str(chp), "--version"]),
        "loadavg_start": list(os.getloadavg()),
        "atrium_git": runinfo.git_state(),
    }


# --- the run -------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000, help="users seeded into each hub")
    p.add_argument("--rounds", type=int, default=5, help="measurement rounds (hubs interleaved)")
    p.add_argument("--page-requests", type=int, default=30, help="page requests per round")
    p.add_argument("--user-requests", type=int, default=200, help="single-user GETs per round")
    p.add_argument(
        "--create", type=int, default=1000, help="users created one by one (over all rounds)"
    )
    p.add_argument(
        "--chunk", type=int, default=10, help="requests per hub before switching to the other"
    )
    p.add_argument("--seed-chunk", type=int, default=1000, help="users per bulk seeding request")
    p.add_argument("--seed", type=int, default=20240601, help="random seed of the request plan")
    p.add_argument("--timeout", type=int, default=580, help="stop everything after this many s")
    p.add_argument("--output", type=Path, default=RESULTS, help="where the JSON results go")
    p.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, sample Atrium with py-spy while it serves pages, users and creations",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, DBs)")
    p.add_argument(
        "--atrium-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for atrium, e.g. --atrium-arg=--Hub.auth_cache_ttl=0 to measure "
        "with the token cache off (repeatable)",
    )
    args = p.parse_args(argv)
    if args.users < PAGE or args.rounds < 1 or args.create < args.rounds:
        p.error(f"need --users >= {PAGE}, --rounds >= 1 and --create >= --rounds")
    if args.page_requests < 1 or args.user_requests < 1 or args.chunk < 1:
        p.error("need at least one request of each kind per round")
    return args


def run(args: argparse.Namespace, procs: ProcessGroup, workdir: Path) -> dict[str, Any]:
    done = runner.phase("Checking the scratch installs (JupyterHub 6, configurable-http-proxy)")
    jupyterhub, chp = hubs.ensure_jupyterhub(), hubs.ensure_chp()
    py_spy = hubs.ensure_py_spy() if args.profile else None
    done()
    env = environment(jupyterhub, chp)

    done = runner.phase("Starting Atrium and JupyterHub on 127.0.0.1 with fresh SQLite databases")
    atrium = hubs.start_atrium(procs, workdir / "atrium", args.atrium_arg)
    jupyterhub_hub = hubs.start_jupyterhub(procs, workdir / "jupyterhub", jupyterhub, chp)
    both = [atrium, jupyterhub_hub]
    done()

    seeded = [f"user{i:05d}" for i in range(args.users)]
    seed_seconds = {}
    for hub in both:
        done = runner.phase(f"Seeding {args.users:,} users into {hub.name} (bulk API, not timed)")
        seed_seconds[hub.name] = round(hubs.seed_users(hub, seeded, args.seed_chunk), 2)
        done()

    plan = make_plan(args, seeded)
    for hub in both:
        with hub.client() as c:
            warm_up(c, plan)
    print(
        f"Measuring: {args.rounds} rounds x ({args.page_requests} pages x2, "
        f"{args.user_requests} single users, {args.create // args.rounds} creates) per hub",
        flush=True,
    )
    samples = measure(both, plan, args.rounds, args.chunk)

    metrics: dict[str, Any] = {}
    for m in METRICS:
        a = summarize(samples[m.key]["atrium"])
        j = summarize(samples[m.key]["jupyterhub"])
        metrics[m.key] = {
            "request": m.label,
            "atrium": a,
            "jupyterhub": j,
            "ratio_jupyterhub_over_atrium": ratios(j, a),
        }

    profile = None
    if py_spy is not None:
        done = runner.phase("Profiling Atrium with py-spy (after the timed rounds)")
        profile = profiling.profile_hub(procs, py_spy, atrium, plan, workdir, args.output.parent)
        done()

    env["loadavg_end"] = list(os.getloadavg())
    return {
        "benchmark": "api",
        "description": "Hub REST API latency, sequential keep-alive requests on loopback",
        "environment": env,
        "hubs": {
            h.name: {
                "version": h.version,
                "api_port": h.port,
                "start_seconds": round(h.start_seconds, 2),
                "seed_seconds": seed_seconds[h.name],
            }
            for h in both
        },
        "config": {
            "users": args.users,
            "rounds": args.rounds,
            "page_size": PAGE,
            "page_requests_per_round": args.page_requests,
            "user_requests_per_round": args.user_requests,
            "created_users": args.create,
            "interleave_chunk": args.chunk,
            "seed_chunk": args.seed_chunk,
            "seed": args.seed,
            "atrium_args": list(args.atrium_arg),
        },
        "metrics": metrics,
        "profile": profile,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    code, results = runner.run_guarded(
        lambda procs, workdir: run(args, procs, workdir),
        timeout=args.timeout,
        keep=args.keep,
        prefix="atrium-api-bench-",
        kept="Logs and databases",
        timeout_is_error=True,
    )
    if code:
        return code
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    runinfo.write_results(results, args.output)
    print()
    print(header(results))
    print(table(results["metrics"], args.create))
    if results["profile"]:
        print()
        print(profiling.report(results["profile"]))
    print(f"\nRaw numbers: {args.output}  (whole run {results['wall_seconds']:.0f}s)")
    return 0


def header(results: dict[str, Any]) -> str:
    env, cfg, h = results["environment"], results["config"], results["hubs"]
    return (
        f"Atrium {h['atrium']['version']} vs JupyterHub {h['jupyterhub']['version']}: "
        f"{cfg['users']:,} users each, SQLite, {env['cpu_count']} CPUs, "
        f"Python {env['python_atrium']}, {env['date']}\n"
        f"{cfg['rounds']} rounds; latency per request in ms; "
        "'rounds' = range of the per-round median ratios\n"
    )


if __name__ == "__main__":
    sys.exit(main())
