"""`atrium upgrade-db` and `atrium generate-config`."""

from __future__ import annotations

import sys
from pathlib import Path

from traitlets import Bool, Unicode
from traitlets.config import Configurable

from hub.command import HubCommand, aliases, configurable_classes
from hub.db import migrate
from hub.errors import ConfigError


class UpgradeDB(HubCommand):
    name = "atrium-upgrade-db"
    description = "Upgrade the database schema to this version of Atrium (backs up SQLite first)."

    def start(self) -> None:
        for line in migrate.upgrade_database(self.settings.db_url):
            print(line)


class GenerateConfig(HubCommand):
    name = "atrium-generate-config"
    description = "Write a config file with every setting, commented, and its help."
    output = Unicode(
        "atrium_config.py", help="Where to write the config file ('-' for standard output)."
    ).tag(config=True)
    force = Bool(False, help="Overwrite an existing file.").tag(config=True)
    flags = {"force": ({"GenerateConfig": {"force": True}}, "Overwrite an existing file.")}
    aliases = {**aliases, "output": "GenerateConfig.output", "o": "GenerateConfig.output"}

    def start(self) -> None:
        from hub.app import AtriumApp

        # every class, the Kubernetes spawner too
        classes: list[type[Configurable]] = [AtriumApp, *configurable_classes()[1:]]
        text = AtriumApp(config=self.config).generate_config_file(classes)
        target = Path(self.output)
        if self.output == "-":
            sys.stdout.write(text)
            return
        if target.exists() and not self.force:
            raise ConfigError(f"{target} exists; use --force to overwrite it")
        target.write_text(text)
        print(f"Wrote {target}")
