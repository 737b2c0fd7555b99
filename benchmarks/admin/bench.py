"""Admin users page with 10,000 users, side by side in one run: Atrium vs JupyterHub 6.

Both hubs run on 127.0.0.1 with fresh SQLite databases holding the same users
(seeded through each hub's REST API: 10,000 users, 20 groups of 100, a last
activity for every 5th; no servers running). An admin logs in through each
hub's login page in Debian's Chromium (Playwright, headless), and each run
opens the admin users page in a new browser context (login cookies only, empty
cache). The hubs take turns, A B B A ..., for `--runs` runs.

"Usable" (watcher.js): from navigation start (or, for an interaction, the
last input event) until the first frame in which all of these hold: the
document has loaded (readyState "complete"); the name search box is present
and enabled; the table shows the expected user rows (a full first page: 50 for
JupyterHub, its default page size; Atrium's default likewise); the first row
has action buttons and none is disabled; the next-page control is present and
enabled; and, for an interaction, the rows are the expected ones (the filter's
matches, page 2's first user, the last user by name first). That moment is
then moved later while a fetch/XHR the page started before it is still
running, so the page's initial fetches are done.

Per run and hub: page load with a cold cache until usable; the requests and
bytes until then and in the 10 s after (live status polling); the same load
with a warm cache; a search, a next page and a sort change until their rows
show. Prints the medians and JupyterHub / Atrium ratios and writes every
figure to a JSON file (default benchmarks/results/admin.json) with the
environment and the git state, and PNG screenshots of both pages at the moment
the first run's table was usable.

    .venv/bin/python benchmarks/admin/bench.py --runs 5 --output benchmarks/results/admin-run1.json
    .venv/bin/python benchmarks/admin/bench.py --combine benchmarks/results/admin-run*.json

See benchmarks/README.md. Neighbours: hubsetup.py, seed.py, pages.py, watcher.js,
browse.py, scenarios.py, report.py; ../hubs.py (scratch installs, processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import async_playwright

# the shared helpers (hubs.py, httpclient.py, ...) are one directory up
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import browse
import hubs
import hubsetup
import report
import runinfo
import runner
import scenarios
import seed
from hubs import ProcessGroup
from hubsetup import BrowserHub
from scenarios import Target

RESULTS = Path(__file__).resolve().parent.parent / "results"


# --- the run -------------------------------------------------------------------------


def start_and_seed(
    args: argparse.Namespace, procs: ProcessGroup, workdir: Path, plan: seed.SeedPlan
) -> tuple[list[BrowserHub], dict[str, Any]]:
    done = runner.phase("Checking the scratch installs (JupyterHub 6, configurable-http-proxy)")
    jupyterhub, chp = hubs.ensure_jupyterhub(), hubs.ensure_chp()
    done()
    done = runner.phase("Starting the hubs on 127.0.0.1 (fresh SQLite)")
    started = []
    if args.only in (None, "atrium"):
        source = None
        if args.atrium_commit:
            source = workdir / "atrium-source"
            sha = hubsetup.export_atrium(args.atrium_commit, source)
            print(f"  Atrium from commit {sha[:12]} (git archive into {source})", flush=True)
        started.append(hubsetup.start_atrium(procs, workdir, source))
    if args.only in (None, "jupyterhub"):
        started.append(hubsetup.start_jupyterhub(procs, workdir, jupyterhub, chp))
    for h in started:
        print(f"  {h.label} {h.hub.version}: public port {h.public_port}", flush=True)
    done()
    seeded: dict[str, Any] = {}
    for h in started:
        orm = h.name == "jupyterhub" and not args.seed_jupyterhub_api
        done = runner.phase(
            f"Seeding {h.label}: {plan.users:,} users, {plan.groups} groups, activity for "
            f"every {plan.activity_every}th ({'its ORM, hub stopped' if orm else 'REST API'})"
        )
        if orm:
            procs.stop(h.hub.proc)
            python = jupyterhub.parent / "python"
            took = seed.seed_jupyterhub_orm(python, hubsetup.jupyterhub_db_url(h), plan)
            hubsetup.restart_jupyterhub(procs, h, jupyterhub)
        else:
            took = seed.seed(h.hub, plan)
        holds = seed.verify(h.hub, plan, [hubsetup.ADMIN])
        seeded[h.name] = {"method": "orm" if orm else "api", "seconds": took, "holds": holds}
        done()
    return started, seeded


async def browse_hubs(
    args: argparse.Namespace, started: list[BrowserHub], plan: seed.SeedPlan, workdir: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": {h.name: [] for h in started}, "load_before_run": []}
    async with async_playwright() as pw:
        browser = await browse.launch(pw)
        out["chromium"] = browser.version
        try:
            done = runner.phase("Logging in as admin and loading each page once (untimed)")
            targets: list[Target] = []
            warm_up = {}
            for h in started:
                t = await scenarios.prepare(browser, h, plan.names())
                warm_up[h.name] = await scenarios.warm_up(
                    browser, t, workdir / f"warm-up-{h.name}.png"
                )
                print(f"  {h.label}: {t.page_size} rows per page", flush=True)
                targets.append(t)
            out["warm_up"] = warm_up
            done()
            for i in range(args.runs):
                order = targets if i % 2 == 0 else targets[::-1]
                out["load_before_run"].append(list(os.getloadavg()))
                for t in order:
                    done = runner.phase(f"Run {i + 1}/{args.runs}: {t.hub.label}")
                    shot = None
                    if i == 0 and args.screenshots is not None:
                        shot = args.screenshots / f"admin-{t.name}.png"
                    figures = await scenarios.run_once(browser, t, args.idle, shot)
                    out["runs"][t.name].append(figures)
                    print(
                        f"  cold {figures['cold']['ms']:.0f} ms, "
                        f"{figures['cold']['requests']} requests; warm "
                        f"{figures['warm']['ms']:.0f} ms; search {figures['search']['ms']:.0f}"
                        f" ms; next {figures['next_page']['ms']:.0f} ms; sort "
                        f"{figures['sort']['ms']:.0f} ms",
                        flush=True,
                    )
                    done()
        finally:
            await browser.close()
    return out


def run(args: argparse.Namespace, procs: ProcessGroup, workdir: Path) -> dict[str, Any]:
    # the code the hubs load now is what is measured, whatever changes in the tree later
    env: dict[str, Any] = {
        "machine": runinfo.machine(),
        "loadavg_start": list(os.getloadavg()),
        "atrium_git": runinfo.git_state(),
    }
    if args.atrium_commit:
        # Atrium runs from that commit's files, not the working tree's
        rev = args.atrium_commit
        env["atrium_git"] = {
            "measured_commit": hubs.tool_version(["git", "-C", str(hubs.REPO), "rev-parse", rev]),
            "source": "git archive of that commit",
            "working_tree": env["atrium_git"],
        }
    plan = seed.plan(args.users)
    started, seeded = start_and_seed(args, procs, workdir, plan)
    measured = asyncio.run(browse_hubs(args, started, plan, workdir))
    env["loadavg_end"] = list(os.getloadavg())
    env["chromium"] = measured.pop("chromium")
    env["playwright"] = metadata.version("playwright")
    env["configurable_http_proxy"] = hubs.tool_version([str(hubs.ensure_chp()), "--version"])
    env["node"] = hubs.tool_version(["node", "--version"])
    return {
        "benchmark": "admin",
        "description": "Admin users page with 10,000 users in Chromium: time until the "
        "table is usable, requests and bytes per view, search, next page and sort; "
        "Atrium vs JupyterHub 6, on loopback, through each hub's proxy",
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": runinfo.now(),
        "environment": env,
        "hubs": {
            h.name: {"label": h.label, "version": h.hub.version, "url": f"{h.base}/hub/admin"}
            for h in started
        },
        "config": {
            "runs": args.runs,
            "only": args.only,
            "atrium_commit": args.atrium_commit,
            "idle_seconds": args.idle,
            "seed": plan.describe(),
            "search": f"user{args.users // 2 // 10:04d}",
            "chromium_args": browse.CHROMIUM_ARGS,
            "viewport": browse.VIEWPORT,
        },
        "seeded": seeded,
        **measured,
    }


# --- main ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="runs per hub (new browser context each)")
    p.add_argument("--users", type=int, default=10_000, help="users seeded into each hub")
    p.add_argument("--idle", type=float, default=10.0, help="s of idle watched after a load")
    p.add_argument("--timeout", type=int, default=1200, help="stop everything after this many s")
    p.add_argument(
        "--output", type=Path, default=RESULTS / "admin.json", help="where the JSON results go"
    )
    p.add_argument(
        "--screenshots",
        type=Path,
        default=RESULTS,
        help="directory for admin-atrium.png and admin-jupyterhub.png (first run)",
    )
    p.add_argument("--no-screenshots", dest="screenshots", action="store_const", const=None)
    p.add_argument(
        "--seed-jupyterhub-api",
        action="store_true",
        help="seed JupyterHub through its REST API like Atrium (minutes) instead of its ORM",
    )
    p.add_argument(
        "--atrium-commit",
        metavar="REV",
        help="run Atrium from this commit (git archive into the temporary directory) "
        "instead of the working tree, e.g. HEAD while others change the tree",
    )
    p.add_argument("--only", choices=["atrium", "jupyterhub"], help="measure one hub only")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    p.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print the medians over these result files' runs instead of measuring",
    )
    args = p.parse_args(argv)
    if args.runs < 1 or args.users < 200 or args.idle < 0:
        p.error("need --runs >= 1, --users >= 200 (a second page and the search) and --idle >= 0")
    return args


def print_summary(results: dict[str, Any], output: Path) -> None:
    env, h = results["environment"], results["hubs"]
    m = env["machine"]
    names = " vs ".join(f"{v['label']} {v['version']}" for v in h.values())
    runs = results["config"]["runs"]
    print(
        f"\n{names}, {runs} runs each, Chromium {env['chromium']}, {results['date']}, "
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), "
        f"load {env['loadavg_start'][0]:.1f} -> {env['loadavg_end'][0]:.1f}"
    )
    print(report.table(results["table"]))
    for hub, runs_ in results["runs"].items():
        errors = sorted({e for r in runs_ for e in r.get("console_errors", [])})
        for e in errors[:5]:
            print(f"! {hub}: console error: {e}")
    print(f"\nRaw numbers: {output}  (whole run {results['wall_seconds']:.0f}s)")


def combine(paths: Sequence[Path]) -> int:
    results = [json.loads(p.read_text()) for p in paths]
    print(f"Medians over every run of: {', '.join(str(p) for p in paths)}")
    print(report.table(report.combine(results)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.combine:
        return combine(args.combine)
    started = time.perf_counter()
    code, results = runner.run_guarded(
        lambda procs, workdir: run(args, procs, workdir),
        timeout=args.timeout,
        keep=args.keep,
        prefix="atrium-admin-bench-",
        errors=(PlaywrightError,),
    )
    if code:
        return code
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["table"] = report.table_rows(results["runs"])
    runinfo.write_results(results, args.output)
    print_summary(results, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
