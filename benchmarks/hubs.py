"""Install, start and stop the hubs the benchmarks compare.

JupyterHub 6 (pip) and configurable-http-proxy (npm) go into a scratch
directory (`.scratch/`, gitignored) once; later runs reuse them. Every process
started here is recorded in a `ProcessGroup` and stopped by its PID when the
benchmark ends, also on Ctrl-C and errors. Neighbours: `httpclient.py` (the
keep-alive client both hubs are measured with), `api_bench.py` (the REST API
benchmark that drives these).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from httpclient import Client

REPO = Path(__file__).resolve().parent.parent
SCRATCH = REPO / ".scratch"
JUPYTERHUB_VENV = SCRATCH / "jupyterhub-venv"
JUPYTERHUB_SPEC = "jupyterhub==6.*"
CHP_DIR = SCRATCH / "chp"
CHP_SPEC = "configurable-http-proxy"
PY_SPY_VENV = SCRATCH / "py-spy-venv"

INSTALL_TIMEOUT = 300.0
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class BenchError(RuntimeError):
    """Something the benchmark needs failed; the message says what."""


# --- scratch installs ---------------------------------------------------------


def _run(cmd: Sequence[str], *, cwd: Path | None = None, timeout: float = INSTALL_TIMEOUT) -> str:
    try:
        done = subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise BenchError(f"failed ({done.returncode}): {' '.join(cmd)}\n{tail}")
    return done.stdout.strip()


def _scratch_python(venv: Path) -> Path:
    """The python of the scratch virtualenv `venv`, created if missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
    return python


def _pip_install(python: Path, spec: str) -> None:
    print(f"Installing {spec} into {python.parent.parent} ...", flush=True)
    _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec])


def ensure_jupyterhub() -> Path:
    """The `jupyterhub` command of the scratch install (pip, into a virtualenv)."""
    python = _scratch_python(JUPYTERHUB_VENV)
    check = [str(python), "-c", "import jupyterhub; print(jupyterhub.__version__)"]
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        _pip_install(python, JUPYTERHUB_SPEC)
    version = _run(check)
    if not version.startswith("6."):
        raise BenchError(f"{JUPYTERHUB_VENV} holds JupyterHub {version}, not 6.x; delete it")
    return JUPYTERHUB_VENV / "bin" / "jupyterhub"


def ensure_chp() -> Path:
    """The `configurable-http-proxy` command of the scratch install (npm)."""
    command = CHP_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    if command.exists():
        return command
    print(f"Installing {CHP_SPEC} into {CHP_DIR} ...", flush=True)
    CHP_DIR.mkdir(parents=True, exist_ok=True)
    _run(["npm", "install", "--no-audit", "--no-fund", "--silent", CHP_SPEC], cwd=CHP_DIR)
    if not command.exists():
        raise BenchError(f"npm install {CHP_SPEC} did not create {command}")
    return command


def ensure_py_spy() -> Path:
    """The `py-spy` command of a scratch install (only for --profile)."""
    command = PY_SPY_VENV / "bin" / "py-spy"
    if not command.exists():
        _pip_install(_scratch_python(PY_SPY_VENV), "py-spy")
    return command


def tool_version(cmd: Sequence[str]) -> str:
    try:
        return _run(cmd, timeout=30)
    except (BenchError, OSError):
        return "unknown"


