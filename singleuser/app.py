"""`atrium-singleuser`: the per-user Jupyter server launcher.

The single-user server (a jupyter_server extension with hub OAuth, activity
reporting and a fast kernel websocket bridge) is delivered with the per-user
servers work; until then this command says so and exits, so a spawner
misconfigured to use it fails clearly instead of hanging.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    print(
        "atrium-singleuser: the Atrium single-user server is not available in this "
        "version; set c.Spawner.cmd to another single-user command (for example "
        "jupyterhub-singleuser).",
        file=sys.stderr,
    )
    sys.exit(2)
