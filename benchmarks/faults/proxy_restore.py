"""Proxy restore time: each hub's proxy SIGKILLed, timed until every route answers again.

Atrium (its built-in proxy, started and watched by the hub) and JupyterHub 6 with
configurable-http-proxy (started and watched by JupyterHub, `should_start`), each with
N users' servers running (light HTTP servers, `light_server.py`, default N=100), both on
their defaults for noticing a dead proxy. Each run kills each proxy once (every process
of Atrium's proxy, CHP's one node process), the hubs taking turns, and measures from
the kill until every one of the N routes has answered through the public port with its
own server (not the hub's default route). Medians over runs, and their ratio.

    .venv/bin/python benchmarks/faults/proxy_restore.py            # 5 runs, N=100
    .venv/bin/python benchmarks/faults/proxy_restore.py --runs 7 --routes 100

Everything listens on 127.0.0.1; every process is started here and stopped by its PID
at the end, also on Ctrl-C, SIGTERM, errors and --timeout. Results go to
benchmarks/results/proxy-restore.json. Neighbours: `../hubs.py` (scratch installs,
starting hubs), `../runinfo.py` (machine and results file).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import json
import os
import secrets
import signal
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hubs
import runinfo
import runner
from hubs import BenchError, ProcessGroup

HERE = Path(__file__).resolve().parent
LIGHT_SERVER = HERE / "light_server.py"
DEFAULT_OUTPUT = hubs.REPO / "benchmarks" / "results" / "proxy-restore.json"
# a route's server answers with this header naming its user
SERVER_HEADER = "X-Light-Server"
SWEEPERS = 4  # threads checking routes after a kill, each its share of them
# the hubs' own ports (where their servers find their API), for ending strays by PID
HUB_PORTS: list[int] = []


ATRIUM_CONFIG = """\
# Written by benchmarks/faults/proxy_restore.py: the built-in proxy (the default) on
# free loopback ports, light servers from the tests' process spawner.
c = get_config()  # noqa
c.Hub.hub_port = {hub_port}
c.Hub.proxy_api_url = "http://127.0.0.1:{proxy_api_port}"
c.Hub.proxy_pid_file = "{workdir}/proxy.pid"
c.Hub.proxy_stop_on_exit = True
# a busy machine may take longer than the default 10 s to start a proxy
c.Hub.proxy_start_timeout = 60
c.Hub.cleanup_servers = True
c.Hub.spawner_class = "tests.spawner.ProcessSpawner"
c.ProcessSpawner.cmd = ["{python}", "{light}", "{{port}}"]
"""

JUPYTERHUB_CONFIG = """\
# Written by benchmarks/faults/proxy_restore.py: JupyterHub starting and watching
# configurable-http-proxy itself (its default), on free loopback ports.
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {public_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{workdir}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.ConfigurableHTTPProxy.should_start = True
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = "{proxy_token}"
c.ConfigurableHTTPProxy.pid_file = "{workdir}/chp.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["bench"]}}]
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{workdir}/users/{{username}}"
c.Spawner.cmd = ["{python}", "{light}"]
c.Spawner.default_url = ""
"""


@dataclass
class Hub:
    """A running hub with its users' servers, and how to find its proxy."""

    name: str
    label: str
    hub: hubs.RunningHub
    public_port: int
    proxy_pid_file: Path
    users: list[str]
    server_pids: set[int] = field(default_factory=set)
    proxy_pids: set[int] = field(default_factory=set)  # every proxy process seen
    restores: list[dict[str, float]] = field(default_factory=list)

    def proxy_processes(self) -> set[int]:
        """The running proxy: its process and, for Atrium's, the workers in its session."""
        try:
            pid = int(self.proxy_pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            raise BenchError(f"{self.label}: no proxy pid in {self.proxy_pid_file}") from None
        if not alive(pid):
            raise BenchError(f"{self.label}: the proxy (pid {pid}) is not running")
        found = {pid} | session_members(pid)
        self.proxy_pids |= found
        return found


# --- processes -------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def session_members(sid: int) -> set[int]:
    """Running processes whose session id is `sid` (a proxy started in its own session)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state, ppid, pgrp, session
        if int(fields[3]) == sid and fields[0] != "Z":
            found.add(int(entry))
    return found


def kill_pids(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- the hubs ----------------------------------------------------------------------------


def start_atrium(procs: ProcessGroup, workdir: Path, users: list[str]) -> Hub:
    root = workdir / "atrium"
    root.mkdir()
    config = root / "proxy_restore_config.py"
    HUB_PORTS.append(hubs.free_port())
    config.write_text(
        ATRIUM_CONFIG.format(
            hub_port=HUB_PORTS[-1],
            proxy_api_port=hubs.free_port(),
            workdir=root,
            python=sys.executable,
            light=LIGHT_SERVER,
        )
    )
    running = hubs.start_atrium(
        procs,
        root / "hub",
        [f"--config={config}"],
        {"PYTHONPATH": str(hubs.REPO)},  # the tests' process spawner
    )
    # with the built-in proxy, --port is the proxy's public port
    return Hub("atrium", "Atrium", running, running.port, root / "proxy.pid", users)


def start_jupyterhub(procs: ProcessGroup, workdir: Path, users: list[str]) -> Hub:
    jupyterhub, chp = hubs.ensure_jupyterhub(), hubs.ensure_chp()
    root = workdir / "jupyterhub"
    root.mkdir()
    public_port, hub_port = hubs.free_port(), hubs.free_port()
    HUB_PORTS.append(hub_port)
    token = secrets.token_hex(32)
    config = root / "jupyterhub_config.py"
    config.write_text(
        JUPYTERHUB_CONFIG.format(
            public_port=public_port,
            hub_port=hub_port,
            proxy_api_port=hubs.free_port(),
            proxy_token=secrets.token_hex(32),
            token=token,
            workdir=root,
            chp=chp,
            python=sys.executable,
            light=LIGHT_SERVER,
        )
    )
    log = root / "jupyterhub.log"
    t0 = time.perf_counter()
    proc = procs.start(
        "jupyterhub", [str(jupyterhub), "-f", str(config)], cwd=root, env=dict(os.environ), log=log
    )
    info = hubs.wait_ready(hub_port, proc, log, "jupyterhub")
    running = hubs.RunningHub(
        "jupyterhub",
        hub_port,
        token,
        proc,
        log,
        str(info.get("version")),
        time.perf_counter() - t0,
        public_port,
    )
    return Hub("jupyterhub", "JupyterHub", running, public_port, root / "chp.pid", users)


def api(hub: Hub, method: str, path: str, body: Any = None, timeout: float = 120) -> Any:
    with hub.hub.client(timeout=timeout) as c:
        payload = json.dumps(body).encode() if body is not None else None
        r = c.request(method, "/hub/api" + path, payload)
    if r.status >= 400:
        raise BenchError(f"{hub.label}: {method} {path} answered {r.status}: {r.body[:300]!r}")
    return json.loads(r.body) if r.body else None


def start_servers(hub: Hub, timeout: float) -> None:
    """Create the users and start their servers, a few at a time; wait until all run."""
    api(hub, "POST", "/users", {"usernames": hub.users})

    def start(name: str) -> None:
        api(hub, "POST", f"/users/{name}/server")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(start, hub.users))
    deadline = time.monotonic() + timeout
    waiting = set(hub.users)
    while waiting:
        for name in sorted(waiting):
            model = api(hub, "GET", f"/users/{name}")
            server = (model.get("servers") or {}).get("")
            if server and server.get("ready"):
                waiting.discard(name)
                pid = (server.get("state") or {}).get("pid")
                if pid:
                    hub.server_pids.add(int(pid))
        if waiting:
            if time.monotonic() > deadline:
                raise BenchError(f"{hub.label}: {len(waiting)} servers not ready in {timeout:g}s")
            time.sleep(0.5)


# --- measuring ---------------------------------------------------------------------------


def route_answers(port: int, user: str) -> bool:
    """Does /user/<user>/ on the public port reach that user's own server?"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", f"/user/{user}/", headers={"Connection": "close"})
        r = conn.getresponse()
        r.read()
        return r.status == 200 and r.getheader(SERVER_HEADER) == user
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_all_routes(hub: Hub, t0: float, timeout: float) -> dict[str, float]:
    """Seconds from `t0` until each route first answered with its server; every route
    checked again and again by a few threads, each its share."""
    answered: dict[str, float] = {}
    lock = threading.Lock()
    deadline = t0 + timeout

    def sweep(share: list[str]) -> None:
        pending = list(share)
        while pending and time.perf_counter() < deadline:
            for user in list(pending):
                if route_answers(hub.public_port, user):
                    with lock:
                        answered[user] = time.perf_counter() - t0
                    pending.remove(user)
            if pending:
                time.sleep(0.01)

    shares = [hub.users[i::SWEEPERS] for i in range(SWEEPERS)]
    threads = [threading.Thread(target=sweep, args=(share,), daemon=True) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(answered) < len(hub.users):
        missing = len(hub.users) - len(answered)
        raise BenchError(f"{hub.label}: {missing} routes did not answer within {timeout:g}s")
    return answered


def kill_and_measure(hub: Hub, timeout: float) -> dict[str, float]:
    victims = hub.proxy_processes()
    t0 = time.perf_counter()
    kill_pids(victims)
    # the old proxy is gone before anything counts as an answer
    while any(alive(pid) for pid in victims):
        if time.perf_counter() - t0 > 10:
            raise BenchError(f"{hub.label}: the proxy did not die on SIGKILL")
        time.sleep(0.001)
    answered = wait_all_routes(hub, t0, timeout)
    times = sorted(answered.values())
    return {"first_route_s": round(times[0], 4), "all_routes_s": round(times[-1], 4)}


def settle(hub: Hub, timeout: float) -> None:
    """Before a kill: a proxy running with every route answering."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(BenchError):
            hub.proxy_processes()
            if all(route_answers(hub.public_port, user) for user in hub.users):
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{hub.label}: routes not all answering before a kill")
        time.sleep(0.2)


# --- the run -----------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def run(args: argparse.Namespace, procs: ProcessGroup, workdir: Path) -> dict[str, Any]:
    users = [f"r{i:03d}" for i in range(args.routes)]
    load_at_start = list(os.getloadavg())
    done = runner.phase("Checking the scratch installs (JupyterHub 6, configurable-http-proxy)")
    hubs.ensure_jupyterhub()
    hubs.ensure_chp()
    done()
    done = runner.phase(f"Starting both hubs with {args.routes} servers each")
    both = [
        start_atrium(procs, workdir, users),
        start_jupyterhub(procs, workdir, users),
    ]
    for hub in both:
        start_servers(hub, args.restore_timeout * 5)
    done()
    started = time.monotonic()
    for run_no in range(args.runs):
        order = both if run_no % 2 == 0 else both[::-1]
        for hub in order:
            settle(hub, args.restore_timeout)
            time.sleep(args.pause)
            result = kill_and_measure(hub, args.restore_timeout)
            hub.restores.append(result)
            print(
                f"  run {run_no + 1}/{args.runs} {hub.label:<10} every route back in "
                f"{result['all_routes_s']:.2f}s (first {result['first_route_s']:.2f}s)",
                flush=True,
            )
    print(f"  {time.monotonic() - started:.0f}s of kills")
    results: dict[str, Any] = {
        "benchmark": "proxy-restore",
        "date": runinfo.now(),
        "environment": {
            **runinfo.machine(),
            "loadavg_start": load_at_start,
            "loadavg_end": list(os.getloadavg()),
        },
        "git": runinfo.git_state(),
        "config": {
            "routes": args.routes,
            "runs": args.runs,
            "pause_s": args.pause,
        },
        "hubs": {},
    }
    for hub in both:
        all_routes = [r["all_routes_s"] for r in hub.restores]
        first = [r["first_route_s"] for r in hub.restores]
        results["hubs"][hub.name] = {
            "version": hub.hub.version,
            "runs": hub.restores,
            "all_routes_s": summary(all_routes),
            "first_route_s": summary(first),
        }
    a, j = (results["hubs"][n]["all_routes_s"]["median"] for n in ("atrium", "jupyterhub"))
    results["ratio_jupyterhub_over_atrium"] = round(j / a, 1) if a else None
    stop_servers_and_proxies(both)
    return results


def stop_servers_and_proxies(both: Sequence[Hub]) -> None:
    """After the hubs are told to stop: anything of theirs still running, by PID."""
    for hub in both:
        with contextlib.suppress(BenchError):
            hub.proxy_processes()
    for hub in both:
        hub.hub.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            hub.hub.proc.wait(30)
    leftovers = {pid for hub in both for pid in hub.server_pids | hub.proxy_pids if alive(pid)}
    kill_pids(leftovers)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--routes", type=int, default=100, help="users' servers per hub (100)")
    p.add_argument("--runs", type=int, default=5, help="kills of each proxy (5)")
    p.add_argument("--pause", type=float, default=2.0, help="seconds between kills (2)")
    p.add_argument(
        "--restore-timeout", type=float, default=60.0, help="seconds a restore may take (60)"
    )
    p.add_argument("--timeout", type=int, default=900, help="seconds for the whole run (900)")
    p.add_argument("--keep", action="store_true", help="keep the logs")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    code, results = runner.run_guarded(
        lambda procs, workdir: run(args, procs, workdir),
        timeout=args.timeout,
        keep=args.keep,
        prefix="atrium-proxy-restore-",
        after_stop=stop_strays,
        timeout_is_error=True,
    )
    if code:
        return code
    runinfo.write_results(results, args.output)
    print()
    print(table(results))
    print(f"\nRaw numbers: {args.output}")
    return 0


def stop_strays(workdir: Path) -> None:
    """A run that failed halfway: proxies whose pid files are in `workdir`, and light
    servers of this run's hubs (their API URL in their environment), ended by PID."""
    for pid_file in (workdir / "atrium" / "proxy.pid", workdir / "jupyterhub" / "chp.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().split()[0])
            if alive(pid):
                kill_pids({pid} | session_members(pid))
    light = str(LIGHT_SERVER).encode()
    ours = [f"JUPYTERHUB_API_URL=http://127.0.0.1:{port}/".encode() for port in HUB_PORTS]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if light in cmdline and any(marker in env for marker in ours) and alive(int(entry)):
            kill_pids({int(entry)})


def table(results: dict[str, Any]) -> str:
    a, j = results["hubs"]["atrium"], results["hubs"]["jupyterhub"]
    cfg = results["config"]
    lines = [
        f"{cfg['routes']} routes, {cfg['runs']} kills of each proxy, medians (min-max)",
        "| from SIGKILL of the proxy until | Atrium | JupyterHub 6 + CHP | ratio |",
        "|---|---|---|---|",
    ]
    rows = (("first_route_s", "the first route answers"), ("all_routes_s", "every route answers"))
    for key, label in rows:
        ratio = j[key]["median"] / a[key]["median"] if a[key]["median"] else float("nan")
        lines.append(
            f"| {label} | {a[key]['median']:.2f} s ({a[key]['min']:.2f}-{a[key]['max']:.2f}) "
            f"| {j[key]['median']:.2f} s ({j[key]['min']:.2f}-{j[key]['max']:.2f}) "
            f"| {ratio:.1f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
