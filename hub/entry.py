"""The `atrium` command's entry point, kept light: `atrium proxy` runs the proxy
(`hub.proxy.server.main`) without importing the rest of the hub, whose spawners
(Kubernetes' client among them) take seconds to import on a busy machine, at every
start of a proxy and every restart of one. Everything else is `hub.app`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["proxy"]:
        from hub.proxy.server.main import main as proxy_main

        proxy_main(args[1:])
        return
    from hub.app import main as app_main

    app_main(args)