# --- processes ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProcessGroup:
    """The processes this benchmark started; `stop_all` ends them by PID, newest first."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, cmd: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # its own session: a Ctrl-C at the terminal reaches only us, and we
                # stop the children in order
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            # the group id is the PID of the process we started (start_new_session)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)

    def stop_all(self) -> None:
        for _name, proc in reversed(self.procs):
            try:
                self.stop(proc)
            except (OSError, subprocess.TimeoutExpired) as e:
                print(f"warning: could not stop PID {proc.pid}: {e}", file=sys.stderr)
        self.procs.clear()


def is_atrium_proxy(command: str) -> bool:
    """Is `command` (a process's command line) Atrium's proxy: `python -m hub.proxy`,
    the hub's default, its workers included, or the `atrium proxy` command."""
    return "-m hub.proxy" in command or "atrium proxy" in command


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- running hubs -------------------------------------------------------------


@dataclass
class RunningHub:
    """A hub whose REST API answers at http://127.0.0.1:{port}/hub/api."""

    name: str
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log: Path
    version: str = "unknown"
    start_seconds: float = 0.0
    proxy_port: int = 0  # JupyterHub: configurable-http-proxy's public port
    # the password a person logs in with: Atrium's first admin ("admin"), any user
    # for JupyterHub's DummyAuthenticator
    password: str = ""

    def client(self, timeout: float = 60.0) -> Client:
        return Client("127.0.0.1", self.port, self.token, timeout=timeout)


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, what: str) -> dict[str, object]:
    """Poll GET /hub/api/ until it answers 200; its JSON body (with `version`)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}; its log:\n{log_tail(log)}")
        try:
            with Client("127.0.0.1", port, None, timeout=5) as c:
                r = c.request("GET", "/hub/api/")
            if r.status == 200:
                return dict(json.loads(r.body))
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(
        f"{what} did not answer within {READY_TIMEOUT:.0f}s; its log:\n{log_tail(log)}"
    )


def start_atrium(
    procs: ProcessGroup,
    workdir: Path,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> RunningHub:
    """Atrium on a fresh SQLite file; the admin's token from the password token request.
    `extra_env` is added to its environment (e.g. PYTHONPATH: run another source tree)."""
    atrium = Path(sys.executable).parent / "atrium"
    if not atrium.exists():
        raise BenchError(f"{atrium} not found: run this with Atrium's virtualenv python")
    workdir.mkdir()
    port = free_port()
    password = secrets.token_urlsafe(16)
    env = {**os.environ, **(extra_env or {}), "ATRIUM_ADMIN_PASSWORD": password}
    env.pop("ATRIUM_DB_URL", None)
    log = workdir / "atrium.log"
    cmd = [
        str(atrium),
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--db=sqlite:///{workdir / 'atrium.sqlite'}",
        "--Hub.initial_admin_name=admin",
        # the proxy it starts goes with it (by default it outlives its hub)
        "--Hub.proxy_stop_on_exit=True",
        *extra_args,
    ]
    t0 = time.perf_counter()
    proc = procs.start("atrium", cmd, cwd=workdir, env=env, log=log)
    info = wait_ready(port, proc, log, "atrium")
    started = time.perf_counter() - t0
    with Client("127.0.0.1", port, None) as c:
        body = {"auth": {"username": "admin", "password": password}, "note": "benchmark"}
        r = c.request("POST", "/hub/api/users/admin/tokens", json.dumps(body).encode())
    if r.status != 201:
        raise BenchError(f"atrium token request answered {r.status}: {r.body[:300]!r}")
    token = str(json.loads(r.body)["token"])
    version = str(info.get("version"))
    return RunningHub("atrium", port, token, proc, log, version, started, password=password)


JUPYTERHUB_CONFIG = """\
# Written by benchmarks/hubs.py: JupyterHub on loopback, fresh SQLite, an
# externally started configurable-http-proxy, and an admin service token.
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{db}"
c.JupyterHub.cookie_secret_file = "{workdir}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{workdir}/jupyterhub.pid"
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = "{proxy_token}"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "{password}"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
# the default admin role, granted to the service (merged with its default scopes)
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["bench"]}}]
"""


def start_jupyterhub(
    procs: ProcessGroup, workdir: Path, jupyterhub: Path, chp: Path, extra_config: str = ""
) -> RunningHub:
    """configurable-http-proxy, then JupyterHub using it (`extra_config` appended to its
    config file); measured at the hub port, its proxy's port in `proxy_port`."""
    workdir.mkdir(exist_ok=True)
    hub_port, proxy_port, proxy_api_port = free_port(), free_port(), free_port()
    proxy_token = secrets.token_hex(32)
    token = secrets.token_hex(32)
    password = secrets.token_urlsafe(16)
    config = workdir / "jupyterhub_config.py"
    config.write_text(
        JUPYTERHUB_CONFIG.format(
            proxy_port=proxy_port,
            hub_port=hub_port,
            proxy_api_port=proxy_api_port,
            proxy_token=proxy_token,
            token=token,
            password=password,
            db=workdir / "jupyterhub.sqlite",
            workdir=workdir,
        )
        + extra_config
    )
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": proxy_token}
    hub_url = f"http://127.0.0.1:{hub_port}"
    chp_log = workdir / "chp.log"
    chp_proc = procs.start(
        "configurable-http-proxy",
        [
            str(chp),
            "--ip=127.0.0.1",
            f"--port={proxy_port}",
            "--api-ip=127.0.0.1",
            f"--api-port={proxy_api_port}",
            f"--default-target={hub_url}",
            f"--error-target={hub_url}/hub/error",
        ],
        cwd=workdir,
        env=env,
        log=chp_log,
    )
    wait_listening(proxy_api_port, chp_proc, chp_log, "configurable-http-proxy")
    log = workdir / "jupyterhub.log"
    t0 = time.perf_counter()
    proc = procs.start(
        "jupyterhub", [str(jupyterhub), "-f", str(config)], cwd=workdir, env=env, log=log
    )
    info = wait_ready(hub_port, proc, log, "jupyterhub")
    wait_listening(proxy_port, chp_proc, chp_log, "configurable-http-proxy")
    started = time.perf_counter() - t0
    version = str(info.get("version"))
    return RunningHub(
        "jupyterhub", hub_port, token, proc, log, version, started, proxy_port, password
    )


def wait_listening(
    port: int,
    proc: subprocess.Popen[bytes],
    log: Path,
    what: str,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Wait until `proc` accepts connections on `port`; BenchError with its log if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}; its log:\n{log_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{what} did not listen on {port} within {timeout:.0f}s:\n{log_tail(log)}")


def seed_users(hub: RunningHub, names: Sequence[str], chunk: int) -> float:
    """Create `names` with bulk POST /hub/api/users in chunks; seconds it took."""
    t0 = time.perf_counter()
    reported = t0
    with hub.client(timeout=300) as c:
        for i in range(0, len(names), chunk):
            body = json.dumps({"usernames": list(names[i : i + chunk])}).encode()
            r = c.request("POST", "/hub/api/users", body)
            if r.status != 201:
                raise BenchError(f"{hub.name}: seeding users answered {r.status}: {r.body[:300]!r}")
            now = time.perf_counter()
            if now - reported > 10:
                done = min(i + chunk, len(names))
                print(f"  {done:,}/{len(names):,} users, {now - t0:.0f}s", flush=True)
                reported = now
    return time.perf_counter() - t0
