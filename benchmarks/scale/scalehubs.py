"""Both hubs over a database with many users and running servers, each with the
proxy it starts by default, started and stopped by PID.

- Atrium: `atrium --config=...` with its defaults (the built-in proxy, `atrium
  proxy`, started by the hub: one process per CPU) plus free loopback ports
  (`c.Hub.hub_port`, `c.Hub.proxy_api_url`), `c.Hub.proxy_stop_on_exit`, the
  proxy's pid file in the run's directory, `c.Hub.proxy_start_timeout = 60`
  (the default 10 s: a refused start on a busy machine), and the benchmark's spawner
  (`atrium_spawner.ScaleSpawner`). The admin's token is in the seeded database.
- JupyterHub 6: starts configurable-http-proxy itself (its default,
  `c.ConfigurableHTTPProxy.should_start`; `command` is the scratch install),
  DummyAuthenticator, an admin service token (as `../hubs.py` configures it),
  `c.JupyterHub.cleanup_servers = False` (a restart leaves servers running, as
  Atrium's default does), and `jupyterhub_spawner.ScaleSpawner`.

Both get `CONFIGPROXY_AUTH_TOKEN` (the token the hub and its proxy share, which
the benchmark uses to read the proxy's routes) and this directory on
PYTHONPATH. Each run starts a hub on a fresh copy of its seeded database.
Neighbours: `bench.py` (the runs), `../hubs.py` (scratch installs, ProcessGroup).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import hubs
from hubs import BenchError, ProcessGroup

HERE = Path(__file__).resolve().parent

ATRIUM_CONFIG = """\
# Written by benchmarks/scale: Atrium's defaults, on free loopback ports, stopping its
# proxy with it, adopting the benchmark's servers.
c = get_config()  # noqa
c.Hub.ip = "127.0.0.1"
c.Hub.port = {public_port}
c.Hub.hub_ip = "127.0.0.1"
c.Hub.hub_port = {hub_port}
c.Hub.proxy_api_url = "http://127.0.0.1:{api_port}"
c.Hub.proxy_stop_on_exit = True
c.Hub.proxy_pid_file = "{workdir}/atrium_proxy.pid"
# the default 10 s is too short for `atrium proxy` to answer on a busy 2-core machine
# (it imports the whole hub first); a start that takes longer is measured, not refused
c.Hub.proxy_start_timeout = 60
c.Hub.cookie_secret_file = "{workdir}/atrium_cookie_secret"
c.Hub.initial_admin_name = "admin"
c.Hub.spawner_class = "atrium_spawner.ScaleSpawner"
"""

JUPYTERHUB_CONFIG = """\
# Written by benchmarks/scale: JupyterHub starting configurable-http-proxy itself (its
# default), an admin service token, servers left running at shutdown, adopting the
# benchmark's servers.
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {public_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.cookie_secret_file = "{workdir}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{workdir}/jupyterhub.pid"
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.pid_file = "{workdir}/jupyterhub-proxy.pid"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["bench"]}}]
c.JupyterHub.spawner_class = "jupyterhub_spawner.ScaleSpawner"
"""


@dataclass
class HubSetup:
    """One hub's configuration, seeded database and ports; started once per run, on
    ports chosen afresh each time (a port free at the start of the benchmark may be
    another program's by the next run)."""

    name: str  # "atrium" | "jupyterhub"
    label: str
    workdir: Path
    cmd: list[str]  # without the database argument
    env: dict[str, str]
    config: Path
    config_template: str  # with {public_port}, {hub_port} and {api_port} to fill in
    proxy_token: str
    token: str  # an admin token for the hub's REST API
    proxy_pid_file: Path
    template_db: Path
    hub_port: int = 0
    api_port: int = 0  # the proxy's routes API
    seed_seconds: float = 0.0
    seed_counts: dict[str, int] = field(default_factory=dict)

    def db_for_run(self, run: int) -> Path:
        return self.workdir / f"run{run}.sqlite"

    def configure(self) -> None:
        """Write the config with free ports (the hub's, its proxy's public and API ports)."""
        self.hub_port, self.api_port = hubs.free_port(), hubs.free_port()
        ports = {"public_port": hubs.free_port(), "hub_port": self.hub_port}
        ports["api_port"] = self.api_port
        text = self.config_template
        for name, port in ports.items():
            text = text.replace(f"{{{name}}}", str(port))
        self.config.write_text(text)

    def command(self, db: Path) -> list[str]:
        if self.name == "atrium":
            return [*self.cmd, f"--db=sqlite:///{db}"]
        return [*self.cmd, f"--JupyterHub.db_url=sqlite:///{db}"]


def _env(proxy_token: str, source: Path | None = None) -> dict[str, str]:
    """The hubs' environment; `source`: Atrium's packages exported from a commit, which
    must come first on PYTHONPATH (before the editable install of the working tree)."""
    env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": proxy_token}
    env.pop("ATRIUM_DB_URL", None)
    path = [str(source)] if source else []
    path += [str(HERE), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    return env


def _template(text: str, **fixed: object) -> str:
    """`text` with `fixed` filled in and the ports left as {placeholders}."""
    ports = {k: f"{{{k}}}" for k in ("public_port", "hub_port", "api_port")}
    return text.format(**fixed, **ports)


def atrium_setup(workdir: Path, source: Path | None = None) -> HubSetup:
    """Atrium from the working tree, or from `source` (`admin/hubsetup.export_atrium`)."""
    atrium = Path(sys.executable).parent / "atrium"
    if not atrium.exists():
        raise BenchError(f"{atrium} not found: run this with Atrium's virtualenv python")
    workdir.mkdir(parents=True)
    config = workdir / "atrium_config.py"
    proxy_token = secrets.token_hex(32)
    return HubSetup(
        name="atrium",
        label="Atrium",
        workdir=workdir,
        cmd=[str(atrium), f"--config={config}"],
        env=_env(proxy_token, source),
        config=config,
        config_template=_template(ATRIUM_CONFIG, workdir=workdir),
        proxy_token=proxy_token,
        token=secrets.token_hex(32),
        proxy_pid_file=workdir / "atrium_proxy.pid",
        template_db=workdir / "seeded.sqlite",
    )


def jupyterhub_setup(workdir: Path, jupyterhub: Path, chp: Path) -> HubSetup:
    workdir.mkdir(parents=True)
    token = secrets.token_hex(32)
    config = workdir / "jupyterhub_config.py"
    proxy_token = secrets.token_hex(32)
    return HubSetup(
        name="jupyterhub",
        label="JupyterHub 6",
        workdir=workdir,
        cmd=[str(jupyterhub), "-f", str(config)],
        env=_env(proxy_token),
        config=config,
        config_template=_template(JUPYTERHUB_CONFIG, workdir=workdir, chp=chp, token=token),
        proxy_token=proxy_token,
        token=token,
        proxy_pid_file=workdir / "jupyterhub-proxy.pid",
        template_db=workdir / "seeded.sqlite",
    )


def seed(setup: HubSetup, python: Path, plan: dict[str, object]) -> None:
    """Seed `setup.template_db` with `python` running this hub's seed script."""
    script = HERE / ("atrium_seed.py" if setup.name == "atrium" else "jupyterhub_seed.py")
    body = {**plan, "db_url": f"sqlite:///{setup.template_db}", "token": setup.token}
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            [str(python), str(script)],
            input=json.dumps(body),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=setup.env,
            cwd=setup.workdir,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"seeding {setup.label}'s database took over 600 s") from None
    if done.returncode != 0:
        raise BenchError(f"seeding {setup.label}'s database failed:\n{done.stderr[-3000:]}")
    setup.seed_seconds = round(time.perf_counter() - t0, 2)
    setup.seed_counts = json.loads(done.stdout.strip().splitlines()[-1])


def fresh_copy(template: Path, dest: Path) -> None:
    """A consistent copy of a SQLite database (its write-ahead log included), mode 0600."""
    dest.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{dest}{suffix}").unlink(missing_ok=True)
    os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with (
        contextlib.closing(sqlite3.connect(template)) as src,
        contextlib.closing(sqlite3.connect(dest)) as dst,
    ):
        src.backup(dst)


def start(setup: HubSetup, procs: ProcessGroup, run: int) -> tuple[subprocess.Popen[bytes], Path]:
    """Launch the hub on a fresh copy of its seeded database; its process and log."""
    db = setup.db_for_run(run)
    fresh_copy(setup.template_db, db)
    setup.configure()
    setup.proxy_pid_file.unlink(missing_ok=True)
    log = setup.workdir / f"run{run}.log"
    proc = procs.start(setup.name, setup.command(db), cwd=setup.workdir, env=setup.env, log=log)
    return proc, log


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None
