"""Both hubs set up to spawn real servers: Atrium with its local process spawner,
JupyterHub 6 with SimpleLocalProcessSpawner behind configurable-http-proxy.

The single-user stack is the same for both: jupyter_server, JupyterLab and
ipykernel at the versions in Atrium's virtualenv. JupyterHub's runs from a
scratch virtualenv (`.scratch/spawn-jupyterhub-venv`, pip, made on first use)
holding jupyterhub 6 and those same versions; `.scratch/jupyterhub-venv` (the
tests') has no JupyterLab or ipykernel, and is left as the tests expect it.

Every request goes through each hub's public port (its proxy), as a browser's
would. Starting, stopping and the scratch installs come from `../hubs.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import hubs
import proctree
from hubs import BenchError, ProcessGroup, RunningHub

LAB_VENV = hubs.SCRATCH / "spawn-jupyterhub-venv"
# the packages whose versions JupyterHub's servers share with Atrium's
SHARED_STACK = ("jupyter_server", "jupyterlab", "ipykernel")


@dataclass
class SpawnHub:
    """A running hub, where its users' directories go, and its public (proxy) port."""

    name: str
    label: str
    hub: RunningHub
    public_port: int
    users_dir: Path

    @property
    def pid(self) -> int:
        return self.hub.proc.pid

    def infrastructure(self) -> set[int]:
        """The hub's own helper processes, which are not servers: Atrium's proxy (and
        its workers) and server template. JupyterHub's proxy is not its child."""
        kids = proctree.children_map()
        own: set[int] = set()
        for child in kids.get(self.pid, []):
            command = proctree.cmdline(child)
            if hubs.is_atrium_proxy(command):
                own.add(child)
                own.update(proctree.descendants(child, kids))
            elif "spawners.template" in command:
                own.add(child)  # its children are servers
        return own

    def server_processes(self) -> list[int]:
        """Live processes of users' servers (and kernels): the hub's descendants that
        are not its helpers, and anything working in a user's directory (so a server
        that lost its parent is still found)."""
        found = set(proctree.descendants(self.pid)) - self.infrastructure()
        found.update(proctree.working_under(self.users_dir))
        return sorted(p for p in found if proctree.alive(p))


def stack_versions(python: Path | None = None) -> dict[str, str]:
    if python is None:
        return {name: metadata.version(name) for name in SHARED_STACK}
    names = " ".join(SHARED_STACK)
    code = f"from importlib import metadata as m; print(*(m.version(n) for n in {names!r}.split()))"
    found = hubs.tool_version([str(python), "-c", code]).split()
    return dict(zip(SHARED_STACK, found, strict=False))


def ensure_jupyterhub_with_lab() -> Path:
    """`jupyterhub` of a scratch venv that also has Atrium's single-user stack."""
    python = hubs._scratch_python(LAB_VENV)
    wanted = stack_versions()
    pins = [f"{name}=={version}" for name, version in wanted.items()]
    if stack_versions(python) != wanted or not (LAB_VENV / "bin" / "jupyterhub").exists():
        print(f"Installing {hubs.JUPYTERHUB_SPEC} {' '.join(pins)} into {LAB_VENV} ...", flush=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        hubs._run([*pip, hubs.JUPYTERHUB_SPEC, *pins])
    check = [str(python), "-c", "import jupyterhub; print(jupyterhub.__version__)"]
    version = hubs.tool_version(check)
    if not version.startswith("6.") or stack_versions(python) != wanted:
        raise BenchError(f"{LAB_VENV}: JupyterHub {version}, {stack_versions(python)}; delete it")
    return LAB_VENV / "bin" / "jupyterhub"


def _as_root() -> bool:
    return os.geteuid() == 0


ATRIUM_CONFIG = """\
# Written by benchmarks/spawn: the hub's helpers on free loopback ports and stopped
# with it; users' directories in the benchmark's temporary directory.
c = get_config()  # noqa
c.Hub.hub_port = {hub_port}
c.Hub.proxy_api_url = "http://127.0.0.1:{proxy_api_port}"
c.Hub.proxy_stop_on_exit = True
c.Hub.cleanup_servers = True
c.LocalProcessSpawner.users_root = "{users}"
c.LocalProcessSpawner.allow_root = {as_root}
"""


def start_atrium(procs: ProcessGroup, workdir: Path) -> SpawnHub:
    """Atrium on its defaults (built-in proxy, local process spawner, template)."""
    users = workdir / "atrium-users"
    config = workdir / "atrium_spawn_config.py"
    config.write_text(
        ATRIUM_CONFIG.format(
            hub_port=hubs.free_port(),
            proxy_api_port=hubs.free_port(),
            users=users,
            as_root=_as_root(),
        )
    )
    hub = hubs.start_atrium(procs, workdir / "atrium", [f"--config={config}"])
    # with the built-in proxy, --port is the proxy's public port, in front of the API too
    return SpawnHub("atrium", "Atrium", hub, hub.port, users)


SPAWNER_CONFIG = """
# benchmarks/spawn: servers as local processes, each user's home in the temporary directory
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{users}/{{username}}"
c.Spawner.cmd = ["{singleuser}"]
c.Spawner.args = {args!r}
"""


def start_jupyterhub(procs: ProcessGroup, workdir: Path, jupyterhub: Path, chp: Path) -> SpawnHub:
    """configurable-http-proxy, then JupyterHub on its defaults but for the spawner
    (`hubs.start_jupyterhub` with the spawner's settings added); requests go through
    the proxy."""
    workdir.mkdir()
    users = workdir / "users"
    spawner = SPAWNER_CONFIG.format(
        users=users,
        singleuser=jupyterhub.parent / "jupyterhub-singleuser",
        args=["--allow-root"] if _as_root() else [],
    )
    hub = hubs.start_jupyterhub(procs, workdir, jupyterhub, chp, extra_config=spawner)
    return SpawnHub("jupyterhub", "JupyterHub 6", hub, hub.proxy_port, users)
