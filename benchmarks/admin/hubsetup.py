"""Both hubs set up for a person in a browser: Atrium on its defaults and
JupyterHub 6 behind configurable-http-proxy, each with an admin called `admin`
who logs in with a password.

- Atrium: `hubs.start_atrium` (its first admin `admin`, password from
  `ATRIUM_ADMIN_PASSWORD`, its own login page) with its helpers on free
  loopback ports and stopped with it.
- JupyterHub: `hubs.start_jupyterhub` (DummyAuthenticator with a password)
  plus `c.Authenticator.admin_users = {"admin"}`.

The browser talks to each hub's public port (its proxy), as a person's would.
Neighbours: `seed.py` (the users), `pages.py` (what the browser does on each
page), `../hubs.py` (scratch installs, processes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import hubs
from hubs import ProcessGroup, RunningHub

ADMIN = "admin"

ATRIUM_CONFIG = """\
# Written by benchmarks/admin: the hub's helpers on free loopback ports, stopped with it.
c = get_config()  # noqa
c.Hub.hub_port = {hub_port}
c.Hub.proxy_api_url = "http://127.0.0.1:{proxy_api_port}"
c.Hub.proxy_stop_on_exit = True
"""

JUPYTERHUB_CONFIG = """
# benchmarks/admin: an admin who logs in through the login page
c.Authenticator.admin_users = {{"{admin}"}}
"""


@dataclass
class BrowserHub:
    """A running hub and where a browser finds it."""

    name: str  # "atrium" | "jupyterhub"
    label: str
    hub: RunningHub
    public_port: int
    workdir: Path  # its database, config and logs

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def api(self) -> str:
        """The REST API as seeding reaches it: the hub port (JupyterHub's is behind CHP)."""
        return f"http://127.0.0.1:{self.hub.port}/hub/api"


def start_atrium(procs: ProcessGroup, workdir: Path) -> BrowserHub:
    config = workdir / "atrium_admin_config.py"
    config.write_text(
        ATRIUM_CONFIG.format(hub_port=hubs.free_port(), proxy_api_port=hubs.free_port())
    )
    hub = hubs.start_atrium(procs, workdir / "atrium", [f"--config={config}"])
    # with the built-in proxy, --port is the proxy's public port, in front of the API too
    return BrowserHub("atrium", "Atrium", hub, hub.port, workdir / "atrium")


def start_jupyterhub(procs: ProcessGroup, workdir: Path, jupyterhub: Path, chp: Path) -> BrowserHub:
    extra = JUPYTERHUB_CONFIG.format(admin=ADMIN)
    where = workdir / "jupyterhub"
    hub = hubs.start_jupyterhub(procs, where, jupyterhub, chp, extra_config=extra)
    return BrowserHub("jupyterhub", "JupyterHub 6", hub, hub.proxy_port, where)


def jupyterhub_db_url(h: BrowserHub) -> str:
    return f"sqlite:///{h.workdir / 'jupyterhub.sqlite'}"


def restart_jupyterhub(procs: ProcessGroup, h: BrowserHub, jupyterhub: Path) -> None:
    """Start JupyterHub again with the same config (and its proxy, which kept running),
    after `procs.stop(h.hub.proc)` and a change to its database."""
    config = h.workdir / "jupyterhub_config.py"
    log = h.workdir / "jupyterhub-restarted.log"
    cmd = [str(jupyterhub), "-f", str(config)]
    proc = procs.start("jupyterhub", cmd, cwd=h.workdir, env=dict(os.environ), log=log)
    hubs.wait_ready(h.hub.port, proc, log, "jupyterhub (restarted)")
    h.hub.proc, h.hub.log = proc, log
