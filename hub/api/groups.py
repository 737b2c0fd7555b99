"""`/hub/api/groups`, `/hub/api/groups/{name}`, its `/users` and `/properties`."""

from __future__ import annotations

from hub.api.base import APIHandler, keeps_permissions, needs_scope
from hub.errors import BadRequest
from hub.log import bounded
from hub.ops import groups as group_ops
from hub.ops.models import GROUP_READ_SCOPES


def _reject_unknown(data: dict[str, object], allowed: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(bounded(k, 32) for k in unknown))}")


class GroupListAPIHandler(APIHandler):
    @needs_scope("list:groups")
    async def get(self) -> None:
        offset, limit = self.pagination()
        paginate = self.accepts_pagination
        items, total = await self.db.run(group_ops.list_groups, self.req, offset, limit, paginate)
        if paginate:
            assert total is not None
            self.write_json(self.paginated(items, offset, limit, total))
        else:
            self.write_json(items)

    @needs_scope("admin:groups")
    async def post(self) -> None:
        data = self.json_object()
        _reject_unknown(data, {"groups", "users", "properties"})
        created = await self.db.run(
            group_ops.create_groups,
            self.ctx,
            self.req,
            data.get("groups"),
            data.get("users"),
            data.get("properties"),
        )
        self.write_json(created, 201)


class GroupAPIHandler(APIHandler):
    @needs_scope(*GROUP_READ_SCOPES)
    async def get(self, name: str) -> None:
        self.write_json(await self.db.run(group_ops.get_group, self.req, name))

    @needs_scope("admin:groups")
    async def post(self, name: str) -> None:
        data = self.json_object(allow_empty=True)
        _reject_unknown(data, {"users", "properties"})
        created = await self.db.run(
            group_ops.create_groups,
            self.ctx,
            self.req,
            [name],
            data.get("users"),
            data.get("properties"),
        )
        self.write_json(created[0], 201)

    @needs_scope("delete:groups")
    async def delete(self, name: str) -> None:
        await self.db.run(group_ops.delete_group, self.req, name)
        self.no_content()


class GroupUsersAPIHandler(APIHandler):
    @needs_scope("groups")
    async def post(self, name: str) -> None:
        data = self.json_object()
        _reject_unknown(data, {"users"})
        model = await self.db.run(
            group_ops.change_members, self.ctx, self.req, name, data.get("users"), True
        )
        self.write_json(model)

    @needs_scope("groups")
    async def delete(self, name: str) -> None:
        data = self.json_object()
        _reject_unknown(data, {"users"})
        model = await self.db.run(
            group_ops.change_members, self.ctx, self.req, name, data.get("users"), False
        )
        self.write_json(model)


class GroupPropertiesAPIHandler(APIHandler):
    @keeps_permissions
    @needs_scope("groups")
    async def put(self, name: str) -> None:
        data = self.json_body()
        model = await self.db.run(group_ops.set_properties, self.req, name, data)
        self.write_json(model)


routes = [
    (r"/api/groups", GroupListAPIHandler),
    (r"/api/groups/([^/]+)", GroupAPIHandler),
    (r"/api/groups/([^/]+)/users", GroupUsersAPIHandler),
    (r"/api/groups/([^/]+)/properties", GroupPropertiesAPIHandler),
]
