"""The dummy authenticator, for tests and demos only: any username gets in.

With `password` set, every account shares it. It refuses to start unless the
hub listens on a loopback address only, so a demo cannot end up open to a
network by accident; `allow_non_loopback = True` forces it.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from traitlets import Bool, Unicode

from hub.auth.base import Authenticator, Identity, LoginOutcome
from hub.errors import ConfigError

if TYPE_CHECKING:
    from tornado.web import RequestHandler


def is_loopback(ip: str) -> bool:
    if ip in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False  # '' (every interface) or a host name


class DummyAuthenticator(Authenticator):
    """Anyone may log in with any name (and `password`, if set). Never for real use."""

    default_id: ClassVar[str] = "dummy"

    password = Unicode("", help="The password every account uses; '' accepts any password.").tag(
        config=True
    )
    allow_non_loopback = Bool(
        False,
        help="Start even though the hub listens on a non-loopback address (c.Hub.ip). The "
        "dummy authenticator lets anyone in: only for a demo on a closed network.",
    ).tag(config=True)

    def default_display_name(self) -> str:
        return "Demo login (any name)"

    def check_settings(self, hub_ip: str) -> None:
        if not is_loopback(hub_ip) and not self.allow_non_loopback:
            raise ConfigError(
                "the dummy authenticator lets anyone log in, and the hub listens on "
                f"{hub_ip or 'every interface'!s}, not only on loopback (127.0.0.1); use a "
                "real authenticator, or set c.DummyAuthenticator.allow_non_loopback = True"
            )

    def allowed_by_identity(self, identity: Identity) -> bool:
        return True

    async def authenticate(self, handler: RequestHandler, form: Mapping[str, str]) -> LoginOutcome:
        name = form.get("username", "")
        if not name:
            return None
        if self.password and not hmac.compare_digest(
            form.get("password", "").encode(), self.password.encode()
        ):
            return None
        return Identity(name=name)
