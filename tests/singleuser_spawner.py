"""`TreeSpawner`: the test ProcessSpawner running `atrium-singleuser` in per-user trees.

Each user gets `<users_root>/<name>/{home,runtime,data}` (HOME and the notebook
directory, JUPYTER_RUNTIME_DIR, JUPYTER_DATA_DIR) and kernels on the ipc
transport, as a one-account local spawn gives them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from traitlets import Dict, List, Unicode

from tests.spawner import ProcessSpawner

# tests run as root here and in CI: the server must be told that is meant
SERVER = [sys.executable, "-m", "singleuser", "--ServerApp.log_level=INFO", "--allow-root"]


def user_tree(root: Path, name: str) -> dict[str, str]:
    base = root / name
    dirs = {
        "HOME": base / "home",
        "JUPYTER_RUNTIME_DIR": base / "runtime",
        "JUPYTER_DATA_DIR": base / "data",
        "JUPYTER_CONFIG_DIR": base / "home" / ".jupyter",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return {k: str(v) for k, v in dirs.items()}


class TreeSpawner(ProcessSpawner):
    users_root = Unicode(help="Where the users' trees are made.").tag(config=True)
    extra_env = Dict(help="More environment for every server.").tag(config=True)
    user_env = Dict(help="More environment for one user's servers: {name: {var: value}}.").tag(
        config=True
    )
    cmd = List(Unicode(), SERVER).tag(config=True)

    def get_env(self) -> dict[str, str]:
        env: dict[str, Any] = super().get_env()
        tree = user_tree(Path(self.users_root), self.user_name)
        env.update(tree)
        env["JUPYTERHUB_ROOT_DIR"] = tree["HOME"]
        env["ATRIUM_KERNEL_TRANSPORT"] = "ipc"
        env["JUPYTERHUB_ACTIVITY_INTERVAL"] = "1"
        env.update(self.extra_env)
        env.update(self.user_env.get(self.user_name, {}))
        return env
