"""What a command runs with: its output and, when first needed, its backend.

`--db URL` works offline on the database; otherwise the hub's URL and token
come from the flags, the environment or the config file (`hub.cli.config`).
Offline mode is never picked from the environment: touching the database
directly must be asked for.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from functools import cached_property

from hub.cli import config
from hub.cli.backend import Backend
from hub.cli.errors import UsageError
from hub.cli.output import Output

DEFAULT_TIMEOUT = 30.0


class Runtime:
    def __init__(self, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> None:
        self.args = args
        self.env = os.environ if env is None else env
        self.out = Output(json_mode=getattr(args, "json", False))
        self._config_token: str | None = None

    @property
    def offline(self) -> bool:
        """Working on a database (`--db`) rather than through a hub."""
        return getattr(self.args, "db", None) is not None

    @cached_property
    def backend(self) -> Backend:
        db_url: str | None = getattr(self.args, "db", None)
        url: str | None = getattr(self.args, "url", None)
        token: str | None = getattr(self.args, "token", None)
        if db_url is not None:
            if url is not None or token is not None:
                raise UsageError("--db works offline; it cannot be combined with --url or --token")
            if not db_url.strip():
                raise UsageError("--db needs a database URL, e.g. sqlite:///atrium.sqlite")
            from hub.cli.offline import OfflineBackend

            return OfflineBackend(db_url)
        conn, found = config.connection(url, token, self.env)
        if found is not None:
            self._config_token = found.token
        from hub.cli.rest import RestBackend

        return RestBackend(conn.url, conn.token, getattr(self.args, "timeout", DEFAULT_TIMEOUT))

    def secrets(self) -> list[str]:
        """Credentials this run knows, to be scrubbed from anything it prints."""
        found = [
            getattr(self.args, "token", None),
            self._config_token,
            *(self.env.get(n) for n in config.TOKEN_ENV),
        ]
        return [s.strip() for s in found if s and len(s.strip()) >= 8]

    def close(self) -> None:
        if "backend" in self.__dict__:
            self.backend.close()
