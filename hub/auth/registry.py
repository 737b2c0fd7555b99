"""Which authenticators the hub offers: loaded from `c.Hub.authenticator_class`.

The setting names one authenticator, or a list of them shown together on the
login page (OpenID Connect for students, native accounts for guest
instructors). Each is an alias below or an import path of an `Authenticator`
subclass. `AuthSet` is what the running hub keeps: the authenticators in
order, the auth-state crypter, the TOTP crypter and the throttling rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from traitlets.config import Config

from hub.auth.base import Authenticator
from hub.auth.crypto import Crypter
from hub.auth.throttle import ThrottleRules
from hub.errors import ConfigError

ALIASES = {
    "native": "hub.auth.native.NativeAuthenticator",
    "pam": "hub.auth.pam.PAMAuthenticator",
    "shared": "hub.auth.shared.SharedPasswordAuthenticator",
    "dummy": "hub.auth.dummy.DummyAuthenticator",
    "oidc": "hub.auth.oauth.oidc.GenericOIDCAuthenticator",
    "github": "hub.auth.oauth.github.GitHubAuthenticator",
    "gitlab": "hub.auth.oauth.gitlab.GitLabAuthenticator",
    "google": "hub.auth.oauth.google.GoogleAuthenticator",
    "entra": "hub.auth.oauth.entra.EntraAuthenticator",
}


def load_authenticator_class(spec: str) -> type[Authenticator]:
    from traitlets.utils.importstring import import_item

    path = ALIASES.get(spec, spec)
    try:
        cls = import_item(path)
    except Exception as e:
        known = ", ".join(ALIASES)
        raise ConfigError(
            f"authenticator_class: cannot load {spec!r} ({e}); use one of {known} or an import path"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Authenticator)):
        raise ConfigError(f"authenticator_class: {spec!r} is not an Authenticator subclass")
    return cls


def authenticator_classes() -> list[type[Authenticator]]:
    """The base class and every built-in authenticator, for config checks and
    `atrium generate-config`."""
    import importlib.util

    def present(path: str) -> bool:
        try:
            return importlib.util.find_spec(path.rpartition(".")[0]) is not None
        except ModuleNotFoundError:
            return False

    loaded = [load_authenticator_class(a) for a, path in ALIASES.items() if present(path)]
    return [Authenticator, *loaded]


@dataclass
class AuthSet:
    authenticators: list[Authenticator]
    # auth state is kept only with a key (ATRIUM_CRYPT_KEY)
    crypter: Crypter | None = None
    totp_crypter: Crypter | None = None
    throttle: ThrottleRules = field(default_factory=ThrottleRules)

    def get(self, ident: str) -> Authenticator | None:
        for auth in self.authenticators:
            if auth.ident == ident:
                return auth
        return None

    @property
    def exclusive(self) -> bool:
        """Several ways in: an account belongs to the one that first logged it in."""
        return len(self.authenticators) > 1

    @property
    def forms(self) -> list[Authenticator]:
        return [a for a in self.authenticators if a.kind == "form"]

    @property
    def auto_login(self) -> Authenticator | None:
        """The one redirect authenticator to send /hub/login to, if so configured."""
        if len(self.authenticators) == 1:
            only = self.authenticators[0]
            if only.kind == "redirect" and only.auto_login:
                return only
        return None

    @property
    def refreshes(self) -> bool:
        """Some authenticator refreshes identities on page visits."""
        return any(a.can_refresh and a.auth_refresh_age > 0 for a in self.authenticators)

    def first(self, kind: str) -> Authenticator | None:
        return next((a for a in self.authenticators if type(a).__name__ == kind), None)

    def routes(self) -> list[tuple[Any, ...]]:
        routes: list[tuple[Any, ...]] = []
        seen: set[type] = set()
        for auth in self.authenticators:
            # two authenticators of one class share its handlers
            if type(auth) not in seen:
                seen.add(type(auth))
                routes += auth.routes()
        return routes


def load_authenticators(
    specs: Sequence[str], config: Config, hub_ip: str, cookie_secret: bytes
) -> AuthSet:
    """Instantiate the configured authenticators; ConfigError names what is wrong."""
    if not specs:
        raise ConfigError("authenticator_class names no authenticator")
    auths: list[Authenticator] = []
    for spec in specs:
        cls = load_authenticator_class(spec)
        try:
            auth = cls(config=config)
        except Exception as e:  # a trait validator's TraitError, a bad value's type
            raise ConfigError(f"{cls.__name__}: {e}") from None
        auth.check_settings(hub_ip)
        if any(a.ident == auth.ident for a in auths):
            raise ConfigError(
                f"two authenticators have the id {auth.ident!r}; give one another with "
                f"c.{cls.__name__}.id"
            )
        auths.append(auth)
    return AuthSet(
        authenticators=auths,
        crypter=Crypter.from_environment(),
        totp_crypter=Crypter.derived(cookie_secret, "totp"),
    )
