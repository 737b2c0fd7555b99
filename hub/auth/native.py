"""Native accounts: usernames and argon2id password hashes kept in the hub's database.

The default for the embedded run. Accounts are made by admins (admin panel,
`hub-admin`, the REST API, a class roster) or, with `enable_signup`, by people
themselves on `/hub/signup`: their request waits for an admin's approval
(`hub.auth.signups`) unless `signup_requires_approval` is off. Passwords must
pass the rules of `hub.auth.passwords` wherever they are set.

A person changes their password on `/hub/password` (their other logins end) and
may add a second factor, one-time codes from an authenticator app, on
`/hub/totp` (`hub.auth.totp`). With one, the right password leads to a code
form (a `NextStep`) instead of a login; the code is posted back to
`/hub/login` with a signed pending-login token and counts against the same
throttle as passwords. The pages are `hub.auth.native_pages`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from tornado.web import decode_signed_value
from traitlets import Bool, Integer, TraitError, Unicode, validate

from hub.auth import account, totp
from hub.auth.base import Authenticator, Identity, LoginOutcome, NextStep, Refused
from hub.auth.crypto import Crypter, DecryptError
from hub.auth.passwords import MAX_LENGTH, PasswordRules, load_extra_list
from hub.errors import BadRequest
from hub.secrets_hash import password_matches

if TYPE_CHECKING:
    from tornado.web import RequestHandler

    from hub.pages.base import PageHandler

WAITING = (
    "This account is waiting for approval by an admin of this hub. You can log in "
    "once they approve it."
)
CODE_WRONG = "That code is not right. Log in again and type the code your app shows now."
CODE_USED = "That code was used already. Log in again and wait for your app to show a new one."
CODE_EXPIRED = "The time to type the code ran out. Please log in again."
CODE_UNREADABLE = (
    "Your two-step login can no longer be checked (the hub's keys changed). Ask an admin "
    "to reset it."
)
MIN_SETTING_LENGTH = 8
TOTP_TEMPLATE = "native_totp_login.html"


class NativeAuthenticator(Authenticator):
    """Accounts with a password in the hub's database."""

    default_id: ClassVar[str] = "native"
    owns_passwords: ClassVar[bool] = True

    enable_signup = Bool(
        False,
        help="Let people ask for an account on /hub/signup (a link on the login page). "
        "Their request waits for an admin's approval unless signup_requires_approval is off.",
    ).tag(config=True)
    signup_requires_approval = Bool(
        True,
        help="Sign-ups wait for an admin to approve them (admin panel, /hub/api/signups, "
        "hub-admin signup). Off: a sign-up makes a working account at once, so anyone who "
        "reaches the hub can use it.",
    ).tag(config=True)
    minimum_password_length = Integer(
        10,
        help=f"The fewest characters a native password may have (at least "
        f"{MIN_SETTING_LENGTH}, at most {MAX_LENGTH}). Common passwords and ones "
        "containing the username are refused whatever their length.",
    ).tag(config=True)
    common_passwords_file = Unicode(
        "",
        help="A file of passwords to refuse besides the 30,000 most common ones, one a "
        "line (compared without regard to case), e.g. the class's name and its variants.",
    ).tag(config=True)
    signups_per_address = Integer(
        50,
        help="Sign-up posts one client address may make before it must wait (a delay that "
        "doubles with each further post, as for failed logins). High enough for a class "
        "signing up together behind one address.",
    ).tag(config=True)
    max_pending_signups = Integer(
        1000,
        help="Sign-up requests that may wait for approval at once; further ones are "
        "refused until admins have decided on some.",
    ).tag(config=True)
    require_totp_for_admins = Bool(
        False,
        help="Admins must use two-step login: an admin without it is shown the set-up "
        "(a QR code to scan) after their password, and logs in once a code confirms it.",
    ).tag(config=True)
    totp_issuer = Unicode(
        "",
        help="How authenticator apps name this hub next to a user's codes; '' for the "
        "hub's title (c.Hub.title).",
    ).tag(config=True)

    _rules: PasswordRules | None = None

    @validate("minimum_password_length")
    def _valid_length(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not MIN_SETTING_LENGTH <= value <= MAX_LENGTH:
            raise TraitError(
                f"minimum_password_length must be from {MIN_SETTING_LENGTH} to {MAX_LENGTH}"
            )
        return value

    @validate("signups_per_address", "max_pending_signups")
    def _positive(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1")
        return value

    def default_display_name(self) -> str:
        return "Hub account"

    def check_settings(self, hub_ip: str) -> None:
        # read the site's list once, at start-up: a missing file stops the hub here
        self._rules = PasswordRules(
            min_length=self.minimum_password_length,
            extra_common=load_extra_list(self.common_passwords_file),
        )

    @property
    def password_rules(self) -> PasswordRules:
        if self._rules is None:
            self.check_settings("")
        assert self._rules is not None
        return self._rules

    def allowed_by_identity(self, identity: Identity) -> bool:
        # a native account exists only because an admin made or approved it
        return True

    def login_links(self, base_url: str) -> list[tuple[str, str]]:
        if self.enable_signup:
            return [("Create an account", f"{base_url}hub/signup")]
        return []

    def routes(self) -> list[tuple[Any, ...]]:
        from hub.auth.native_pages import routes

        return routes(self)

    # --- the login ---------------------------------------------------------------------

    async def authenticate(self, handler: RequestHandler, form: Mapping[str, str]) -> LoginOutcome:
        from hub.pages.base import PageHandler

        assert isinstance(handler, PageHandler)
        if "totp_pending" in form:
            return await self._code_step(handler, form)
        try:
            name = self.normalize_username(form.get("username", ""))
        except BadRequest:
            name = ""
        password = form.get("password", "")
        stored = (
            await handler.db.run(account.stored_password, name)
            if name
            else account.StoredPassword(None, "")
        )
        # an unknown or invalid name costs the same time as a wrong password
        right = await asyncio.to_thread(password_matches, password[:1024], stored.hash)
        if not (right and name and password and len(password) <= 1024):
            return None
        if stored.kind == "pending":
            return Refused(WAITING, guess=False)
        factor = await handler.db.run(totp.second_factor, name)
        if factor is not None and factor.secret is not None:
            return self._ask_code(handler, name, factor.cookie_id)
        if factor is not None and self._must_enrol(name, factor):
            return self._ask_code(handler, name, factor.cookie_id, enrol=True)
        return Identity(name=name)

    def _must_enrol(self, name: str, factor: totp.SecondFactor) -> bool:
        return self.require_totp_for_admins and (factor.admin or name in self.admin_users)

    def issuer(self, handler: PageHandler) -> str:
        return self.totp_issuer or handler.hub.branding.title or "Atrium"

    def _ask_code(
        self,
        handler: PageHandler,
        name: str,
        cookie_id: str,
        enrol: bool = False,
        error: str = "",
    ) -> NextStep:
        """The code form; with `enrol`, first the set-up of two-step login (admins who
        must have it), confirmed by the same code."""
        token = handler.create_signed_value(
            totp.PENDING_COOKIE_NAME, totp.pending_value(name, cookie_id)
        ).decode()
        values: dict[str, Any] = {
            "title": "Two-step login",
            "username": name,
            "pending": token,
            "authenticator": self.ident,
            "next": handler.get_query_argument("next", "")[:2000],
            "error": error,
            "enrol": None,
        }
        crypter = handler.hub.auth.totp_crypter
        if enrol and crypter is not None:
            secret = totp.new_secret()
            uri = totp.provisioning_uri(secret, name, self.issuer(handler))
            values["enrol"] = {
                "token": totp.enrolment_token(crypter, name, secret),
                "grouped": totp.grouped(secret),
                "uri": uri,
                "qr": totp.qr_data_uri(uri),
            }
        if error:
            # a wrong code: the code form again, counted as a failed guess
            return NextStep(TOTP_TEMPLATE, values, status=403, guess=True)
        return NextStep(TOTP_TEMPLATE, values)

    async def _code_step(self, handler: PageHandler, form: Mapping[str, str]) -> LoginOutcome:
        secret_key = handler.application.settings["cookie_secret"]
        raw = decode_signed_value(
            secret_key, totp.PENDING_COOKIE_NAME, form.get("totp_pending", ""), max_age_days=1
        )
        pending = totp.read_pending(raw.decode(errors="replace")) if raw else None
        if pending is None:
            return Refused(CODE_EXPIRED, guess=raw is None)
        name, fingerprint = pending
        try:
            typed = self.normalize_username(form.get("username", ""))
        except BadRequest:
            typed = ""
        if typed != name:
            return Refused(CODE_EXPIRED, guess=True)
        factor = await handler.db.run(totp.second_factor, name)
        if (
            factor is None
            or factor.blocked
            or not totp.fingerprint_matches(factor.cookie_id, fingerprint)
        ):
            # logged out everywhere or blocked since the password step
            return Refused(CODE_EXPIRED, guess=False)
        crypter = handler.hub.auth.totp_crypter
        if factor.secret is None:
            if not self._must_enrol(name, factor) or crypter is None:
                return Refused(CODE_EXPIRED, guess=False)  # reset since the password step
            return await self._enrol_step(handler, name, crypter, form)
        try:
            if crypter is None:
                raise DecryptError("no TOTP key")
            secret = crypter.decrypt(factor.secret).decode()
        except (DecryptError, UnicodeError):
            return Refused(CODE_UNREADABLE, guess=False)
        code = form.get("code", "")
        step = totp.matching_step(secret, code, factor.last_step)
        if step is None:
            used = totp.matching_step(secret, code, None) is not None
            message = CODE_USED if used else CODE_WRONG
            return self._ask_code(handler, name, factor.cookie_id, error=message)
        if not await handler.db.run(totp.use_step, name, step):
            # the same code won a moment ago in another request
            return self._ask_code(handler, name, factor.cookie_id, error=CODE_USED)
        return Identity(name=name)

    async def _enrol_step(
        self, handler: PageHandler, name: str, crypter: Crypter, form: Mapping[str, str]
    ) -> LoginOutcome:
        """An admin who must use two-step login set it up on the login page: the code
        confirms the new secret, which is stored, and the login completes."""
        try:
            secret = totp.read_enrolment(crypter, form.get("enrol_token", ""), name)
        except BadRequest:
            return Refused(CODE_EXPIRED, guess=True)
        step = totp.matching_step(secret, form.get("code", ""), None)
        if step is None:
            return Refused(CODE_WRONG, guess=True)
        await handler.db.run(totp.enable_if_off, name, crypter.encrypt(secret.encode()), step)
        return Identity(name=name)
