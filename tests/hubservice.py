"""A hub service for the services tests, run by the hub as a managed service (or by a
test as an external one), configured only by the environment the hub gives it.

Under `JUPYTERHUB_SERVICE_PREFIX`, listening where `JUPYTERHUB_SERVICE_URL` says:

- `/` — who is logged in, through JupyterHub's own service OAuth
  (`jupyterhub.services.auth.HubOAuthenticated`, unchanged) when the `jupyterhub`
  package is importable (the tests run this file with JupyterHub 6's Python);
- `/env` — the JUPYTERHUB_* variables it got (the token's value left out);
- `/api` — what the hub's `/hub/api/user` says of the service's own token.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tornado import ioloop, web

PREFIX = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")


class Env(web.RequestHandler):
    def get(self) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith(("JUPYTERHUB_", "JPY_"))}
        for secret in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"):
            if secret in env:
                env[secret] = "<set>"
        env["SERVICE_EXTRA"] = os.environ.get("SERVICE_EXTRA", "")
        env["PID"] = str(os.getpid())
        self.write(env)


class Api(web.RequestHandler):
    def get(self) -> None:
        token = os.environ["JUPYTERHUB_API_TOKEN"]
        request = Request(
            os.environ["JUPYTERHUB_API_URL"] + "/user",
            headers={"Authorization": f"token {token}"},
        )
        try:
            with urlopen(request, timeout=10) as r:
                self.write({"status": r.status, "model": json.loads(r.read())})
        except HTTPError as e:
            self.write({"status": e.code, "model": None})


def handlers() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [(PREFIX + "env", Env), (PREFIX + "api", Api)]
    try:
        from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    except ImportError:
        return found

    class WhoAmI(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]
        @web.authenticated  # type: ignore[misc]
        def get(self) -> None:
            user = self.get_current_user()
            self.write(
                {
                    "name": user["name"],
                    "kind": user.get("kind", "user"),
                    "scopes": sorted(user.get("scopes", [])),
                }
            )

    found += [(PREFIX, WhoAmI), (PREFIX + "oauth_callback", HubOAuthCallbackHandler)]
    return found


def main() -> None:
    where = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    app = web.Application(handlers(), cookie_secret=os.urandom(32))
    app.listen(where.port or 80, where.hostname or "127.0.0.1")
    print(f"hubservice listening on {where.netloc}{PREFIX}", file=sys.stderr, flush=True)
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
