"""`atrium-singleuser`: one person's Jupyter server, run for them by the hub.

jupyter_server with JupyterLab as its UI, configured entirely from the
environment contract (`singleuser.hubenv`): where to listen, its URL prefix,
its files, and how to ask the hub who may come in (`singleuser.auth`). It
reports activity to the hub (`singleuser.activity`) and bridges kernel
websockets without Nagle's delays (`singleuser.kernels`).

Isolation: the server's runtime directory (connection files, kernel sockets)
is made 0700; with ATRIUM_KERNEL_TRANSPORT=ipc (local spawns) kernels listen
on Unix sockets in it rather than TCP ports anyone on the machine could reach.
JUPYTERHUB_DISABLE_USER_CONFIG=1 keeps the user's own Jupyter config files
(~/.jupyter and the user site) from changing the server. The settings that
make the server safe (who may log in, where it listens, its prefix) are
applied after every config file, so no config file can loosen them.

Start-up: `preload()` imports the server stack once (the spawner's pre-forked
template calls it, so a spawn only forks); `jsonschema` would otherwise
import `rfc3987_syntax`, which builds a grammar at import (over a second here)
for a URI format check jupyter_server never needs.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# jsonschema imports it when present, to check the "iri" format: ~1.4 s of grammar
# building at start-up for a check the server never makes
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from singleuser import hubenv  # noqa: E402


def _skip_yarn_probe() -> None:
    """JupyterLab asks yarn (a node process, ~0.5 s) for its package registry when
    `jupyterlab.labapp` is imported, for building extensions, which a hub's server
    does not do; it gets the default registry without asking."""
    try:
        import jupyterlab.commands as commands
    except ImportError:
        return

    def no_yarn_config(logger: Any) -> dict[str, dict[str, str]]:
        return {"yarn config": {}, "npm config": {}}

    commands._yarn_config = no_yarn_config


ANNOUNCEMENTS_PLUGIN = "@jupyterlab/apputils-extension:announcements"


def preload() -> None:
    """Import everything a server start needs (for a pre-forked template)."""
    _skip_yarn_probe()
    import ipykernel.kernelspec  # noqa: F401
    import jupyter_server.serverapp
    import jupyter_server.services.contents.largefilemanager  # noqa: F401
    import jupyterlab.labapp  # noqa: F401
    import tornado.httpclient  # noqa: F401

    import singleuser.activity
    import singleuser.auth
    import singleuser.kernels  # noqa: F401


def _exclude_home(paths: list[str]) -> list[str]:
    home = os.path.expanduser("~")
    return [p for p in paths if not (p == home or p.startswith(home + os.sep))]


def _disable_user_config() -> None:
    """Jupyter config found under the user's home is ignored from now on."""
    import jupyter_core.paths as paths

    original = paths.jupyter_config_path

    def config_path() -> list[str]:
        return _exclude_home(original())

    paths.jupyter_config_path = config_path
    # the server extension manager imported the function by name
    import jupyter_server.extension.config as ext_config
    import jupyter_server.extension.manager as ext_manager
    import jupyter_server.serverapp as serverapp

    for module in (ext_config, ext_manager, serverapp):
        if hasattr(module, "jupyter_config_path"):
            setattr(module, "jupyter_config_path", config_path)  # noqa: B010


