"""Native accounts in the REST API (Atrium extensions):

- `GET /hub/api/signups`: sign-up requests waiting for approval, oldest first,
  each `{name, full_name, email, created, address}`; `offset` and `limit` as on
  every list, paginated with `Accept: application/jupyterhub-pagination+json`;
- `POST /hub/api/signups/{name}`: approve one; the user is made with the password
  they chose and answered as a user model (201);
- `DELETE /hub/api/signups/{name}`: reject one (204);
- `DELETE /hub/api/users/{name}/totp`: turn off a user's two-step login (a lost
  phone), 204; 400 if they have none;
- `PUT /hub/api/users/{name}/password` with `{"password": "..."}`: give a native
  account a password (a first one, or a new one when it was forgotten), 204. It
  must pass the password rules (`hub.auth.passwords`); the user's logins end.

Deciding on sign-ups needs `admin:users` over every user; resetting two-step
login and setting a password need `admin:users` for that user. The units of work are in
`hub.auth.signups` and `hub.auth.totp`.
"""

from __future__ import annotations

import asyncio

from hub.api.base import APIHandler, needs_scope
from hub.auth import account, signups, totp
from hub.auth.passwords import DEFAULT_RULES, check_new_password
from hub.errors import BadRequest
from hub.log import bounded
from hub.names import validate_username
from hub.ops import users as user_ops
from hub.secrets_hash import hash_password


def _no_fields(handler: APIHandler) -> None:
    data = handler.json_object(allow_empty=True)
    if data:
        raise BadRequest(
            f"unknown field(s): {', '.join(sorted(bounded(k, 32) for k in data))}; "
            "this request takes no body"
        )


class SignupListAPIHandler(APIHandler):
    @needs_scope("admin:users")
    async def get(self) -> None:
        offset, limit = self.pagination()
        items, total = await self.db.run(signups.list_requests, self.req, offset, limit)
        if self.accepts_pagination:
            self.write_json(self.paginated(items, offset, limit, total))
        else:
            self.write_json(items)


class SignupAPIHandler(APIHandler):
    @needs_scope("admin:users")
    async def post(self, name: str) -> None:
        _no_fields(self)
        native = self.hub.auth.first("NativeAuthenticator")
        provider = native.ident if native is not None else "native"
        made = await self.db.run(signups.approve, self.req, name, provider)
        self.write_json(await self.db.run(user_ops.get_user, self.ctx, self.req, made), 201)

    @needs_scope("admin:users")
    async def delete(self, name: str) -> None:
        _no_fields(self)
        await self.db.run(signups.reject, self.req, name)
        self.no_content()


class TotpAPIHandler(APIHandler):
    @needs_scope("admin:users")
    async def delete(self, name: str) -> None:
        _no_fields(self)
        await self.db.run(totp.reset_by_admin, self.req, name)
        self.no_content()


class PasswordAPIHandler(APIHandler):
    @needs_scope("admin:users")
    async def put(self, name: str) -> None:
        data = self.json_object()
        unknown = set(data) - {"password"}
        if unknown:
            raise BadRequest(
                f"unknown field(s): {', '.join(sorted(bounded(k, 32) for k in unknown))}; "
                'send {"password": "..."}'
            )
        password = data.get("password")
        if not isinstance(password, str):
            raise BadRequest('Send the new password as {"password": "..."}')
        native = self.hub.auth.first("NativeAuthenticator")
        rules = getattr(native, "password_rules", DEFAULT_RULES)
        check_new_password(password, validate_username(name), rules)
        hashed = await asyncio.to_thread(hash_password, password)
        provider = native.ident if native is not None else "native"
        await self.db.run(account.set_by_admin, self.req, name, hashed, provider)
        self.no_content()


routes = [
    (r"/api/signups", SignupListAPIHandler),
    (r"/api/signups/([^/]+)", SignupAPIHandler),
    (r"/api/users/([^/]+)/totp", TotpAPIHandler),
    (r"/api/users/([^/]+)/password", PasswordAPIHandler),
]
