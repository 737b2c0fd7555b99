"""Kubernetes spawners side by side: Atrium's KubeSpawner vs JupyterHub's KubeSpawner,
against the same fake Kubernetes API server, in one run.

    .venv/bin/python benchmarks/kube/bench.py [--runs 3] [--spawns 20] [--pods 5000]

The fake API server and simulated node of the tests (`tests/kube/`) run in a
process of their own (`fake_server.py`); each spawner runs in its own process
(`atrium_driver.py` with Atrium's virtualenv, `kubespawner_driver.py` with
`.scratch/kubespawner-venv`), so what is measured is the spawner alone. Per
run, with a fresh fake server, both spawners in turn (the order alternates
between runs):

1. API requests: start the informers / reflectors (the one-time list+watch,
   counted apart), then `--spawns` distinct users, each spawned (the pod runs
   on the simulated node and answers HTTP) and stopped, one after another;
   every request the fake server saw is counted by verb and resource, per
   spawn and per stop. The informers' lists and watches during that time
   (re-lists, re-watches) are counted apart too.
2. Informer cost with `--pods` pods: the fake store gets that many running pods
   labelled as both spawners' pods are; a fresh spawner process starts its
   informers (CPU seconds and RSS of the initial list), then the fake server
   changes pod statuses `--events` times at `--rate` per second (one MODIFIED
   watch event each) until the spawner's cache has the last one (CPU), then
   the spawner sits idle for `--idle` seconds (CPU, and the lists it made).

Prints a table of medians over the runs and Atrium / KubeSpawner ratios and
writes benchmarks/results/kube.json (`--summarize FILE` recomputes a results
file's summary from its runs). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # hubs.py, runinfo.py
sys.path.insert(0, str(HERE))

import hubs  # noqa: E402
import report  # noqa: E402
import runinfo  # noqa: E402
from hubs import BenchError, ProcessGroup  # noqa: E402
from peer import Peer  # noqa: E402
from runner import on_term, phase  # noqa: E402

RESULTS = HERE.parent / "results" / "kube.json"
KUBESPAWNER_VENV = hubs.SCRATCH / "kubespawner-venv"
KUBESPAWNER_SPECS = ("jupyterhub==6.*", "jupyterhub-kubespawner")
INFORMER_NAMESPACE = "bench-informer"

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {{server: "{url}"}}
contexts:
- name: fake
  context: {{cluster: fake, user: bench}}
current-context: fake
users:
- name: bench
  user: {{token: unused}}
"""


def ensure_kubespawner() -> Path:
    """The python of the scratch virtualenv with JupyterHub 6 and KubeSpawner."""
    python: Path = hubs._scratch_python(KUBESPAWNER_VENV)
    check = [str(python), "-c", "import kubespawner, jupyterhub; print(jupyterhub.__version__)"]
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        print(f"Installing {' '.join(KUBESPAWNER_SPECS)} into {KUBESPAWNER_VENV} ...", flush=True)
        hubs._run([str(python), "-m", "pip", "install", "-q", *KUBESPAWNER_SPECS])
    version = hubs._run(check)
    if not version.startswith("6."):
        raise BenchError(f"{KUBESPAWNER_VENV} holds JupyterHub {version}, not 6.x; delete it")
    return python


def snapshot_sources(workdir: Path) -> Path:
    """A copy of the code measured (Atrium's `spawners/`, the fake cluster in
    `tests/kube/`), taken once: every run measures the same code even while the
    working tree changes."""
    src = workdir / "src"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(hubs.REPO / "spawners", src / "spawners", ignore=ignore)
    shutil.copytree(hubs.REPO / "tests" / "kube", src / "tests" / "kube", ignore=ignore)
    shutil.copy(hubs.REPO / "tests" / "__init__.py", src / "tests" / "__init__.py")
    return src


