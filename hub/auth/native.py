"""Native accounts: usernames and argon2id password hashes kept in the hub's database.

The default for the embedded run. Accounts are made by admins (admin panel,
`hub-admin`, the REST API, a class roster).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from hub.auth.base import Authenticator, Identity, LoginOutcome
from hub.errors import BadRequest
from hub.ops.passwords import check_password

if TYPE_CHECKING:
    from tornado.web import RequestHandler


class NativeAuthenticator(Authenticator):
    """Accounts with a password in the hub's database."""

    default_id: ClassVar[str] = "native"
    owns_passwords: ClassVar[bool] = True

    def default_display_name(self) -> str:
        return "Hub account"

    def allowed_by_identity(self, identity: Identity) -> bool:
        # a native account exists only because an admin made or approved it
        return True

    async def authenticate(self, handler: RequestHandler, form: Mapping[str, str]) -> LoginOutcome:
        from hub.pages.base import PageHandler

        assert isinstance(handler, PageHandler)
        try:
            name = self.normalize_username(form.get("username", ""))
        except BadRequest:
            name = ""
        password = form.get("password", "")
        # an unknown or invalid name costs the same time as a wrong password
        if await check_password(handler.db, name, password) and name and password:
            return Identity(name=name)
        return None
