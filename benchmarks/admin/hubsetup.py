"""Both hubs set up for a person in a browser: Atrium on its defaults and
JupyterHub 6 behind configurable-http-proxy, each with an admin called `admin`
who logs in with a password.

- Atrium: `hubs.start_atrium` (its first admin `admin`, password from
  `ATRIUM_ADMIN_PASSWORD`, its own login page) with its helpers on free
  loopback ports and stopped with it; from the working tree, or from a commit
  exported with `git archive` (`export_atrium`, for figures that belong to a
  commit while the tree changes).
- JupyterHub: `hubs.start_jupyterhub` (DummyAuthenticator with a password)
  plus `c.Authenticator.admin_users = {"admin"}`.

The browser talks to each hub's public port (its proxy), as a person's would.
Neighbours: `seed.py` (the users), `pages.py` (what the browser does on each
page), `../hubs.py` (scratch installs, processes).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import hubs
from hubs import BenchError, ProcessGroup, RunningHub

ADMIN = "admin"
# what `export_atrium` takes from a commit: the packages the hub imports
ATRIUM_PACKAGES = ("hub", "spawners", "singleuser", "migrations")

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


def export_atrium(rev: str, dest: Path) -> str:
    """Atrium's packages as committed at `rev` (`git archive`, the working tree left
    alone) into `dest`; the commit's full id."""
    repo = str(hubs.REPO)
    sha = hubs._run(["git", "-C", repo, "rev-parse", "--verify", f"{rev}^{{commit}}"])
    cmd = ["git", "-C", repo, "archive", "--format=tar", sha, *ATRIUM_PACKAGES]
    done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise BenchError(f"git archive {sha} failed: {done.stderr.decode(errors='replace')}")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(dest, filter="data")
    # the export must win over the editable install of the working tree
    where = _imported_from(dest)
    if not Path(where).is_relative_to(dest):
        raise BenchError(f"with PYTHONPATH={dest}, hub is imported from {where}")
    return sha


def _imported_from(source: Path) -> str:
    """Where Python imports the hub package from with `source` on PYTHONPATH."""
    code = "import hub; print(hub.__file__)"
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=source.parent,  # as the hub runs: not in the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip()


def start_atrium(procs: ProcessGroup, workdir: Path, source: Path | None = None) -> BrowserHub:
    """Atrium from the working tree, or from `source` (an `export_atrium` directory)."""
    config = workdir / "atrium_admin_config.py"
    config.write_text(
        ATRIUM_CONFIG.format(hub_port=hubs.free_port(), proxy_api_port=hubs.free_port())
    )
    env = {"PYTHONPATH": str(source)} if source else None
    hub = hubs.start_atrium(procs, workdir / "atrium", [f"--config={config}"], env)
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
