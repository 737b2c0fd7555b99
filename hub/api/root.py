"""`/hub/api/`, `/hub/api/info`, `/hub/api/user`, `/hub/health` (liveness) and
`/hub/health/ready` (readiness)."""

from __future__ import annotations

import asyncio
import logging
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

log = logging.getLogger("atrium.health")


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
    """Liveness (JupyterHub's `/hub/health`): 200 while the hub answers requests. It asks
    nothing of the database or the proxy, so their outage does not get the hub restarted
    (that is readiness, below)."""

    async def get(self) -> None:
        self.write_json({"status": "ok"})


READY_LIMIT = 3.0  # seconds each check may take


class ReadyHandler(APIHandler):
    """Readiness: 200 when the database answers and the proxy's routes API does (when this
    hub drives one); otherwise 503 with a Retry-After and which part is not ready."""

    async def get(self) -> None:
        checks = {"database": await self._database(), "proxy": await self._proxy()}
        down = [part for part, result in checks.items() if result not in ("ok", "not used")]
        if down:
            self.set_header("Retry-After", "5")
            message = "Not ready: " + "; ".join(f"{p} {checks[p]}" for p in down)
            self.write_json({"status": 503, "message": message, "checks": checks}, 503)
            return
        self.write_json({"status": "ok", "checks": checks})

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(READY_LIMIT):
                await self.db.run(_ping)
        except Exception as e:  # the reason is logged; the answer names no host or URL
            log.warning("Readiness: the database did not answer: %s", type(e).__name__)
            return "not answering"
        return "ok"

    async def _proxy(self) -> str:
        proxy = self.hub.proxy
        if proxy is None or proxy.client is None:
            return "not used"
        try:
            await proxy.client.get_routes(limit=READY_LIMIT)
        except Exception as e:
            log.warning("Readiness: the proxy's routes API did not answer: %s", e)
            return "not answering"
        return "ok"


def _ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


routes = [
    (r"/api/?", RootAPIHandler),
    (r"/api/info", InfoAPIHandler),
    (r"/api/user", SelfAPIHandler),
    (r"/api/health", HealthHandler),
    (r"/health", HealthHandler),
    (r"/api/health/ready", ReadyHandler),
    (r"/health/ready", ReadyHandler),
]
