"""The OAuth routes: `/hub/oauth_login/<id>` starts a login, `/hub/oauth_callback` ends it.

Both are login pages (`LoginPage`): whatever goes wrong, the person sees the
login page again with a message saying what to do, and nothing is changed.
The callback finds its authenticator through the pending login's cookie
(`hub.auth.oauth.pending`), so one callback URL serves every OAuth
authenticator the hub offers.
"""

from __future__ import annotations

import logging
import time

from hub.auth.login import LOGINS, LoginPage
from hub.auth.oauth.base import OAuthAuthenticator
from hub.auth.oauth.http import ProviderError, capital
from hub.auth.oauth.pending import MAX_STATE, STATE_COOKIE, USED, Pending, same
from hub.log import bounded

log = logging.getLogger("hub.auth")

START_AGAIN = (
    "Your login could not be completed: it was not started in this browser, was "
    "already used, or took too long. Please log in again."
)
MAX_CODE = 4096
MAX_ERROR_TEXT = 300
# what a provider's `error` means for the person
PROVIDER_ERRORS = {
    "access_denied": "You did not allow this hub to use your {p} account, so you are not "
    "logged in. Log in again and allow it to continue.",
    "login_required": "{p} asks you to log in there first. Please log in again.",
    "consent_required": "{p} needs your consent first. Please log in again.",
    "interaction_required": "{p} needs you to do something there first. Please log in again.",
    "temporarily_unavailable": "{p} is not available just now. Please try again in a moment.",
    "server_error": "{p} had a problem with this login. Please try again in a moment.",
}


def page_status(e: ProviderError) -> int:
    """The login page's status for a failure: 502 when the provider failed, 403 when
    what it sent was not believed, 400 when it refused the login."""
    if e.status >= 500:
        return 502
    return 403 if e.status == 403 else 400


class OAuthLoginHandler(LoginPage):
    """Start a login: remember it in a cookie, send the browser to the provider."""

    async def get(self, ident: str) -> None:
        auth = self.auth.get(ident[:40])
        if not isinstance(auth, OAuthAuthenticator):
            self.show_login(404, "There is no such way to log in here. Choose one below.")
            return
        base = self.ctx.base_url
        try:
            url, pending = await auth.begin(auth.callback_url(self, base), self.next_url())
        except ProviderError as e:
            log.warning("Login with %s could not start: %s", auth.ident, e.log_message)
            self.show_login(page_status(e), e.message)
            return
        self.set_signed_cookie(
            STATE_COOKIE,
            pending.dumps(),
            expires=time.time() + auth.state_max_age,
            path=f"{base}hub/",
            httponly=True,
            samesite="Lax",
        )
        self.redirect(url)


class OAuthCallbackHandler(LoginPage):
    """The provider sends the person back here with a code (or an error)."""

    def _arg(self, name: str, limit: int) -> str | None:
        """A query argument, '' when absent, None when too long or repeated."""
        values = self.request.query_arguments.get(name, [])
        if len(values) > 1:
            return None
        if not values:
            return ""
        raw = values[0]
        if len(raw) > limit:
            return None
        return raw.decode("utf-8", "replace")

    def _pending(self, max_age_days: float) -> Pending | None:
        value = self.get_signed_cookie(STATE_COOKIE, max_age_days=max_age_days)
        return Pending.loads(value) if value else None

    def _refuse(self, status: int, message: str, why: str, ident: str = "unknown") -> None:
        LOGINS.labels(ident, "failure").inc()
        log.info("OAuth callback refused: %s", why)
        self.show_login(status, message)

    async def get(self) -> None:
        # the pending login is used at most once, whatever happens next
        self.clear_cookie(STATE_COOKIE, path=f"{self.ctx.base_url}hub/")
        state = self._arg("state", MAX_STATE)
        code = self._arg("code", MAX_CODE)
        error = self._arg("error", 200)
        if state is None or code is None or error is None:
            self._refuse(400, START_AGAIN, "oversized or repeated parameters")
            return
        # the longest state_max_age of the authenticators bounds the cookie's signature
        longest = max(
            (
                a.state_max_age
                for a in self.auth.authenticators
                if isinstance(a, OAuthAuthenticator)
            ),
            default=600.0,
        )
        pending = self._pending(longest / 86400)
        if pending is None:
            self._refuse(400, START_AGAIN, "no pending login (no or bad cookie)")
            return
        auth = self.auth.get(pending.ident)
        if not isinstance(auth, OAuthAuthenticator):
            self._refuse(400, START_AGAIN, "the pending login's authenticator is gone")
            return
        if not state or not same(state, pending.state):
            self._refuse(400, START_AGAIN, "state does not match", auth.ident)
            return
        if pending.expired(auth.state_max_age):
            self._refuse(400, START_AGAIN, "pending login expired", auth.ident)
            return
        if not USED.use(pending.state, pending.created + auth.state_max_age + 60):
            self._refuse(400, START_AGAIN, "state already used", auth.ident)
            return
        iss = self._arg("iss", 1000)
        if iss and not auth.callback_issuer_ok(iss):
            # RFC 9207: the answer comes from another provider than the one asked (mix-up)
            self._refuse(400, START_AGAIN, "callback from another issuer", auth.ident)
            return
        if error:
            self._provider_error(auth, error)
            return
        if not code:
            self._refuse(400, START_AGAIN, "no code", auth.ident)
            return
        try:
            outcome = await auth.finish(code, pending)
        except ProviderError as e:
            LOGINS.labels(auth.ident, "failure").inc()
            log.warning("Login with %s failed: %s", auth.ident, e.log_message)
            self.show_login(page_status(e), e.message)
            return
        await self.complete_login(auth, outcome, pending.next_url)

    def _provider_error(self, auth: OAuthAuthenticator, error: str) -> None:
        code = error if error.replace("_", "").isalnum() else "unknown"
        template = PROVIDER_ERRORS.get(code)
        if template is not None:
            message = capital(template.format(p=auth.provider_label))
        else:
            message = (
                f"{capital(auth.provider_label)} did not log you in ({bounded(error, 60)}). "
                "Please log in again; if it keeps happening, tell the hub's administrators."
            )
        described = self._arg("error_description", MAX_ERROR_TEXT) or ""
        LOGINS.labels(auth.ident, "refused").inc()
        log.info(
            "%s answered the login with error %r: %r",
            auth.ident,
            bounded(error, 60),
            bounded(described, 200),
        )
        self.show_login(403 if code == "access_denied" else 400, message)


routes = [
    (r"/oauth_login/([^/]+)", OAuthLoginHandler),
    (r"/oauth_callback", OAuthCallbackHandler),
]
