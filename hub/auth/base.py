"""The authenticator contract: how a login becomes an identity, and who may have one.

An authenticator checks what a person presents (a form's fields, or an OAuth
callback) and answers with an `Identity`: a name, maybe admin, maybe groups,
maybe details and an `auth_state` to keep (encrypted) for the spawner. What
happens next is the same for every authenticator and lives in
`hub.auth.accept`: the name is normalised and validated, checked against the
blocked and allowed lists, the user is created or updated (admin, groups when
`manage_groups`), and the login cookie is set.

Two kinds of authenticator appear on the login page (`hub.auth.login`):
- form authenticators (`kind = "form"`: native, PAM, shared password, dummy)
  get a username and password form; the page posts it with the authenticator's
  id, and `authenticate(handler, form)` checks it;
- redirect authenticators (`kind = "redirect"`: OAuth2 / OpenID Connect) get
  a button leading to `login_url`; they serve their own routes (`routes()`),
  and call `hub.auth.login.complete_login` when the provider sends the person
  back.

Settings follow JupyterHub's names (`c.Authenticator.allowed_users`,
`admin_users`, `blocked_users`, `allow_all`, `allow_existing_users`,
`manage_groups`, `auto_login`, `refresh_pre_spawn`, `auth_refresh_age`,
`username_map`), so config habits carry over; a setting made on
`c.Authenticator` applies to every authenticator, one made on a class
(`c.GitHubAuthenticator.allowed_organizations`) to that one.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from traitlets import Any as AnyTrait
from traitlets import Bool, Dict, Float, List, TraitError, Unicode, validate
from traitlets.config import Configurable

from hub.errors import BadRequest
from hub.names import validate_group_name, validate_username

if TYPE_CHECKING:
    from tornado.web import RequestHandler

    from hub.state import HubState


@dataclass(frozen=True)
class Identity:
    """Who an authenticator says a person is.

    `admin` and `groups` are None when the authenticator does not decide them
    (then the hub keeps what it has); `auth_state` is kept encrypted when
    auth state is enabled, and given to `pre_spawn_start`.
    """

    name: str
    admin: bool | None = None
    groups: tuple[str, ...] | None = None
    full_name: str = ""
    email: str = ""
    auth_state: dict[str, Any] | None = None


@dataclass(frozen=True)
class Refused:
    """A login the authenticator itself turns down, with a message for the person
    (e.g. "this account is waiting for an admin's approval"). None from
    `authenticate` means plainly wrong credentials and gets the generic message."""

    message: str
    status: int = 403
    # counts as a failed guess for the throttle (a wrong second factor); False for a
    # refusal after right credentials (waiting for approval)
    guess: bool = False


@dataclass(frozen=True)
class NextStep:
    """A login that needs another step before it is complete (a TOTP code): the login
    page renders `template` with `values` instead of logging in."""

    template: str
    values: Mapping[str, Any] = field(default_factory=dict)
    status: int = 200
    # the step is shown again after a failed guess (a wrong code): counted by the throttle
    guess: bool = False


LoginOutcome = Identity | Refused | NextStep | None

# a pre-spawn hook: (authenticator, user name, decrypted auth state, spawner)
PreSpawnHook = Callable[[Any, str, "dict[str, Any] | None", Any], Awaitable[None] | None]

_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class Authenticator(Configurable):
    """What every authenticator shares: the lists, the name rules and the hooks."""

    # set by each subclass
    kind: ClassVar[Literal["form", "redirect"]] = "form"
    default_id: ClassVar[str] = ""
    # the authenticator keeps no password of its own (OAuth, PAM): changing one in the hub
    # means nothing
    owns_passwords: ClassVar[bool] = False

    id = Unicode(
        "",
        help="This authenticator's id, used in URLs and forms and recorded as the provider "
        "of the accounts it logs in: lower-case letters, digits and '-'. '' for the "
        "class's own (native, pam, shared, dummy, github, gitlab, google, entra, oidc).",
    ).tag(config=True)
    display_name = Unicode(
        "",
        help="How the login page names this way in, e.g. 'University login'. '' for the "
        "class's own.",
    ).tag(config=True)
    allowed_users = List(
        Unicode(),
        help="Names that may log in (besides allowed groups). Empty, with allow_all False "
        "and nothing else allowing: nobody new may log in except admin_users.",
    ).tag(config=True)
    blocked_users = List(Unicode(), help="Names that may never log in, whatever else says so.").tag(
        config=True
    )
    admin_users = List(
        Unicode(), help="Names that are made admins when they log in (and may always log in)."
    ).tag(config=True)
    allow_all = Bool(
        False,
        help="Anyone the authenticator accepts may log in. Off by default, so a login "
        "with a provider account is not enough on its own unless the authenticator "
        "itself restricts who gets in (native accounts, PAM).",
    ).tag(config=True)
    allow_existing_users = Bool(
        True,
        help="Users already in the hub's database (added by an admin, a roster or the API) "
        "may log in even when no list names them.",
    ).tag(config=True)
    username_map = Dict(
        Unicode(),
        help="Names mapped to other names after normalization, e.g. {'ann.smith': 'ann'}.",
    ).tag(config=True)
    username_pattern = Unicode(
        "",
        help="A regular expression every username must match in full (after "
        "normalization), e.g. r'[a-z][a-z0-9]{2,15}' to match Unix account rules. '' for "
        "the hub's own rules only.",
    ).tag(config=True)
    manage_groups = Bool(
        False,
        help="Group membership comes from the identity provider: at each login the "
        "user's groups are set to the ones the provider names (groups are created as "
        "needed), and admins do not edit them in the hub.",
    ).tag(config=True)
    auto_login = Bool(
        False,
        help="Skip the login page: /hub/login goes straight to the identity provider. Only "
        "for a single redirect authenticator (OAuth); ignored otherwise.",
    ).tag(config=True)
    refresh_pre_spawn = Bool(
        False,
        help="Refresh the identity (and auth state) before each server start; a start is "
        "refused when the provider no longer vouches for the user.",
    ).tag(config=True)
    auth_refresh_age = Float(
        300.0,
        help="Seconds after which a logged-in user's identity is refreshed with the "
        "provider on their next page visit (for authenticators that can refresh); a user "
        "the provider no longer accepts is logged out. 0: never.",
    ).tag(config=True)
    pre_spawn_hook = AnyTrait(
        None,
        allow_none=True,
        help="A function (authenticator, username, auth_state, spawner) called before each "
        "server start, e.g. to hand an access token to the server's environment: "
        "spawner.environment['GITHUB_TOKEN'] = auth_state['access_token']. May be async.",
    ).tag(config=True)

    @validate("id")
    def _valid_id(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value and not _SLUG.match(value):
            raise TraitError(
                f"id must be lower-case letters, digits and '-', starting with a letter, "
                f"at most 32 characters, not {value!r}"
            )
        return value

    @validate("username_pattern")
    def _valid_pattern(self, proposal: Any) -> str:
        value = str(proposal["value"])
        try:
            re.compile(value)
        except re.error as e:
            raise TraitError(f"username_pattern is not a regular expression: {e}") from None
        return value

    @validate("pre_spawn_hook")
    def _callable_hook(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and not callable(value):
            raise TraitError("pre_spawn_hook must be a function or None")
        return value

    @validate("allowed_users", "blocked_users", "admin_users")
    def _valid_names(self, proposal: Any) -> list[str]:
        names = []
        for raw in proposal["value"]:
            try:
                names.append(validate_username(raw))
            except BadRequest as e:
                raise TraitError(f"{proposal['trait'].name}: {e.message}") from None
        return names

    # --- identity ----------------------------------------------------------------------

    @property
    def ident(self) -> str:
        return self.id or self.default_id

    @property
    def label(self) -> str:
        return self.display_name or self.default_display_name()

    def default_display_name(self) -> str:
        return self.ident

    def check_settings(self, hub_ip: str) -> None:
        """Raise ConfigError for settings that cannot work together (at start-up)."""

    def normalize_username(self, raw: str) -> str:
        """The hub's name for `raw`: normalised, mapped, validated; BadRequest if invalid."""
        name = validate_username(raw)
        mapped = self.username_map.get(name)
        if mapped is not None:
            name = validate_username(mapped)
        if self.username_pattern and not re.fullmatch(self.username_pattern, name):
            raise BadRequest("this username is not allowed here")
        return name

    def normalize_groups(self, groups: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """Provider group names the hub can hold; others are dropped (with no error:
        a provider's odd group must not stop a login)."""
        if groups is None:
            return None
        kept: list[str] = []
        for raw in groups:
            try:
                kept.append(validate_group_name(raw))
            except BadRequest:
                continue
        return tuple(sorted(set(kept)))

    def allowed_by_identity(self, identity: Identity) -> bool:
        """Extra allow rules an authenticator knows (allowed organizations, groups).
        Checked after blocked_users; `allowed_users`, `admin_users`, `allow_all` and
        `allow_existing_users` are checked by the hub."""
        return False

    # --- the login ---------------------------------------------------------------------

    async def authenticate(self, handler: RequestHandler, form: Mapping[str, str]) -> LoginOutcome:
        """Form authenticators: check the posted fields (username, password, and any
        fields of a NextStep). Redirect authenticators never get a form."""
        raise NotImplementedError

    def login_url(self, base_url: str, next_url: str) -> str:
        """Redirect authenticators: where the login page's button leads."""
        raise NotImplementedError

    def login_links(self, base_url: str) -> list[tuple[str, str]]:
        """(text, href) links shown under this authenticator on the login page, e.g.
        native accounts' "Create an account"."""
        return []

    def routes(self) -> list[tuple[Any, ...]]:
        """Handlers this authenticator serves under /hub/ (callbacks, sign-up pages)."""
        return []

    async def refresh(self, name: str, auth_state: dict[str, Any] | None) -> LoginOutcome | bool:
        """Ask the provider again about a logged-in user: True (still fine, nothing new),
        a new Identity, or None/False (no longer accepted: log them out)."""
        return True

    @property
    def can_refresh(self) -> bool:
        return type(self).refresh is not Authenticator.refresh

    async def start(self, hub: HubState) -> None:
        """Called once the hub is up (fetch discovery documents, open connections)."""

    async def pre_spawn_start(
        self, name: str, auth_state: dict[str, Any] | None, spawner: Any
    ) -> None:
        """Before a server starts: runs the configured pre_spawn_hook."""
        hook = self.pre_spawn_hook
        if hook is None:
            return
        result = hook(self, name, auth_state, spawner)
        if result is not None and hasattr(result, "__await__"):
            await result
