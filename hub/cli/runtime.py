"""What a command runs with: its output and, when first needed, its backend.

The backend is chosen from the global options, then the environment:
`--db URL` works offline; otherwise `--url`/`--token`, falling back to
`ATRIUM_URL`/`ATRIUM_TOKEN`, then `JUPYTERHUB_API_URL`/`JUPYTERHUB_API_TOKEN`
(set inside single-user servers and services). Offline mode is never picked
from the environment: touching the database directly must be asked for.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from functools import cached_property

from hub.cli.backend import Backend
from hub.cli.errors import UsageError
from hub.cli.output import Output

URL_ENV = ("ATRIUM_URL", "JUPYTERHUB_API_URL")
TOKEN_ENV = ("ATRIUM_TOKEN", "JUPYTERHUB_API_TOKEN")
DEFAULT_TIMEOUT = 30.0


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


class Runtime:
    def __init__(self, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> None:
        self.args = args
        self.env = os.environ if env is None else env
        self.out = Output(json_mode=getattr(args, "json", False))

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
        url = url or _first(self.env, URL_ENV)
        if not url:
            raise UsageError(
                "no hub to talk to: pass --url (or set ATRIUM_URL), or --db DB_URL to work offline"
            )
        token = token if token is not None else _first(self.env, TOKEN_ENV)
        if not token:
            raise UsageError("no API token: pass --token or set ATRIUM_TOKEN")
        from hub.cli.rest import RestBackend

        return RestBackend(url, token, getattr(self.args, "timeout", DEFAULT_TIMEOUT))

    def secrets(self) -> list[str]:
        """Credentials this run knows, to be scrubbed from anything it prints."""
        found = [getattr(self.args, "token", None), *(self.env.get(n) for n in TOKEN_ENV)]
        return [s.strip() for s in found if s and len(s.strip()) >= 8]

    def close(self) -> None:
        if "backend" in self.__dict__:
            self.backend.close()