class Run:
    """One run: a fresh fake server, both spawners measured in turn."""

    def __init__(self, args: argparse.Namespace, procs: ProcessGroup, workdir: Path) -> None:
        self.args = args
        self.procs = procs
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.fake = Peer(
            "fake-apiserver",
            [sys.executable, str(HERE / "fake_server.py"), str(workdir / "node")],
            procs=procs,
            cwd=hubs.REPO,
            env={**os.environ, "ATRIUM_BENCH_SRC": str(args.src)},
            log=workdir / "fake-apiserver.log",
        )
        self.url = str(self.fake.call("info")["url"])
        self.kubeconfig = workdir / "kubeconfig"
        self.kubeconfig.write_text(KUBECONFIG.format(url=self.url))
        self.next_call = 0

    def calls(self) -> list[list[Any]]:
        """The requests since the last look."""
        answer = self.fake.call("calls", since=self.next_call)
        self.next_call = int(answer["next"])
        return list(answer["calls"])

    def driver(self, spawner: str, tag: str) -> Peer:
        python = sys.executable if spawner == "atrium" else str(self.args.kubespawner_python)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "ATRIUM_BENCH_SRC": str(self.args.src),
        }
        return Peer(
            spawner,
            [python, str(HERE / f"{spawner}_driver.py"), self.url, sys.executable],
            procs=self.procs,
            cwd=hubs.REPO,
            env=env,
            log=self.workdir / f"{spawner}-{tag}.log",
        )

    def wait_watching(self, namespace: str, seen: list[list[Any]]) -> list[list[Any]]:
        """Until the fake server has a pods watch and an events watch in `namespace` (the
        reflectors list and then watch in the background); the requests meanwhile."""
        deadline = time.monotonic() + 120
        calls = list(seen)
        while True:
            watched = {
                report.call_key(c[0], c[1], c[3])
                for c in calls
                if c[3] and f"/namespaces/{namespace}/" in c[1]
            }
            if {"watch pods", "watch events"} <= watched:
                return calls
            if time.monotonic() > deadline:
                raise BenchError(f"no pods and events watch in {namespace} after 120 s")
            time.sleep(0.05)
            calls += self.calls()

    # --- 1. API requests per spawn and stop ------------------------------------------------

    def spawn_phase(self, spawner: str) -> dict[str, Any]:
        args = self.args
        namespace = f"{spawner}-spawns"
        driver = self.driver(spawner, "spawns")
        try:
            version = driver.call("prepare", namespace=namespace)["version"]
            self.calls()
            driver.call("warm", namespace=namespace, timeout=120)
            initial = self.wait_watching(namespace, self.calls())
            result: dict[str, Any] = {
                "version": version,
                "spawns": args.spawns,
                "initial": report.count(initial),
                "spawn": {},
                "stop": {},
                "informer_during_phase": {},
                "spawn_seconds": [],
                "stop_seconds": [],
                "per_user": [],
            }
            t0 = time.monotonic()
            for i in range(args.spawns):
                user = f"user{i:03d}"
                started = driver.call("spawn", user=user, namespace=namespace, timeout=90)
                spawn_calls = report.count(self.calls())
                stopped = driver.call("stop", user=user, timeout=90)
                stop_calls = report.count(self.calls())
                for what, counts in (("spawn", spawn_calls), ("stop", stop_calls)):
                    own, informer = report.split_informer(counts)
                    report.add(result[what], own)
                    report.add(result["informer_during_phase"], informer)
                result["spawn_seconds"].append(started["seconds"])
                result["stop_seconds"].append(stopped["seconds"])
                result["per_user"].append({"spawn": spawn_calls, "stop": stop_calls})
            result["phase_seconds"] = time.monotonic() - t0
            # the informer's lists/watches count in the totals too, as seen
            for what in ("spawn", "stop"):
                result[what] = dict(sorted(result[what].items()))
            return result
        finally:
            driver.quit(self.procs)

    # --- 2. informer CPU and memory with many pods -----------------------------------------

    def informer_phase(self, spawner: str) -> dict[str, Any]:
        args = self.args
        namespace = INFORMER_NAMESPACE
        driver = self.driver(spawner, "informer")
        try:
            driver.call("prepare", namespace=namespace)
            time.sleep(1.0)  # imports and start-up settle
            base = driver.call("usage")
            self.calls()
            t0 = time.monotonic()
            driver.call("warm", namespace=namespace, timeout=300)
            initial_calls = self.wait_watching(namespace, self.calls())
            after_list = driver.call("usage")
            wall_list = time.monotonic() - t0
            size = driver.call("cache_size", namespace=namespace)
            if size["pods"] != args.pods:
                raise BenchError(f"{spawner} cached {size['pods']} pods, not {args.pods}")

            t1 = time.monotonic()
            modified = self.fake.call(
                "modify",
                namespace=namespace,
                count=args.events,
                rate=args.rate,
                timeout=args.events / args.rate + 120,
            )
            caught = driver.call(
                "wait_cached",
                pod=modified["last_pod"],
                rv=modified["rv"],
                namespace=namespace,
                within=120.0,
                timeout=150,
            )
            after_events = driver.call("usage")
            wall_events = time.monotonic() - t1
            event_calls = report.count(self.calls())

            t2 = time.monotonic()
            time.sleep(args.idle)
            after_idle = driver.call("usage")
            wall_idle = time.monotonic() - t2
            idle_calls = report.count(self.calls())

            def lists(counts: dict[str, int]) -> int:
                return counts.get("list pods", 0)

            return {
                "pods": args.pods,
                "baseline_rss_mib": base["rss_mib"],
                "initial": {
                    "cpu": after_list["cpu"] - base["cpu"],
                    "wall": wall_list,
                    "rss_mib": after_list["rss_mib"],
                    "requests": report.count(initial_calls),
                },
                "events": {
                    "count": args.events,
                    "rate": args.rate,
                    "cpu": after_events["cpu"] - after_list["cpu"],
                    "wall": wall_events,
                    "stream_seconds": modified["seconds"],
                    "catch_up": caught["seconds"],
                    "rss_mib": after_events["rss_mib"],
                    "max_rss_mib": after_events["max_rss_mib"],
                    "lists": lists(event_calls),
                    "requests": event_calls,
                },
                "idle": {
                    "cpu": after_idle["cpu"] - after_events["cpu"],
                    "wall": wall_idle,
                    "rss_mib": after_idle["rss_mib"],
                    "max_rss_mib": after_idle["max_rss_mib"],
                    "lists": lists(idle_calls),
                    "requests": idle_calls,
                },
            }
        finally:
            driver.quit(self.procs)

    def close(self) -> None:
        self.fake.quit(self.procs)


