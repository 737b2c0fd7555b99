"""The native accounts' own pages, served under /hub/ when native accounts are a way in:

- `/hub/signup`: ask for an account (with `enable_signup`); throttled per client
  address with the login throttle's rules (`hub.auth.throttle`), so it cannot be
  used to flood the hub with requests;
- `/hub/password`: change one's password (the current one, the new one twice);
  the other logins end, this browser stays logged in;
- `/hub/totp`: turn two-step login (TOTP) on, with a QR code to scan and a code
  to confirm, or off, with the password and a code.

Forms post back to their page (XSRF-checked); errors are shown on the form with
the status they would have in the API (400, 403, 409, 429).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from hub.auth import account, signups, throttle, totp
from hub.auth.crypto import Crypter, DecryptError
from hub.auth.native_admin import SignupsAdminPage
from hub.auth.passwords import check_new_password
from hub.errors import AtriumError, BadRequest, Conflict, NotFound
from hub.log import bounded
from hub.pages.base import LOGIN_COOKIE, PageHandler
from hub.rbac.access import Requester
from hub.secrets_hash import hash_password, password_matches

if TYPE_CHECKING:
    from hub.auth.native import NativeAuthenticator

log = logging.getLogger("hub.auth")

MAX_FIELD = 1024
WRONG_PASSWORD = "The current password is not right."  # noqa: S105 (a message)


def _wait_text(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{-(-seconds // 60)} minutes"


class NativePage(PageHandler):
    auth: NativeAuthenticator

    def initialize(self, auth: NativeAuthenticator) -> None:
        self.auth = auth

    def field(self, name: str) -> str:
        """A posted field, trimmed (names, codes, tokens)."""
        return self.get_body_argument(name, "")[:MAX_FIELD]

    def secret_field(self, name: str) -> str:
        """A posted password as typed: it may begin or end with a space, as at login."""
        return self.get_body_argument(name, "", strip=False)[:MAX_FIELD]

    def address(self) -> str:
        return self.request.remote_ip or ""

    async def throttled(self, keys: list[throttle.Key]) -> int:
        """Seconds these keys must wait (0: go on); sets Retry-After when waiting."""
        wait = await self.db.run(throttle.wait_seconds, keys)
        if wait:
            self.set_header("Retry-After", str(wait))
        return int(wait)

    def password_keys(self, name: str) -> list[throttle.Key]:
        """A password typed on these pages counts as a login attempt on the account."""
        return throttle.login_keys(self.hub.auth.throttle, name, self.address(), None)

    async def right_password(self, name: str, password: str, keys: list[throttle.Key]) -> bool:
        hashed = await self.db.run(account.password_hash, name)
        ok = len(password) <= MAX_FIELD and await asyncio.to_thread(
            password_matches, password, hashed
        )
        if not ok:
            await self.db.run(throttle.record_failure, self.hub.auth.throttle, keys)
        return bool(ok and hashed)

    async def own_account(self) -> tuple[Requester, bool]:
        """The logged-in person, and whether their account has a password here."""
        req = self.require_login()
        return req, await self.db.run(account.has_password, req.name)


# --- sign-up ------------------------------------------------------------------------


class SignupPage(NativePage):
    def _show(self, status: int = 200, error: str = "", **typed: str) -> None:
        self.page(
            "native_signup.html",
            status,
            title="Create an account",
            error=error,
            approval=self.auth.signup_requires_approval,
            min_length=self.auth.password_rules.min_length,
            typed=typed,
            done="",
        )

    def _require_open(self) -> None:
        if not self.auth.enable_signup:
            raise NotFound("Sign-up is not open on this hub. Ask its admins for an account.")

    async def get(self) -> None:
        self._require_open()
        self._show()

    async def post(self) -> None:
        self._require_open()
        typed = {
            "username": self.field("username")[:200],
            "full_name": self.field("full_name")[:300],
            "email": self.field("email")[:400],
        }
        address = self.address()
        key = f"signup:{throttle.address_key(address)}"
        keys = [throttle.Key(key, self.auth.signups_per_address)]
        wait = await self.throttled(keys)
        if wait:
            log.info("Sign-up from %s throttled (%d s)", bounded(address, 64), wait)
            self._show(
                429,
                f"Too many sign-ups from your network. Please wait {_wait_text(wait)} "
                "before trying again.",
                **typed,
            )
            return
        # every post counts, whatever its outcome: a flood is slowed down either way
        await self.db.run(throttle.record_failure, self.hub.auth.throttle, keys)
        try:
            new = await self._checked(typed, address)
            if self.auth.signup_requires_approval:
                await self.db.run(signups.request_account, new, self.auth.max_pending_signups)
            else:
                await self.db.run(signups.create_account, new, self.auth.ident)
        except AtriumError as e:
            if e.status == 429:
                self.set_header("Retry-After", str(getattr(e, "retry_after", 3600)))
            log.info("Sign-up refused for %r: %s", bounded(typed["username"], 60), e.log_message)
            self._show(e.status, e.message, **typed)
            return
        log.info(
            "Sign-up %s for %s from %s",
            "requested" if self.auth.signup_requires_approval else "made",
            new.name,
            bounded(address, 64),
        )
        self.page(
            "native_signup.html",
            201,
            title="Account requested" if self.auth.signup_requires_approval else "Account created",
            done=new.name,
            approval=self.auth.signup_requires_approval,
            error="",
            typed={},
        )

    async def _checked(self, typed: dict[str, str], address: str) -> signups.NewAccount:
        raw = typed["username"].strip()
        if not raw:
            raise BadRequest("Choose a username.")
        name = self.auth.normalize_username(raw)
        # a name an admin list holds would make its taker an admin at their first login
        reserved = set(self.auth.blocked_users)
        for other in self.hub.auth.authenticators:
            reserved.update(other.admin_users)
        if name in reserved:
            raise BadRequest(f"The username {name} is not available. Choose another one.")
        password = self.secret_field("password")
        if password != self.secret_field("password_again"):
            raise BadRequest("The two passwords are not the same. Type the same one twice.")
        check_new_password(password, name, self.auth.password_rules)
        full_name = signups.check_full_name(typed["full_name"])
        email = signups.check_email(typed["email"])
        if await self.db.run(signups.name_taken, name):
            raise Conflict(signups.taken_message(name))
        hashed = await asyncio.to_thread(hash_password, password)
        return signups.NewAccount(name, hashed, full_name, email, address)


# --- password change ----------------------------------------------------------------


class PasswordPage(NativePage):
    def _show(self, req: Requester, has_password: bool, status: int = 200, **values: Any) -> None:
        values.setdefault("error", "")
        values.setdefault("message", "")
        self.page(
            "native_password.html",
            status,
            title="Change your password",
            section="home",
            has_password=has_password,
            min_length=self.auth.password_rules.min_length,
            **values,
        )

    async def get(self) -> None:
        req, has = await self.own_account()
        self._show(req, has)

    async def post(self) -> None:
        req, has = await self.own_account()
        if not has:
            self._show(req, has, 400, error="Your account has no password on this hub.")
            return
        keys = self.password_keys(req.name)
        wait = await self.throttled(keys)
        if wait:
            self._show(
                req,
                has,
                429,
                error=f"Too many wrong passwords. Please wait {_wait_text(wait)} before "
                "trying again.",
            )
            return
        if not await self.right_password(req.name, self.secret_field("current"), keys):
            log.info("Password change for %s refused: wrong current password", req.name)
            self._show(req, has, 403, error=WRONG_PASSWORD)
            return
        new = self.secret_field("new")
        try:
            account.check_change(
                new, self.secret_field("new_again"), req.name, self.auth.password_rules
            )
        except BadRequest as e:
            self._show(req, has, 400, error=e.message)
            return
        hashed = await asyncio.to_thread(hash_password, new)
        cookie_id = await self.db.run(account.change_password, req.name, hashed, req.session_id)
        self.hub.requester_cache.invalidate()
        self._keep_login(cookie_id, req.session_id)
        log.info("%s changed their password; their other logins ended", req.name)
        self._show(
            req,
            has,
            message="Your password was changed. You were logged out everywhere else.",
        )

    def _keep_login(self, cookie_id: str, session_id: str | None) -> None:
        """This browser's login cookie with the new cookie id and the same session (so
        the tokens issued through it still end when it logs out)."""
        if not session_id:
            self.set_login_cookie(cookie_id)
            return
        self.set_signed_cookie(
            LOGIN_COOKIE,
            f"{cookie_id} {session_id}",
            expires_days=self.hub.cookie_max_age_days,
            path=f"{self.ctx.base_url}hub/",
            httponly=True,
            secure=self.request.protocol == "https",
            samesite="Lax",
        )


# --- two-step login -----------------------------------------------------------------


class TotpPage(NativePage):
    @property
    def crypter(self) -> Crypter:
        crypter = self.hub.auth.totp_crypter
        if crypter is None:
            raise AtriumError("Two-step login is not available on this hub.")
        return crypter

    async def _show(self, req: Requester, status: int = 200, **values: Any) -> None:
        has_password = await self.db.run(account.has_password, req.name)
        enabled = has_password and await self.db.run(totp.has_totp, req.name)
        values.setdefault("error", "")
        values.setdefault("message", "")
        if has_password and not enabled:
            token = values.pop("enrol_token", "")
            if token:
                secret = totp.read_enrolment(self.crypter, token, req.name)
            else:
                secret = totp.new_secret()
                token = totp.enrolment_token(self.crypter, req.name, secret)
            uri = totp.provisioning_uri(secret, req.name, self.auth.issuer(self))
            values.update(
                secret=secret,
                grouped=totp.grouped(secret),
                uri=uri,
                qr=totp.qr_data_uri(uri),
                enrol_token=token,
            )
        self.page(
            "native_totp.html",
            status,
            title="Two-step login",
            section="home",
            has_password=has_password,
            enabled=enabled,
            **values,
        )

    async def get(self) -> None:
        req = self.require_login()
        await self._show(req)

    async def post(self) -> None:
        req, has = await self.own_account()
        action = self.get_body_argument("action", "")
        if not has:
            await self._show(req, 400, error="Your account has no password on this hub.")
        elif action == "enable":
            await self._enable(req)
        elif action == "disable":
            await self._disable(req)
        else:
            await self._show(req, 400, error="Unknown action; use the buttons on this page.")

    async def _enable(self, req: Requester) -> None:
        token = self.field("enrol_token")
        try:
            secret = totp.read_enrolment(self.crypter, token, req.name)
        except BadRequest as e:
            await self._show(req, 400, error=e.message)
            return
        if await self.db.run(totp.has_totp, req.name):
            await self._show(req, 409, error="Two-step login is on already.")
            return
        step = totp.matching_step(secret, self.field("code"), None)
        if step is None:
            await self._show(
                req,
                400,
                error="That code is not right. Type the 6 digits your app shows now for this hub.",
                enrol_token=token,
            )
            return
        encrypted = self.crypter.encrypt(secret.encode())
        await self.db.run(totp.enable, req.name, encrypted, step)
        log.info("%s turned two-step login on", req.name)
        await self._show(
            req, message="Two-step login is on. Next time you log in, have your app at hand."
        )

    async def _disable(self, req: Requester) -> None:
        keys = self.password_keys(req.name)
        wait = await self.throttled(keys)
        if wait:
            await self._show(
                req,
                429,
                error=f"Too many wrong attempts. Please wait {_wait_text(wait)} before "
                "trying again.",
            )
            return
        if not await self.right_password(req.name, self.secret_field("password"), keys):
            await self._show(req, 403, error=WRONG_PASSWORD)
            return
        factor = await self.db.run(totp.second_factor, req.name)
        if factor is None or factor.secret is None:
            await self._show(req, 409, error="Two-step login is off already.")
            return
        try:
            secret = self.crypter.decrypt(factor.secret).decode()
        except (DecryptError, UnicodeError):
            await self._show(
                req,
                409,
                error="Your two-step login can no longer be checked (the hub's keys changed). "
                "Ask an admin to reset it.",
            )
            return
        step = totp.matching_step(secret, self.field("code"), factor.last_step)
        if step is None or not await self.db.run(totp.use_step, req.name, step):
            await self.db.run(throttle.record_failure, self.hub.auth.throttle, keys)
            await self._show(req, 403, error="That code is not right (or was used already).")
            return
        await self.db.run(totp.disable, req.name, req.name)
        log.info("%s turned two-step login off", req.name)
        await self._show(req, message="Two-step login is off. Your password alone logs you in.")


def routes(auth: NativeAuthenticator) -> list[tuple[Any, ...]]:
    kwargs = {"auth": auth}
    return [
        (r"/signup", SignupPage, kwargs),
        (r"/password", PasswordPage, kwargs),
        (r"/totp", TotpPage, kwargs),
        (r"/admin/signups", SignupsAdminPage, kwargs),
    ]
