"""`/hub/api/users/{name}/tokens` and `/hub/api/users/{name}/tokens/{id}`.

A token can also be requested with a password instead of a token (JupyterHub's
`{"auth": {"username", "password"}}` body), which is how a person without any
token yet gets their first one from a script. Only native accounts have a
password here, and only when native accounts are a way in; an account with a
second factor (TOTP) cannot, since a password alone must not open it. Such
requests count against the same login throttle as the login page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.api.base import APIHandler, keeps_permissions, needs_scope
from hub.auth import throttle
from hub.db.models import User
from hub.errors import BadRequest, Forbidden, TooManyRequests
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
            await self._check_password_login(name, username, password)
        elif "auth" in body:
            raise BadRequest("auth is only for requests without a token")
        body.pop("auth", None)
        model = await self.db.run(token_ops.create_token, self.ctx, req, name, body)
        self.write_json(model, 201)

    async def _check_password_login(self, name: str, username: str, password: str) -> None:
        """A password in place of a token: throttled, native accounts only, no second
        factor; Forbidden (or TooManyRequests) otherwise, the same for unknown users."""
        auth = self.hub.auth
        native = next((a for a in auth.forms if a.owns_passwords), None)
        if native is None:
            raise Forbidden("This hub has no passwords of its own: log in and use the token page")
        keys = throttle.login_keys(auth.throttle, name, self.request.remote_ip or "", None)
        wait = await self.db.run(throttle.wait_seconds, keys)
        if wait:
            raise TooManyRequests("Too many failed logins; try again later", retry_after=wait)
        if username != name or not await check_password(self.db, username, password):
            await self.db.run(throttle.record_failure, auth.throttle, keys)
            raise Forbidden("Invalid username or password")
        if await self.db.run(_has_second_factor, name):
            raise Forbidden(
                "This account uses a second factor: make a token on the hub's token page"
            )
        await self.db.run(throttle.record_success, keys)


def _has_second_factor(session: Session, name: str) -> bool:
    return session.scalar(select(User.totp_secret).where(User.name == name)) is not None


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