def measure(args: argparse.Namespace, procs: ProcessGroup, workdir: Path) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for number in range(1, args.runs + 1):
        order = list(args.only)
        if number % 2 == 0:
            order.reverse()
        run = Run(args, procs, workdir / f"run{number}")
        record: dict[str, Any] = {"run": number, "order": order, "spawn": {}, "informer": {}}
        try:
            for spawner in order:
                done = phase(f"run {number}: {spawner}: {args.spawns} spawns and stops")
                record["spawn"][spawner] = guarded(run.spawn_phase, spawner)
                done()
            done = phase(f"run {number}: storing {args.pods} pods")
            run.fake.call("preload", namespace=INFORMER_NAMESPACE, count=args.pods, timeout=300)
            done()
            for spawner in order:
                done = phase(f"run {number}: {spawner}: informer with {args.pods} pods")
                record["informer"][spawner] = guarded(run.informer_phase, spawner)
                done()
        finally:
            run.close()
        runs.append(record)
        print(report.render(report.summarize(runs)), flush=True)
    return runs


def guarded(step: Any, spawner: str) -> dict[str, Any]:
    """A step's result, or what stopped it (the run goes on with the other spawner)."""
    try:
        return dict(step(spawner))
    except BenchError as e:
        print(f"  {spawner} failed: {e}", file=sys.stderr, flush=True)
        return {"error": str(e)[:4000]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--spawns", type=int, default=20, help="users spawned and stopped per run")
    p.add_argument("--pods", type=int, default=5000, help="pods in the store for step 2")
    p.add_argument("--events", type=int, default=5000, help="pod status changes in step 2")
    p.add_argument("--rate", type=float, default=1000.0, help="status changes per second")
    p.add_argument("--idle", type=float, default=30.0, help="idle seconds measured in step 2")
    p.add_argument("--only", nargs="+", choices=report.SPAWNERS, default=list(report.SPAWNERS))
    p.add_argument("--timeout", type=float, default=1500.0, help="for the whole run (s)")
    p.add_argument("--keep", action="store_true", help="keep the logs' directory")
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument(
        "--summarize",
        type=Path,
        metavar="FILE",
        help="recompute FILE's summary from its runs (no measuring)",
    )
    args = p.parse_args(argv)
    if not 1 <= args.spawns <= 500 or not 1 <= args.pods <= 50_000 or args.runs < 1:
        p.error("--spawns 1..500, --pods 1..50000, --runs >= 1")
    if not 1 <= args.events <= 100_000 or not 1 <= args.rate <= 20_000 or args.idle < 0:
        p.error("--events 1..100000, --rate 1..20000, --idle >= 0")
    return args


def resummarize(path: Path) -> int:
    results = json.loads(path.read_text())
    results["summary"] = report.summarize(results["runs"])
    print(report.render(results["summary"]))
    runinfo.write_results(results, path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarize:
        return resummarize(args.summarize)
    signal.signal(signal.SIGTERM, on_term)

    def expired(_sig: int, _frame: FrameType | None) -> None:
        raise BenchError(f"--timeout: the run took longer than {args.timeout:.0f} s")

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(int(args.timeout))
    procs = ProcessGroup()
    workdir = Path(tempfile.mkdtemp(prefix="atrium-kube-bench-"))
    started = runinfo.now()
    git = runinfo.git_state()
    try:
        args.src = snapshot_sources(workdir)
        args.kubespawner_python = (
            ensure_kubespawner() if "kubespawner" in args.only else Path("unused")
        )
        runs = measure(args, procs, workdir)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        procs.stop_all()
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    table = report.summarize(runs)
    print()
    print(report.render(table))
    results = {
        "benchmark": "kube",
        "started": started,
        "finished": runinfo.now(),
        "machine": runinfo.machine(),
        "load_average": os.getloadavg(),
        "git": git,
        "versions": {
            s: next(
                (r["spawn"][s]["version"] for r in runs if "version" in r["spawn"].get(s, {})), None
            )
            for s in args.only
        },
        "settings": {
            k: v
            for k, v in vars(args).items()
            if k not in ("output", "keep", "kubespawner_python", "src")
        },
        "summary": table,
        "runs": runs,
    }
    runinfo.write_results(results, args.output)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
