"""A shared password, for workshops: one password for everyone, another for admins.

Anyone who knows the user password may log in with a name of their choosing
(subject to the allow lists, and `allow_all` is on by default here). Names in
`admin_users`, accounts that are admins in the hub, and accounts that hold
more than an ordinary user through roles (their own or their groups', e.g. a
teaching assistant's access to others' servers) must use the admin password,
so knowing the user password is never enough to act as anyone with powers.
Both passwords are checked in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from traitlets import Bool, TraitError, Unicode, validate

from hub.auth.base import Authenticator, Identity, LoginOutcome
from hub.errors import ConfigError

if TYPE_CHECKING:
    from tornado.web import RequestHandler

MIN_USER_PASSWORD = 8
MIN_ADMIN_PASSWORD = 32


def _same(a: str, b: str) -> bool:
    return bool(a) and hmac.compare_digest(a.encode(), b.encode())


class SharedPasswordAuthenticator(Authenticator):
    """Everyone shares `user_password`; `admin_users` share `admin_password`."""

    default_id: ClassVar[str] = "shared"

    allow_all = Bool(
        True,
        help="Anyone with the shared password may log in, with any name (the allow lists "
        "still apply when this is False).",
    ).tag(config=True)
    user_password = Unicode(
        "",
        help=f"The password users share (at least {MIN_USER_PASSWORD} characters). "
        "ATRIUM_SHARED_PASSWORD overrides it.",
    ).tag(config=True)
    admin_password = Unicode(
        "",
        help=f"The password admin_users log in with (at least {MIN_ADMIN_PASSWORD} "
        "characters, not the user password); '' for no admin logins. "
        "ATRIUM_SHARED_ADMIN_PASSWORD overrides it.",
    ).tag(config=True)

    def default_display_name(self) -> str:
        return "Workshop login"

    @validate("user_password", "admin_password")
    def _no_newlines(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if "\n" in value or "\r" in value:
            raise TraitError(f"{proposal['trait'].name} must be one line")
        return value

    def _passwords(self) -> tuple[str, str]:
        import os

        return (
            os.environ.get("ATRIUM_SHARED_PASSWORD") or self.user_password,
            os.environ.get("ATRIUM_SHARED_ADMIN_PASSWORD") or self.admin_password,
        )

    def check_settings(self, hub_ip: str) -> None:
        user, admin = self._passwords()
        if len(user) < MIN_USER_PASSWORD:
            raise ConfigError(
                "c.SharedPasswordAuthenticator.user_password must be at least "
                f"{MIN_USER_PASSWORD} characters"
            )
        if admin and len(admin) < MIN_ADMIN_PASSWORD:
            raise ConfigError(
                "c.SharedPasswordAuthenticator.admin_password must be at least "
                f"{MIN_ADMIN_PASSWORD} characters"
            )
        if admin and admin == user:
            raise ConfigError("the shared admin password must differ from the user password")
        if self.admin_users and not admin:
            raise ConfigError(
                "admin_users are set but c.SharedPasswordAuthenticator.admin_password is "
                "empty: admins would have no way to log in"
            )

    async def authenticate(self, handler: RequestHandler, form: Mapping[str, str]) -> LoginOutcome:
        user_password, admin_password = self._passwords()
        typed = form.get("password", "")
        raw = form.get("username", "")
        if not raw:
            return None
        try:
            name = self.normalize_username(raw)
        except Exception:
            return None
        # both comparisons always run: which one matched must not show in the timing
        is_user = _same(user_password, typed)
        is_admin = _same(admin_password, typed)
        if name in self.admin_users or await _is_hub_admin(handler, name):
            # an admin account (named in the config or made one in the hub) takes the
            # admin password: the user password never opens it
            return Identity(name=name, admin=True) if is_admin else None
        if is_user:
            return Identity(name=name)
        return None


async def _is_hub_admin(handler: RequestHandler, name: str) -> bool:
    """`name` is an admin in the hub, or holds more than an ordinary user does through
    roles (its own or its groups': a teaching assistant's access to others' servers)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from hub.db.models import User
    from hub.ops.identity import user_requester
    from hub.pages.base import PageHandler

    assert isinstance(handler, PageHandler)
    roles = handler.ctx.roles

    def query(session: Session) -> bool:
        row = session.execute(select(User.id, User.admin).where(User.name == name)).first()
        if row is None:
            return False
        if row.admin:
            return True
        holds = user_requester(session, roles, row.id, name, False).scopes
        return not holds <= roles.user_scopes(name, False, ())

    return await handler.db.run(query)