def make_app_class() -> Any:
    from jupyter_server.serverapp import ServerApp
    from traitlets.config import Config

    from singleuser.activity import ActivityReporter
    from singleuser.auth import HubClient, HubIdentityProvider
    from singleuser.kernels import FastKernelConnection

    class SingleUserServerApp(ServerApp):
        name = "atrium-singleuser"
        description = "A single-user Jupyter server run by an Atrium (or JupyterHub) hub."

        hub_env: hubenv.HubEnv
        hub_client: HubClient | None
        activity: ActivityReporter

        def _config_file_name_default(self) -> str:
            # the config file people already have for jupyter_server
            return "jupyter_server_config"

        @property
        def config_file_paths(self) -> list[str]:
            paths: list[str] = super().config_file_paths
            return _exclude_home(paths) if self.hub_env.disable_user_config else paths

        def hub_settings(self) -> Config:
            hub = self.hub_env
            c = Config()
            c.ServerApp.ip = hub.ip
            c.ServerApp.port = hub.port
            c.ServerApp.port_retries = 0  # the hub routes to this port and no other
            c.ServerApp.base_url = hub.prefix
            c.ServerApp.identity_provider_class = HubIdentityProvider
            c.ServerApp.kernel_websocket_connection_class = FastKernelConnection
            c.ServerApp.open_browser = False
            # the proxy forwards the public Host; who gets in is the hub's call
            c.ServerApp.allow_remote_access = True
            c.ServerApp.trust_xheaders = True
            c.ServerApp.disable_check_xsrf = False
            c.ServerApp.password = ""
            c.IdentityProvider.token = ""
            # a hub's server does not phone home for news or updates on its users' behalf
            c.LabApp.news_url = None
            c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
            if hub.kernel_cull_timeout:
                # the hub's c.Culler.kernel_timeout: kernels idle that long are shut down,
                # a browser tab still open on them or not; a busy kernel is never culled
                c.MappingKernelManager.cull_idle_timeout = hub.kernel_cull_timeout
                c.MappingKernelManager.cull_interval = max(
                    1, min(300, hub.kernel_cull_timeout // 2)
                )
                c.MappingKernelManager.cull_connected = True
                c.MappingKernelManager.cull_busy = False
            if hub.kernel_transport == "ipc":
                c.KernelManager.transport = "ipc"
                c.MappingKernelManager.kernel_manager_class = (
                    "singleuser.kernels.PrivateKernelManager"
                )
            return c

        def load_config_file(self, *args: Any, **kwargs: Any) -> None:
            super().load_config_file(*args, **kwargs)
            # nothing a config file says loosens who may log in or where it listens; applied
            # here for the extensions linked next, and again below over anything since
            self.update_config(self.hub_settings())

        def init_configurables(self) -> None:
            self.update_config(self.hub_settings())
            super().init_configurables()

        def init_webapp(self) -> None:
            super().init_webapp()
            self.web_app.settings["page_config_hook"] = self._page_config

        def _page_config(self, handler: Any, page_config: dict[str, Any]) -> dict[str, Any]:
            """JupyterLab shows its hub menu (control panel, log out) with these."""
            hub = self.hub_env
            page_config["hubPrefix"] = f"{hub.base_url}hub/"
            page_config["hubHost"] = ""
            page_config["hubUser"] = hub.user
            page_config["hubServerName"] = hub.server_name
            page_config["shareUrl"] = ""
            # the "get Jupyter news?" prompt: this server does not fetch news (news_url)
            disabled = list(page_config.get("disabledExtensions") or [])
            page_config["disabledExtensions"] = [*disabled, ANNOUNCEMENTS_PLUGIN]
            return page_config

        def start_ioloop(self) -> None:
            self.io_loop.add_callback(self.activity.start)
            super().start_ioloop()

    return SingleUserServerApp


def _secure_runtime_dir() -> None:
    from jupyter_core.paths import jupyter_runtime_dir

    path = jupyter_runtime_dir()
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def main(argv: list[str] | None = None) -> None:
    try:
        hub = hubenv.read()
    except hubenv.ContractError as e:
        print(f"atrium-singleuser: {e}", file=sys.stderr)
        sys.exit(2)
    if hub.disable_user_config:
        _disable_user_config()
    _secure_runtime_dir()
    _skip_yarn_probe()
    os.makedirs(hub.root_dir, exist_ok=True)
    cls = make_app_class()
    from singleuser.activity import ActivityReporter, server_activity

    cls.hub_env = hub
    app = cls.instance()
    app.root_dir = hub.root_dir
    app.default_url = hub.default_url
    app.hub_client = None  # made by the identity provider, with its configured cache age
    app.activity = ActivityReporter(hub, lambda: server_activity(app.web_app, app.kernel_manager))
    app.initialize(argv if argv is not None else sys.argv[1:])
    app.start()
