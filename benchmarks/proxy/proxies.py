"""What the benchmark sends traffic through: nothing, configurable-http-proxy, Atrium's proxy.

Both proxies are started with the same flags and environment
(`--ip --port --api-ip --api-port --default-target`, `CONFIGPROXY_AUTH_TOKEN`)
and given the same routes through the same routes API: the default target is
nginx, `/ws` goes to the websocket echo server and `/upload` to the upload
sink. "direct" sends each kind of traffic straight to its backend.
Also: reading a process tree's RSS, open fds and CPU time from /proc.
Neighbours: `backends.py`, `bench.py`.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hubs
from backends import UPLOAD_PATH, WS_PATH, Backends, wait_listening
from httpclient import Client
from hubs import BenchError, ProcessGroup, log_tail

CHP_MAJOR = "5."
ATRIUM = Path(sys.executable).parent / "atrium"
LABELS = {"direct": "direct", "chp": "CHP", "atrium": "Atrium"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Target:
    """One way to reach the backends; `proc` is the proxy (None for direct)."""

    name: str
    http_port: int
    upload_port: int
    ws_port: int
    proc: subprocess.Popen[bytes] | None = None
    api_port: int | None = None
    token: str | None = None
    log: Path | None = None
    version: str = ""
    start_seconds: float = 0.0
    # what works, from the checks before measuring: name -> None (works) or why not
    broken: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS.get(self.name.split("-")[0], self.name)

    @property
    def is_proxy(self) -> bool:
        return self.proc is not None

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def api(self, timeout: float = 60.0) -> Client:
        assert self.api_port is not None
        return Client("127.0.0.1", self.api_port, self.token, timeout=timeout)

    def why_dead(self) -> str:
        assert self.proc is not None
        tail = log_tail(self.log) if self.log else ""
        return f"{self.label} exited with {self.proc.returncode}; its log:\n{tail}"


def direct(backends: Backends) -> Target:
    return Target("direct", backends.nginx_port, backends.sink_port, backends.echo_port)


def ensure_chp() -> tuple[Path, str]:
    """configurable-http-proxy 5 in `.scratch/chp` (installed once by npm) and its version."""
    chp = hubs.ensure_chp()
    version = hubs.tool_version([str(chp), "--version"])
    if not version.startswith(CHP_MAJOR):
        raise BenchError(f"{hubs.CHP_DIR} holds configurable-http-proxy {version}, not 5.x")
    return chp, version


def atrium_proxy_available() -> tuple[bool, str]:
    """Whether `atrium proxy --help` works and describes the proxy's flags; else why not."""
    if not ATRIUM.exists():
        return False, f"{ATRIUM} not found (run with Atrium's virtualenv python)"
    try:
        done = subprocess.run(
            [str(ATRIUM), "proxy", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, "`atrium proxy --help` did not finish within 60 s"
    out = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-5:])
        return False, f"`atrium proxy --help` exited with {done.returncode}: {tail}"
    missing = [flag for flag in ("--api-port", "--default-target") if flag not in out]
    if missing:
        return False, (
            "`atrium proxy --help` does not describe "
            + ", ".join(missing)
            + " (no `proxy` subcommand yet: it printed the hub's help)"
        )
    return True, ""


def start_proxy(
    name: str,
    command: Sequence[str],
    procs: ProcessGroup,
    workdir: Path,
    backends: Backends,
    *,
    routes: bool = True,
) -> Target:
    """Start a proxy with configurable-http-proxy's flags; add the /ws and /upload routes."""
    port, api_port = hubs.free_port(), hubs.free_port()
    token = secrets.token_hex(32)
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": token}
    log = workdir / f"{name}.log"
    cmd = [
        *command,
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-ip",
        "127.0.0.1",
        "--api-port",
        str(api_port),
        "--default-target",
        backends.nginx_url,
    ]
    t0 = time.perf_counter()
    proc = procs.start(name, cmd, cwd=workdir, env=env, log=log)
    target = Target(name, port, port, port, proc, api_port, token, log)
    wait_listening(api_port, proc, log, name)
    wait_listening(port, proc, log, name)
    with target.api(timeout=10) as api:
        r = api.request("GET", "/api/routes")
        if r.status != 200:
            raise BenchError(f"{name}: GET /api/routes answered {r.status}: {r.body[:200]!r}")
    target.start_seconds = time.perf_counter() - t0
    if routes:
        add_route(target, WS_PATH.rsplit("/", 1)[0], f"http://127.0.0.1:{backends.echo_port}")
        add_route(target, UPLOAD_PATH, f"http://127.0.0.1:{backends.sink_port}")
    return target


def add_route(target: Target, prefix: str, url: str, data: dict[str, Any] | None = None) -> float:
    body = json.dumps({"target": url, **(data or {})}).encode()
    with target.api(timeout=30) as api:
        r = api.request("POST", f"/api/routes{prefix}", body)
    if r.status != 201:
        raise BenchError(f"{target.label}: POST /api/routes{prefix} answered {r.status}")
    return r.seconds


# --- /proc --------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (a proxy may run worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


@dataclass(frozen=True)
class ProcStats:
    rss_kib: int
    fds: int
    cpu_seconds: float
    processes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "rss_mib": round(self.rss_kib / 1024, 2),
            "fds": self.fds,
            "cpu_seconds": round(self.cpu_seconds, 3),
            "processes": self.processes,
        }


def stats(pid: int) -> ProcStats:
    """RSS (from /proc/PID/statm), open fds (/proc/PID/fd) and CPU time, summed over the tree."""
    rss = fds = 0
    cpu = 0.0
    pids = tree(pid)
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * PAGE_SIZE // 1024
            fds += len(os.listdir(f"/proc/{p}/fd"))
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            continue
    return ProcStats(rss, fds, cpu, len(pids))


def target_stats(target: Target) -> ProcStats | None:
    if target.proc is None or target.proc.poll() is not None:
        return None
    return stats(target.proc.pid)
