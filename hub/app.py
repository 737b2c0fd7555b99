"""The `atrium` command: wiring only.

Start-up is a pipeline of small steps, each in its own module:
config (`hub.settings`) -> logging (`hub.log`) -> secrets (`hub.secretfiles`) ->
database (`hub.db`) -> roles and first admin (`hub.bootstrap`) -> spawners
(`hub.spawn`) -> routes (`hub.web`) -> listen. Subcommands: `upgrade-db`,
`generate-config`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from traitlets import Bool, TraitError, Unicode
from traitlets.config import Application, Configurable

import hub
from hub import bootstrap, secretfiles
from hub.authcache import RequesterCache
from hub.db import migrate
from hub.db.engine import Database
from hub.errors import ConfigError
from hub.log import setup_logging
from hub.ops.context import HubContext
from hub.ops.servers import ServerRef
from hub.rbac.roles import RoleTable
from hub.settings import Hub, load_spawner_class
from hub.spawn import Orchestrator, SpawnTimeouts
from hub.state import HubState
from spawners.base import Spawner

log = logging.getLogger("atrium")

DB_URL_ENV = "ATRIUM_DB_URL"

aliases = {
    "ip": "Hub.ip",
    "port": "Hub.port",
    "base-url": "Hub.base_url",
    "db": "Hub.db_url",
    "log-level": "Application.log_level",
    "log-format": "Hub.log_format",
    "config": "AtriumApp.config_file",
    "f": "AtriumApp.config_file",
}


def check_known_settings(config: Any, classes: list[type[Configurable]]) -> None:
    """Refuse misspelled settings of our own classes: a typo must not pass silently."""
    import difflib

    by_name = {cls.__name__: cls for cls in classes}
    for section, values in config.items():
        cls = by_name.get(section)
        if cls is None or not hasattr(values, "keys"):
            continue
        known = set(cls.class_trait_names(config=True))
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean c.{section}.{close[0]}?" if close else ""
                raise ConfigError(f"unknown setting c.{section}.{key}{hint}")


class _Base(Application):
    """Shared by the hub and its subcommands: config file, logging, database URL."""

    config_file = Unicode(
        "atrium_config.py", help="The config file to load (Python, c.Hub.port = 8000 style)."
    ).tag(config=True)
    aliases = aliases
    classes = [Hub, Spawner]
    raise_config_file_errors = True

    def _log_level_default(self) -> int:
        return logging.INFO

    def _configure_logging(self) -> None:
        setup_logging(self.log_level, getattr(self, "_log_format", "text"))  # type: ignore[arg-type]

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        if self.subapp is not None:
            return
        path = Path(self.config_file)
        explicit = any("config_file" in self.cli_config.get(k, {}) for k in ("AtriumApp", "_Base"))
        if path.exists():
            try:
                self.load_config_file(str(path))
            except Exception as e:
                raise ConfigError(f"error in config file {path}: {type(e).__name__}: {e}") from None
        elif explicit:
            raise ConfigError(f"config file not found: {path}")
        # command-line flags win over the config file
        self.update_config(self.cli_config)
        if self.extra_args:
            raise ConfigError(f"unexpected argument: {self.extra_args[0]!r} (see --help)")
        check_known_settings(self.config, [type(self), *self.classes])
        self.settings = Hub(config=self.config)
        if os.environ.get(DB_URL_ENV):
            self.settings.db_url = os.environ[DB_URL_ENV]
        self._log_format = self.settings.log_format
        self._configure_logging()


class UpgradeDB(_Base):
    name = "atrium-upgrade-db"
    description = "Upgrade the database schema to this version of Atrium (backs up SQLite first)."

    def start(self) -> None:
        for line in migrate.upgrade_database(self.settings.db_url):
            print(line)


class GenerateConfig(_Base):
    name = "atrium-generate-config"
    description = "Write a config file with every setting, commented, and its help."
    output = Unicode(
        "atrium_config.py", help="Where to write the config file ('-' for standard output)."
    ).tag(config=True)
    force = Bool(False, help="Overwrite an existing file.").tag(config=True)
    flags = {"force": ({"GenerateConfig": {"force": True}}, "Overwrite an existing file.")}
    aliases = {**aliases, "output": "GenerateConfig.output", "o": "GenerateConfig.output"}

    def start(self) -> None:
        text = AtriumApp(config=self.config).generate_config_file()
        target = Path(self.output)
        if self.output == "-":
            sys.stdout.write(text)
            return
        if target.exists() and not self.force:
            raise ConfigError(f"{target} exists; use --force to overwrite it")
        target.write_text(text)
        print(f"Wrote {target}")


class AtriumApp(_Base):
    name = "atrium"
    version = hub.__version__
    description = "Atrium: a multi-user Jupyter hub. Runs the hub."
    subcommands = {
        "upgrade-db": (UpgradeDB, UpgradeDB.description),
        "generate-config": (GenerateConfig, GenerateConfig.description),
    }

    def build(self) -> tuple[HubState, Any, bootstrap.InitialAdmin]:
        """Every start-up step before listening; returns the state, the app and the admin."""
        from hub.web import make_app

        s = self.settings
        secrets = secretfiles.load_secrets(
            Path(s.cookie_secret_file), Path(s.proxy_auth_token_file)
        )
        roles = RoleTable.from_config(s.load_roles)
        db = Database(s.db_url, pool_size=s.db_pool_size)
        try:
            migrate.check_current(db.engine)
            with db.session() as session:
                # the first admin exists before config roles may name it
                admin = bootstrap.ensure_initial_admin(
                    session, s.initial_admin_name, s.initial_admin_password
                )
                bootstrap.sync_roles(session, s.load_roles)
        except BaseException:
            db.close()
            raise
        ctx = HubContext(
            base_url=s.base_url,
            roles=roles,
            page_default_limit=min(s.api_page_default_limit, s.api_page_max_limit),
            page_max_limit=s.api_page_max_limit,
            token_expires_in_max=s.token_expires_in_max_seconds,
            allow_named_servers=s.allow_named_servers,
            named_server_limit_per_user=s.named_server_limit_per_user,
        )
        factory = None
        if s.spawner_class:
            spawner_class = load_spawner_class(s.spawner_class)

            def factory(ref: ServerRef) -> Spawner:
                return spawner_class(  # type: ignore[no-any-return]
                    user_name=ref.user_name,
                    server_name=ref.name,
                    user_options=ref.user_options,
                    config=self.config,
                )

        orchestrator = Orchestrator(
            db, ctx, factory, SpawnTimeouts(s.slow_spawn_timeout, s.slow_stop_timeout)
        )
        state = HubState(
            db=db,
            ctx=ctx,
            orchestrator=orchestrator,
            max_body_size=s.max_body_size,
            allow_password_token_requests=s.allow_password_token_requests,
            requester_cache=RequesterCache(ttl=s.auth_cache_ttl),
        )
        return state, make_app(state, s.base_url, secrets.cookie_secret), admin

    def start(self) -> None:
        if self.subapp is not None:
            self.subapp.start()
            return
        asyncio.run(self.serve())

    async def serve(self) -> None:
        from hub.web import listen

        state, app, admin = self.build()
        s = self.settings
        server, port = listen(app, s.ip, s.port, s.max_body_size)
        url = f"http://{s.ip}:{port}{s.base_url}hub/"
        log.info("Atrium %s is running at %s", hub.__version__, url)
        print_welcome(url, admin)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("Shutting down")
        server.stop()
        if s.cleanup_servers:
            await state.orchestrator.stop_all()
        await state.orchestrator.shutdown()
        await server.close_all_connections()
        state.db.close()
        log.info("Stopped")


def hub_admin_command() -> str:
    """How to call hub-admin from here: its full path when it is not on PATH."""
    import shutil

    beside = Path(sys.executable).parent / "hub-admin"
    if beside.exists() and shutil.which("hub-admin") != str(beside):
        return str(beside)
    return "hub-admin"


def print_welcome(url: str, admin: bootstrap.InitialAdmin) -> None:
    """On first start, tell the person at the terminal how to log in (once)."""
    if not admin.created:
        return
    lines = [
        "",
        f"  Atrium is running at {url}",
        f"  Admin user:  {admin.name}",
    ]
    if admin.password is not None:
        lines.append(f"  Password:    {admin.password}    (shown only this once)")
    else:
        lines.append("  Password:    the one you configured")
    api = url + "api"
    lines += [
        "  Get an API token:",
        f'    curl -X POST -d \'{{"auth": {{"username": "{admin.name}", '
        f'"password": "PASSWORD"}}}}\' {api}/users/{admin.name}/tokens',
        f"  Then: {hub_admin_command()} --url {url} --token TOKEN user list",
        "",
    ]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> None:
    try:
        app = AtriumApp.instance()
        app.initialize(argv)
        app.start()
    except (ConfigError, TraitError) as e:
        print(f"atrium: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
