"""`/hub/api/`, `/hub/api/info`, `/hub/api/user` and `/hub/health`."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

import hub
from hub.api.base import APIHandler, needs_scope
from hub.errors import Unauthorized
from hub.ops.users import get_user
from hub.rbac import scopes
from hub.rbac.access import Requester


class RootAPIHandler(APIHandler):
    async def get(self) -> None:
        self.write_json({"version": hub.__version__})


class InfoAPIHandler(APIHandler):
    @needs_scope("read:hub")
    async def get(self) -> None:
        self.write_json(
            {
                "version": hub.__version__,
                "python": sys.version.split()[0],
                "sys_executable": sys.executable,
                "spawner": {"class": self.hub.spawner_class or None},
                # accounts in the hub database (argon2id passwords)
                "authenticator": {"class": "native"},
                "uptime_seconds": round(time.time() - self.hub.started_at, 1),
            }
        )


class SelfAPIHandler(APIHandler):
    """Who am I: the requester's model plus its scopes (as JupyterHub returns them)."""

    async def get(self) -> None:
        req = self.requester
        if req is None:
            raise Unauthorized()
        if req.kind == "user":
            model: dict[str, Any] = await self.db.run(get_user, self.ctx, _identify(req), req.name)
        else:
            model = {"kind": "service", "name": req.name, "admin": req.admin, "roles": []}
        model["scopes"] = sorted(req.scopes)
        model["token_id"] = f"a{req.token_id}" if req.token_id is not None else None
        model["session_id"] = req.session_id
        self.write_json(model)


def _identify(req: Requester) -> Requester:
    """Anyone may read their own name and groups, whatever else the token allows."""
    own = {f"{s}!user={req.name}" for s in ("read:users:name", "read:users:groups")}
    return replace(req, parsed=scopes.parse(req.scopes | own))


class HealthHandler(APIHandler):
    """Liveness and readiness: answers 200 when the database answers."""

    async def get(self) -> None:
        await self.db.run(_ping)
        self.write_json({"status": "ok"})


def _ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


routes = [
    (r"/api/?", RootAPIHandler),
    (r"/api/info", InfoAPIHandler),
    (r"/api/user", SelfAPIHandler),
    (r"/api/health", HealthHandler),
    (r"/health", HealthHandler),
]
