"""`/hub/api/users/{name}/tokens` and `/hub/api/users/{name}/tokens/{id}`.

A token can also be requested with a password instead of a token (JupyterHub's
`{"auth": {"username", "password"}}` body), which is how a person without any
token yet gets their first one from a script.
"""

from __future__ import annotations

from typing import Any

from hub.api.base import APIHandler, keeps_permissions, needs_scope
from hub.errors import BadRequest, Forbidden
from hub.ops import tokens as token_ops
from hub.ops.passwords import check_password


class TokenListAPIHandler(APIHandler):
    @needs_scope("read:tokens")
    async def get(self, name: str) -> None:
        tokens = await self.db.run(token_ops.list_tokens, self.req, name)
        self.write_json({"api_tokens": tokens})

    @keeps_permissions
    async def post(self, name: str) -> None:
        body: dict[str, Any] = self.json_object(allow_empty=True)
        req = self.requester
        if req is None:
            auth = body.get("auth")
            if not self.hub.allow_password_token_requests or auth is None:
                raise Forbidden("Missing or invalid credentials")
            if not isinstance(auth, dict):
                raise BadRequest("auth must be an object with username and password")
            username, password = auth.get("username"), auth.get("password")
            if not isinstance(username, str) or not isinstance(password, str):
                raise BadRequest("auth must be an object with username and password")
            if username != name or not await check_password(self.db, username, password):
                raise Forbidden("Invalid username or password")
        elif "auth" in body:
            raise BadRequest("auth is only for requests without a token")
        body.pop("auth", None)
        model = await self.db.run(token_ops.create_token, self.ctx, req, name, body)
        self.write_json(model, 201)


class TokenAPIHandler(APIHandler):
    @needs_scope("read:tokens")
    async def get(self, name: str, token_id: str) -> None:
        model = await self.db.run(token_ops.get_token, self.req, name, token_id)
        self.write_json(model)

    @needs_scope("tokens")
    async def delete(self, name: str, token_id: str) -> None:
        await self.db.run(token_ops.revoke_token, self.req, name, token_id)
        self.no_content()


routes = [
    (r"/api/users/([^/]+)/tokens", TokenListAPIHandler),
    (r"/api/users/([^/]+)/tokens/([^/]+)", TokenAPIHandler),
]
