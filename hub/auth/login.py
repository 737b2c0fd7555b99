"""`/hub/login`: the login page for every configured authenticator, and the one way a
login ends (`complete_login`), whichever authenticator vouched for the person.

The page shows each authenticator in the configured order: a username and
password form for form authenticators, a button for redirect (OAuth)
authenticators. A form post names its authenticator; before any password is
checked the attempt must pass the throttle (`hub.auth.throttle`), and a failure
is counted there. The answer to a failure is the same whether the account
exists or not. A successful form login also leaves a device cookie, so that
this browser is not slowed down by someone else's guessing at the account.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from hub.auth import throttle
from hub.auth.accept import Accepted, Policy, Rejected, accept_identity
from hub.auth.base import Authenticator, Identity, LoginOutcome, NextStep, Refused
from hub.auth.registry import AuthSet
from hub.errors import BadRequest
from hub.log import bounded
from hub.pages.base import safe_next
from hub.pages.login import LandingPage

log = logging.getLogger("hub.auth")

MAX_FIELD = 1024
WRONG = "The username or password is not right."
DEVICE_COOKIE = "atrium-hub-device"
DEVICE_DAYS = 365

LOGINS = Counter(
    "atrium_logins",
    "Login attempts by authenticator and outcome (success, failure, refused, throttled).",
    ["authenticator", "outcome"],
)


def _wait_message(seconds: int) -> str:
    if seconds < 90:
        amount = f"{seconds} second{'s' if seconds != 1 else ''}"
    else:
        minutes = -(-seconds // 60)
        amount = f"{minutes} minutes"
    return f"Too many failed logins. Please wait {amount} before trying again."


class LoginPage(LandingPage):
    """What the login page and the handlers that end a login share."""

    @property
    def auth(self) -> AuthSet:
        return self.hub.auth

    def next_url(self) -> str:
        return self.get_query_argument("next", "")[:2000]

    def show_login(
        self,
        status: int = 200,
        error: str = "",
        username: str = "",
        chosen: str = "",
        logged_out: bool = False,
    ) -> None:
        base = self.ctx.base_url
        nxt = self.next_url()
        entries = [
            {
                "id": a.ident,
                "kind": a.kind,
                "label": a.label,
                "url": a.login_url(base, nxt) if a.kind == "redirect" else "",
                "links": a.login_links(base),
            }
            for a in self.auth.authenticators
        ]
        self.page(
            "login.html",
            status,
            title="Log in",
            next=nxt,
            username=username,
            error=error,
            chosen=chosen or (self.auth.forms[0].ident if self.auth.forms else ""),
            entries=entries,
            logged_out=logged_out,
        )

    # --- the device cookie ----------------------------------------------------------

    def device_for(self, name: str) -> str | None:
        """The device id, if this browser holds a device cookie for `name`."""
        value = self.get_signed_cookie(DEVICE_COOKIE, max_age_days=DEVICE_DAYS)
        if not value:
            return None
        device, _, owner = value.decode(errors="replace").partition(" ")
        return device if owner == name and device else None

    def remember_device(self, name: str, device: str | None) -> None:
        self.set_signed_cookie(
            DEVICE_COOKIE,
            f"{device or secrets.token_hex(12)} {name}",
            expires_days=DEVICE_DAYS,
            path=f"{self.ctx.base_url}hub/",
            httponly=True,
            samesite="Lax",
        )

    # --- ending a login -------------------------------------------------------------

    def _normalized(self, auth: Authenticator, identity: Identity) -> Identity | None:
        try:
            name = auth.normalize_username(identity.name)
        except BadRequest:
            return None
        return dataclasses.replace(
            identity, name=name, groups=auth.normalize_groups(identity.groups)
        )

    async def complete_login(
        self,
        auth: Authenticator,
        outcome: LoginOutcome,
        next_url: str,
        typed_name: str = "",
        on_success: Callable[[Accepted], Awaitable[None]] | None = None,
    ) -> Accepted | None:
        """Finish a login however `auth` answered: log the person in and redirect, or show
        the login page (or the next step) with the reason. Returns the accepted user;
        `on_success` runs before the redirect is sent (it may still set cookies)."""
        if isinstance(outcome, NextStep):
            if outcome.guess:
                LOGINS.labels(auth.ident, "failure").inc()
                log.info("Failed login step with %s for %r", auth.ident, bounded(typed_name, 60))
            values = {"next": next_url, **dict(outcome.values)}
            self.page(outcome.template, outcome.status, **values)
            return None
        if isinstance(outcome, Refused):
            LOGINS.labels(auth.ident, "refused").inc()
            log.info("Login refused by %s for %r", auth.ident, bounded(typed_name, 60))
            self.show_login(outcome.status, outcome.message, typed_name[:200], auth.ident)
            return None
        identity = self._normalized(auth, outcome) if outcome is not None else None
        if identity is None:
            LOGINS.labels(auth.ident, "failure").inc()
            shown = outcome.name if outcome is not None else typed_name
            log.info("Failed login with %s for %r", auth.ident, bounded(shown, 60))
            self.show_login(403, WRONG, typed_name[:200], auth.ident)
            return None
        policy = Policy.of(auth, identity, self.auth.exclusive)
        crypter = self.auth.crypter
        encrypt = crypter.encrypt_json if crypter is not None else None
        result = await self.db.run(accept_identity, policy, identity, encrypt)
        if isinstance(result, Rejected):
            LOGINS.labels(auth.ident, "refused").inc()
            log.info("Login of %s with %s refused: %s", identity.name, auth.ident, result.reason)
            self.show_login(403, result.message, typed_name[:200], auth.ident)
            return None
        self.hub.requester_cache.invalidate()
        LOGINS.labels(auth.ident, "success").inc()
        self.set_login_cookie(result.cookie_id)
        if on_success is not None:
            await on_success(result)
        log.info(
            "%s logged in with %s%s",
            result.name,
            auth.ident,
            " (new user)" if result.created else "",
        )
        default = await self.landing(result.name)
        self.redirect(safe_next(next_url, self.ctx.base_url, default))
        return result


class LoginHandler(LoginPage):
    async def get(self) -> None:
        if self.requester is not None:
            default = await self.landing(self.requester.name)
            self.redirect(safe_next(self.next_url(), self.ctx.base_url, default))
            return
        auto = self.auth.auto_login
        if auto is not None and self.get_query_argument("logged_out", "") != "1":
            self.redirect(auto.login_url(self.ctx.base_url, self.next_url()))
            return
        self.show_login(logged_out=self.get_query_argument("logged_out", "") == "1")

    def _form(self) -> dict[str, str]:
        """The posted fields as typed: a password may begin or end with a space (only the
        username is trimmed)."""
        form = {
            key: self.get_body_argument(key, "", strip=False)[:MAX_FIELD]
            for key in self.request.body_arguments
            if key != "_xsrf"
        }
        if "username" in form:
            form["username"] = form["username"].strip()
        return form

    async def post(self) -> None:
        form = self._form()
        chosen = form.get("authenticator", "")
        forms = self.auth.forms
        auth = self.auth.get(chosen) if chosen else (forms[0] if forms else None)
        if auth is None or auth.kind != "form":
            LOGINS.labels("unknown", "failure").inc()
            self.show_login(400, "Choose a way to log in from this page.")
            return
        typed = form.get("username", "")
        key_name = _throttle_name(auth, typed)
        device = self.device_for(key_name)
        keys = throttle.login_keys(
            self.auth.throttle, key_name, self.request.remote_ip or "", device
        )
        wait = await self.db.run(throttle.wait_seconds, keys)
        if wait:
            LOGINS.labels(auth.ident, "throttled").inc()
            log.info("Login for %r throttled (%d s)", bounded(typed, 60), wait)
            self.set_header("Retry-After", str(wait))
            self.show_login(429, _wait_message(wait), typed[:200], auth.ident)
            return
        outcome = await auth.authenticate(self, form)
        if isinstance(outcome, NextStep):
            # a step passed (the password), or the step is shown again after a wrong
            # answer (counted); the next post is throttled on its own
            await self.complete_login(auth, outcome, self.next_url(), typed)
            if outcome.guess:
                await self.db.run(throttle.record_failure, self.auth.throttle, keys)
            return

        async def succeeded(accepted: Accepted) -> None:
            await self.db.run(throttle.record_success, keys)
            self.remember_device(key_name, device)

        accepted = await self.complete_login(auth, outcome, self.next_url(), typed, succeeded)
        if accepted is None and (
            outcome is None or (isinstance(outcome, Refused) and outcome.guess)
        ):
            # wrong credentials; a refusal after the right ones (not approved yet, not
            # allowed) is no guess
            await self.db.run(throttle.record_failure, self.auth.throttle, keys)


def _throttle_name(auth: Authenticator, typed: str) -> str:
    """The account a form post is about, as the throttle counts it (bounded; a name the
    hub would refuse still counts, under its bounded form)."""
    try:
        return auth.normalize_username(typed)
    except BadRequest:
        return bounded(typed, 60) or "-"


routes = [(r"/login", LoginHandler)]
