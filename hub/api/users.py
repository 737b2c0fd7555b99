"""`/hub/api/users`, `/hub/api/users/{name}` and `/hub/api/users/{name}/activity`.

PATCH takes `name`, `admin`, `groups` and `blocked` (Atrium's; JupyterHub
blocks users only in its config). Blocking goes through `patch_user`, which
also stops the user's servers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from tornado import web

from hub.api.base import APIHandler, keeps_permissions, needs_scope
from hub.errors import BadRequest
from hub.log import bounded
from hub.ops import servers as server_ops
from hub.ops import users as user_ops
from hub.ops.models import USER_READ_SCOPES
from hub.rbac.access import Requester
from hub.state import HubState

log = logging.getLogger("hub.api")

STATES = {"active", "ready", "inactive"}
MAX_BULK_USERS = 10_000


async def stop_servers(state: HubState, req: Requester, name: str) -> None:
    """Stop every server of `name` that is running or starting, together.

    A stop that fails is logged and left: the user model then still shows that
    server, so the caller can see it.
    """
    refs = await state.db.run(server_ops.active_servers, name)
    outcomes = await asyncio.gather(
        *(state.orchestrator.stop(req, name, ref.name) for ref in refs), return_exceptions=True
    )
    for ref, outcome in zip(refs, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            log.error("Stopping %s of a blocked user failed: %s", ref.log_name, outcome)


async def patch_user(
    state: HubState, req: Requester, name: str, patch: dict[str, Any]
) -> dict[str, Any]:
    """`user_ops.update_user`, then, for a blocked user, stop their servers (a blocked
    user cannot start one again: `hub.ops.servers.begin_spawn` refuses)."""
    model: dict[str, Any] = await state.db.run(user_ops.update_user, state.ctx, req, name, patch)
    if patch.get("blocked") is True:
        current = str(model.get("name", name))
        await stop_servers(state, req, current)
        model = await state.db.run(user_ops.get_user, state.ctx, req, current)
    return model


class UserListAPIHandler(APIHandler):
    @needs_scope("list:users")
    async def get(self) -> None:
        state = self.get_query_argument("state", None)
        if state is not None and state not in STATES:
            raise BadRequest(
                f"state must be one of active, ready, inactive; not {bounded(state, 20)}"
            )
        sort = self.get_query_argument("sort", "id")
        descending = sort.startswith("-")
        key = sort[1:] if descending else sort
        if key not in user_ops.SORT_KEYS:
            raise BadRequest(
                "sort must be id, name, last_activity or server (prefix - to reverse), "
                f"not {bounded(sort, 30)}"
            )
        name_filter = self.get_query_argument("name_filter", None)
        if name_filter is not None and len(name_filter) > 256:
            raise BadRequest("name_filter is too long")
        offset, limit = self.pagination()
        paginate = self.accepts_pagination
        query = user_ops.UserQuery(
            offset=offset,
            limit=limit,
            state=cast(user_ops.StateFilter, state),
            name_filter=name_filter,
            sort=key,
            descending=descending,
            include_stopped=self.flag_argument("include_stopped_servers"),
            count=paginate,
        )
        items, total = await self.db.run(user_ops.list_users, self.ctx, self.req, query)
        if paginate:
            assert total is not None
            self.write_json(self.paginated(items, offset, limit, total))
        else:
            self.write_json(items)

    @keeps_permissions
    @needs_scope("admin:users")
    async def post(self) -> None:
        data = self.json_object()
        unknown = set(data) - {"usernames", "admin"}
        if unknown:
            raise BadRequest(
                f"unknown field(s): {', '.join(sorted(bounded(k, 32) for k in unknown))}"
            )
        names = data.get("usernames")
        if not isinstance(names, list) or not names:
            raise BadRequest("Must specify at least one user to create in usernames")
        if len(names) > MAX_BULK_USERS:
            raise BadRequest(f"At most {MAX_BULK_USERS} users per request")
        created = await self.db.run(
            user_ops.create_users, self.ctx, self.req, names, data.get("admin", False)
        )
        self.write_json(created, 201)


class UserAPIHandler(APIHandler):
    @needs_scope(*USER_READ_SCOPES)
    async def get(self, name: str) -> None:
        include_stopped = self.flag_argument("include_stopped_servers")
        model = await self.db.run(user_ops.get_user, self.ctx, self.req, name, include_stopped)
        self.write_json(model)

    @keeps_permissions
    @needs_scope("admin:users")
    async def post(self, name: str) -> None:
        data = self.json_object(allow_empty=True)
        unknown = set(data) - {"admin"}
        if unknown:
            raise BadRequest(
                f"unknown field(s): {', '.join(sorted(bounded(k, 32) for k in unknown))}"
            )
        created = await self.db.run(
            user_ops.create_users, self.ctx, self.req, [name], data.get("admin", False)
        )
        self.write_json(created[0], 201)

    @needs_scope("admin:users")
    async def patch(self, name: str) -> None:
        data = self.json_object()
        if not data:
            raise BadRequest("Nothing to change: send name, admin, groups or blocked")
        self.write_json(await patch_user(self.hub, self.req, name, data))

    @needs_scope("delete:users")
    async def delete(self, name: str) -> None:
        await self.hub.orchestrator.delete_user(self.req, name)
        self.no_content()


class ActivityAPIHandler(APIHandler):
    @keeps_permissions
    @needs_scope("users:activity")
    async def post(self, name: str) -> None:
        body: Any = self.json_body()
        await self.db.run(user_ops.record_activity, self.req, name, body)
        self.no_content()


class UserNameRequired(APIHandler):
    async def prepare(self) -> None:
        raise web.HTTPError(400, "A user name is required in the URL")


routes = [
    (r"/api/users", UserListAPIHandler),
    (r"/api/users/", UserNameRequired),
    (r"/api/users/([^/]+)", UserAPIHandler),
    (r"/api/users/([^/]+)/activity", ActivityAPIHandler),
]
