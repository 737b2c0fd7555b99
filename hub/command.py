"""The base of `atrium` and its subcommands: config file, settings, logging.

`HubCommand.initialize` loads the config file (a Python file, `c.Hub.port = 8000`
style), applies command-line flags over it, refuses misspelled settings and
stray arguments, builds the `Hub` settings and sets up logging. `hub.app` runs
the hub; `hub.subcommands` has `upgrade-db` and `generate-config`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from traitlets import Unicode
from traitlets.config import Application, Configurable

from hub.auth.registry import authenticator_classes
from hub.culler import Culler
from hub.errors import ConfigError
from hub.log import setup_logging
from hub.settings import Hub
from spawners.base import Spawner
from spawners.local import LocalProcessSpawner

DB_URL_ENV = "ATRIUM_DB_URL"

aliases = {
    "ip": "Hub.ip",
    "port": "Hub.port",
    "base-url": "Hub.base_url",
    "db": "Hub.db_url",
    "log-level": "Application.log_level",
    "log-format": "Hub.log_format",
    "config": "HubCommand.config_file",
    "f": "HubCommand.config_file",
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


def configurable_classes(config: Any = None) -> list[type[Configurable]]:
    """Classes whose settings are checked (and, with no `config`, documented). The
    Kubernetes spawner is imported only for a config that speaks of it: its client
    costs seconds of start-up on a busy machine that a hub of local processes never
    needs."""
    classes: list[type[Configurable]] = [HubCommand, *HubCommand.classes]
    if config is None or "KubeSpawner" in config or "kubernetes" in _spawner_class(config):
        from spawners.kubernetes import KubeSpawner

        classes.append(KubeSpawner)
    return classes


def _spawner_class(config: Any) -> str:
    value = config.get("Hub", {}).get("spawner_class", "")
    return value if isinstance(value, str) else ""


class HubCommand(Application):
    """Shared by the hub and its subcommands: config file, logging, database URL."""

    config_file = Unicode(
        "atrium_config.py", help="The config file to load (Python, c.Hub.port = 8000 style)."
    ).tag(config=True)
    aliases = aliases
    # the Kubernetes spawner's settings too, imported only when needed: configurable_classes
    classes = [Hub, Culler, Spawner, LocalProcessSpawner, *authenticator_classes()]
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
        explicit = any(
            "config_file" in section
            for section in self.cli_config.values()
            if hasattr(section, "keys")
        )
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
        check_known_settings(self.config, [type(self), *configurable_classes(self.config)])
        self.settings = Hub(config=self.config)
        self.settings.check_combinations()
        if os.environ.get(DB_URL_ENV):
            self.settings.db_url = os.environ[DB_URL_ENV]
        self._log_format = self.settings.log_format
        self._configure_logging()
