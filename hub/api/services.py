"""`/hub/api/services` and `/hub/api/services/{name}`: the services of `c.Hub.services`.

Each model shows the keys the requester's scopes reveal for that service (as on
JupyterHub); a service the requester may not read is not there (404 for one).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.api.base import APIHandler, needs_scope
from hub.db.models import Role, Service, service_role_map
from hub.errors import NotFound
from hub.log import bounded
from hub.rbac.access import Requester
from hub.services import SERVICE_KEYS, service_model

READ_SCOPES = tuple(SERVICE_KEYS)


def _roles(session: Session) -> dict[str, list[str]]:
    rows = session.execute(
        select(Service.name, Role.name)
        .join(service_role_map, service_role_map.c.service_id == Service.id)
        .join(Role, Role.id == service_role_map.c.role_id)
    )
    found: dict[str, list[str]] = {}
    for service, role in rows:
        found.setdefault(service, []).append(role)
    return {name: sorted(roles) for name, roles in found.items()}


def _visible(req: Requester, name: str) -> frozenset[str]:
    keys: set[str] = set()
    for scope, revealed in SERVICE_KEYS.items():
        if req.allows(scope, service=name):
            keys |= revealed
    return frozenset(keys)


class _ServicesHandler(APIHandler):
    async def models(self, names: list[str]) -> dict[str, dict[str, Any]]:
        roles = await self.db.run(_roles)
        supervisor = self.hub.service_supervisor
        models = {}
        for name in names:
            visible = _visible(self.req, name)
            if not visible:
                continue
            spec = self.hub.services[name]
            pid = supervisor.pid(name) if supervisor is not None else 0
            models[name] = service_model(spec, roles.get(name, []), pid, self.ctx.base_url, visible)
        return models


class ServiceListAPIHandler(_ServicesHandler):
    @needs_scope("list:services")
    async def get(self) -> None:
        self.write_json(await self.models(sorted(self.hub.services)))


class ServiceAPIHandler(_ServicesHandler):
    @needs_scope(*READ_SCOPES)
    async def get(self, name: str) -> None:
        found = await self.models([name] if name in self.hub.services else [])
        if name not in found:
            raise NotFound(f"No such service: {bounded(name, 64)}")
        self.write_json(found[name])


routes = [
    (r"/api/services", ServiceListAPIHandler),
    (r"/api/services/([^/]+)", ServiceAPIHandler),
]
