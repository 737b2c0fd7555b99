"""Both hubs configured for the load benchmark: the same light server as every
user's server, logins through each hub's own login form with a shared password.

- Atrium: its defaults (built-in proxy, `LocalProcessSpawner` in one-account
  mode), `c.Hub.authenticator_class = "dummy"` with the password the benchmark
  also gives its first admin, the hub and proxy API on free loopback ports,
  `c.Spawner.cmd` the light server (so servers start by exec, not from the
  template: the template is for `atrium-singleuser`).
- JupyterHub 6: `hubs.start_jupyterhub` (configurable-http-proxy started first,
  `DummyAuthenticator` with a shared password, an admin service token) plus
  `SimpleLocalProcessSpawner` with the same `c.Spawner.cmd`.

The starting and stopping of processes comes from `../hubs.py`; the spawn
benchmark (`../spawn/hubsetup.py`) configures the same hubs for real servers.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hubs
from hubs import ProcessGroup, RunningHub

LIGHT_SERVER = Path(__file__).resolve().parent / "lightserver.py"
# stdlib only: isolated mode, no site packages, so it starts in tens of milliseconds
LIGHT_CMD = [sys.executable, "-I", "-S", str(LIGHT_SERVER)]


@dataclass
class LoadHub:
    """A running hub: its public port (proxy: logins, servers) and its own API port
    (where the latency probe asks, bypassing the proxy), its users' directories."""

    name: str
    label: str
    hub: RunningHub
    public_port: int
    api_port: int
    users_dir: Path

    @property
    def token(self) -> str:
        return self.hub.token

    @property
    def password(self) -> str:
        return self.hub.password


ATRIUM_CONFIG = """\
# Written by benchmarks/load: dummy logins with a shared password, an admin
# service token (as for JupyterHub), the light server for every user, helpers
# on free loopback ports and stopped with it.
import os
c = get_config()  # noqa
c.Hub.hub_port = {hub_port}
c.Hub.proxy_api_url = "http://127.0.0.1:{proxy_api_port}"
c.Hub.proxy_stop_on_exit = True
c.Hub.cleanup_servers = True
# the proxy's start takes 5-10 s on a busy 2-core machine, its default limit is 10 s;
# configurable-http-proxy is given 60 s (hubs.READY_TIMEOUT)
c.Hub.proxy_start_timeout = 60
c.Hub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["ATRIUM_LOAD_PASSWORD"]
c.Hub.services = [{{"name": "bench", "api_token": os.environ["ATRIUM_LOAD_TOKEN"]}}]
# the admin role's scopes, as a role of its own: a load_roles entry named "admin"
# without "scopes" would replace the admin role's scopes here, not merge with them
from hub.rbac.roles import DEFAULT_ROLES
admin_scopes = sorted(DEFAULT_ROLES["admin"][1])
c.Hub.load_roles = [{{"name": "bench-admin", "scopes": admin_scopes, "services": ["bench"]}}]
c.Spawner.cmd = {cmd!r}
c.LocalProcessSpawner.users_root = "{users}"
c.LocalProcessSpawner.allow_root = {as_root}
"""


def start_atrium(procs: ProcessGroup, workdir: Path) -> LoadHub:
    workdir.mkdir()
    users = workdir / "users"
    hub_port = hubs.free_port()
    config = workdir / "atrium_load_config.py"
    config.write_text(
        ATRIUM_CONFIG.format(
            hub_port=hub_port,
            proxy_api_port=hubs.free_port(),
            cmd=LIGHT_CMD,
            users=users,
            as_root=os.geteuid() == 0,
        )
    )
    hub = _run_atrium(procs, workdir / "atrium", config)
    # with the built-in proxy, --port is the proxy's public port
    return LoadHub("atrium", "Atrium", hub, hub.port, hub_port, users)


def _run_atrium(procs: ProcessGroup, workdir: Path, config: Path) -> RunningHub:
    """Atrium on a fresh SQLite file, like `hubs.start_atrium`, but with its admin token
    from the config (a service's `api_token`): the dummy authenticator has no
    passwords of its own, so the password token request is refused."""
    atrium = Path(sys.executable).parent / "atrium"
    workdir.mkdir()
    port = hubs.free_port()
    password, token = secrets.token_urlsafe(16), secrets.token_hex(32)
    env = {**os.environ, "ATRIUM_LOAD_PASSWORD": password, "ATRIUM_LOAD_TOKEN": token}
    env.pop("ATRIUM_DB_URL", None)
    log = workdir / "atrium.log"
    cmd = [
        str(atrium),
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--db=sqlite:///{workdir / 'atrium.sqlite'}",
        f"--config={config}",
    ]
    t0 = time.perf_counter()
    proc = procs.start("atrium", cmd, cwd=workdir, env=env, log=log)
    info = hubs.wait_ready(port, proc, log, "atrium")
    started = time.perf_counter() - t0
    version = str(info.get("version"))
    return RunningHub("atrium", port, token, proc, log, version, started, password=password)


JUPYTERHUB_SPAWNER = """
# benchmarks/load: the light server for every user, homes in the temporary directory
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{users}/{{username}}"
c.Spawner.cmd = {cmd!r}
"""


def start_jupyterhub(procs: ProcessGroup, workdir: Path, jupyterhub: Path, chp: Path) -> LoadHub:
    workdir.mkdir()
    users = workdir / "users"
    extra = JUPYTERHUB_SPAWNER.format(users=users, cmd=LIGHT_CMD)
    hub = hubs.start_jupyterhub(procs, workdir, jupyterhub, chp, extra_config=extra)
    return LoadHub("jupyterhub", "JupyterHub 6", hub, hub.proxy_port, hub.port, users)
