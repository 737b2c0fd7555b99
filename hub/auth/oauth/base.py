"""What every OAuth2 / OpenID Connect authenticator shares.

A login goes: the login page's button leads to `/hub/oauth_login/<id>`, which
sends the browser to the provider's authorization endpoint with `state`, a
PKCE challenge (S256) and, for OpenID Connect, a `nonce` (`begin`); the
provider sends the person back to `/hub/oauth_callback` with a code, which the
hub exchanges at the token endpoint with its client secret and the PKCE
verifier (`finish`); the provider-specific part (`identity_from_tokens`) turns
the tokens into an `Identity`, or a `Refused` with the reason.

oauthlib's `WebApplicationClient` builds the authorization request, the token
and refresh requests, and parses token responses (an `error` answer becomes an
exception naming it). oauthlib insists on https URLs; the hub allows plain http
only for a provider on a loopback address (local tests and development, checked
by `check_settings`), so the query is built against a fixed https origin and put
on the configured endpoint.

The client secret may be set in the config file (`c.GenericOIDCAuthenticator
.client_secret`) or, better, in the environment: `ATRIUM_<ID>_CLIENT_SECRET`
(the authenticator's id in capitals, '-' as '_', e.g. `ATRIUM_GITHUB_CLIENT_SECRET`),
else `ATRIUM_OAUTH_CLIENT_SECRET`, else `OAUTH_CLIENT_SECRET` (JupyterHub's
OAuthenticator's name for it).

Auth state (kept encrypted when `ATRIUM_CRYPT_KEY` is set) holds `access_token`,
`refresh_token`, `id_token`, `token_response`, `oauth_user` (what the provider
said about the person) and `allowed_by` (the allow rules the person met, e.g.
`organization:physics`), which `allowed_by_identity` reads.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote, urlencode, urlsplit

from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from traitlets import Dict, Float, List, Unicode

from hub.auth.base import Authenticator, Identity, LoginOutcome, Refused
from hub.auth.oauth.http import Answer, ProviderError, bad_answer, capital, request, where
from hub.auth.oauth.pending import Pending
from hub.errors import BadRequest, ConfigError
from hub.log import bounded

if TYPE_CHECKING:
    from tornado.web import RequestHandler

log = logging.getLogger("hub.auth")

SECRET_ENV = "ATRIUM_OAUTH_CLIENT_SECRET"  # noqa: S105 (a variable's name)
SECRET_ENV_COMPAT = "OAUTH_CLIENT_SECRET"  # noqa: S105 (JupyterHub's OAuthenticator reads it)
# oauthlib accepts only https URIs; only the query of what it builds is used
ORIGIN = "https://provider.internal/"
# errors in a token answer that mean "this code or refresh token is no good": the
# person (or the refresh) is refused, the provider itself is fine
REFUSED_GRANT = {"invalid_grant", "access_denied", "unauthorized_client", "invalid_scope"}
_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,512}$")


@dataclass(frozen=True)
class Endpoints:
    authorize: str
    token: str
    # how the token endpoint wants the client's credentials
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(setting: str, url: str, *, required: bool = True) -> None:
    """ConfigError unless `url` is an absolute https URL (http only on loopback)."""
    if not url:
        if required:
            raise ConfigError(f"{setting} must be set")
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{setting} must be an absolute https:// URL, not {bounded(url, 80)!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"{setting} must use https:// ({bounded(url, 80)!r}); plain http is allowed only "
            "for a provider on this machine (127.0.0.1, localhost)"
        )
    if parts.username or parts.password:
        raise ConfigError(f"{setting} must not carry credentials")


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}" if query else url


def _form_quote(value: str) -> str:
    return quote(value, safe="")


class OAuthAuthenticator(Authenticator):
    """An OAuth2 client logging people in with an identity provider."""

    kind: ClassVar[Literal["form", "redirect"]] = "redirect"
    # how messages name the provider, e.g. "GitHub"
    provider_name: ClassVar[str] = "the identity provider"
    # OpenID Connect: a nonce is sent and the ID token carries it back
    uses_nonce: ClassVar[bool] = False

    client_id = Unicode(
        "",
        help="The client id the identity provider gave this hub when it was registered "
        "there (an 'OAuth app' or 'client').",
    ).tag(config=True)
    client_secret = Unicode(
        "",
        help="The client secret the identity provider gave this hub. Better kept out of "
        "the config file: when '' it is read from the environment variable "
        "ATRIUM_<ID>_CLIENT_SECRET (this authenticator's id in capitals, e.g. "
        "ATRIUM_GITHUB_CLIENT_SECRET), else ATRIUM_OAUTH_CLIENT_SECRET, else "
        "OAUTH_CLIENT_SECRET (JupyterHub's name for it).",
    ).tag(config=True)
    oauth_callback_url = Unicode(
        "",
        help="The URL the provider sends people back to, exactly as registered there, "
        "e.g. 'https://hub.example.org/hub/oauth_callback'. '' derives it from each "
        "request (scheme, host and base URL + 'hub/oauth_callback'); set it when the hub "
        "is reached under several names or behind a proxy that changes the host.",
    ).tag(config=True)
    scope = List(
        Unicode(),
        help="OAuth scopes asked for. Empty: the provider's usual ones for a login "
        "(e.g. 'openid email profile' for OpenID Connect); scopes the allow rules need "
        "(e.g. GitHub's read:org) are added.",
    ).tag(config=True)
    username_claim = Unicode(
        "",
        help="Which of the provider's fields (claims) becomes the hub username. '' for "
        "the provider's usual one. An email address is used only when the provider says "
        "it is verified.",
    ).tag(config=True)
    extra_authorize_params = Dict(
        Unicode(),
        help="More query parameters for the authorization request, e.g. "
        "{'prompt': 'select_account'}. Cannot replace state, nonce, PKCE or the redirect "
        "URI.",
    ).tag(config=True)
    http_timeout = Float(
        10.0,
        help="Seconds to wait for each answer from the identity provider (discovery, "
        "tokens, user information) before the login fails with a message.",
    ).tag(config=True)
    state_max_age = Float(
        600.0,
        help="Seconds a person has to log in at the provider and come back; a callback "
        "after that is refused and the person starts again.",
    ).tag(config=True)

    # --- settings ----------------------------------------------------------------------

    def default_display_name(self) -> str:
        return self.provider_name

    @property
    def provider_label(self) -> str:
        """How messages name the provider ("GitHub", or the configured display name)."""
        return self.display_name or self.provider_name

    def secret_env_names(self) -> list[str]:
        own = f"ATRIUM_{self.ident.upper().replace('-', '_')}_CLIENT_SECRET"
        return [own, SECRET_ENV, SECRET_ENV_COMPAT]

    def secret(self) -> str:
        if self.client_secret:
            return str(self.client_secret)
        for name in self.secret_env_names():
            value = os.environ.get(name, "").strip()
            if value:
                return value
        return ""

    def check_settings(self, hub_ip: str) -> None:
        cls = type(self).__name__
        if not self.client_id:
            raise ConfigError(
                f"c.{cls}.client_id must be set: the client id {self.provider_name} gave "
                "this hub when you registered it there"
            )
        if not _CLIENT_ID.match(self.client_id):
            raise ConfigError(
                f"c.{cls}.client_id has spaces or other characters no client id has; "
                "copy it again from the provider"
            )
        if not self.secret():
            *first, last = self.secret_env_names()
            names = f"{', '.join(first)} or {last}"
            raise ConfigError(
                f"c.{cls}.client_secret is not set: set it, or the environment variable "
                f"{names}, to the client secret {self.provider_name} gave this hub"
            )
        check_url(f"c.{cls}.oauth_callback_url", self.oauth_callback_url, required=False)
        reserved = {"state", "nonce", "code_challenge", "code_challenge_method", "redirect_uri"}
        clash = reserved | {"client_id", "response_type", "scope"}
        bad = sorted(clash & set(self.extra_authorize_params))
        if bad:
            raise ConfigError(
                f"c.{cls}.extra_authorize_params cannot set {', '.join(bad)}: the hub "
                "sets them itself"
            )
        if self.http_timeout <= 0 or self.state_max_age <= 0:
            raise ConfigError(f"c.{cls}.http_timeout and state_max_age must be positive")

    # --- the provider's side: per provider ---------------------------------------------

    async def endpoints(self) -> Endpoints:
        raise NotImplementedError

    def scopes(self) -> list[str]:
        return list(self.scope)

    def authorize_params(self) -> dict[str, str]:
        return dict(self.extra_authorize_params)

    async def identity_from_tokens(
        self, tokens: dict[str, Any], nonce: str | None, previous: Mapping[str, Any] | None
    ) -> Identity | Refused:
        """Who the tokens say the person is. `nonce`: the login's (None on refresh);
        `previous`: the auth state being refreshed."""
        raise NotImplementedError

    # --- routes ------------------------------------------------------------------------

    def login_url(self, base_url: str, next_url: str) -> str:
        url = f"{base_url}hub/oauth_login/{self.ident}"
        return with_query(url, urlencode({"next": next_url}) if next_url else "")

    def routes(self) -> list[tuple[Any, ...]]:
        from hub.auth.oauth.handlers import routes

        return list(routes)

    def callback_url(self, handler: RequestHandler, base_url: str) -> str:
        if self.oauth_callback_url:
            return str(self.oauth_callback_url)
        req = handler.request
        return f"{req.protocol}://{req.host}{base_url}hub/oauth_callback"

    def callback_issuer_ok(self, iss: str) -> bool:
        """Whether a callback's `iss` parameter (RFC 9207) names this provider."""
        return True

    # --- the flow ----------------------------------------------------------------------

    async def begin(self, redirect_uri: str, next_url: str) -> tuple[str, Pending]:
        """The provider's authorization URL for a new login, and what to remember."""
        endpoints = await self.endpoints()
        client = WebApplicationClient(self.client_id)
        verifier = client.create_code_verifier(64)
        challenge = client.create_code_challenge(verifier, "S256")
        pending = Pending.new(self.ident, next_url, redirect_uri, verifier)
        extra = self.authorize_params()
        if self.uses_nonce:
            extra["nonce"] = pending.nonce
        built = client.prepare_request_uri(
            ORIGIN,
            redirect_uri=redirect_uri,
            scope=self.scopes(),
            state=pending.state,
            code_challenge=challenge,
            code_challenge_method="S256",
            **extra,
        )
        return with_query(endpoints.authorize, urlsplit(built).query), pending

    async def finish(self, code: str, pending: Pending) -> Identity | Refused:
        """Exchange the code and say who logged in; ProviderError when the provider fails."""
        endpoints = await self.endpoints()
        client = WebApplicationClient(self.client_id)
        body = client.prepare_request_body(
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=pending.verifier,
            include_client_id=True,
            **self._post_secret(endpoints),
        )
        tokens = await self._token_request(client, endpoints, body)
        return await self.identity_from_tokens(
            tokens, pending.nonce if self.uses_nonce else None, None
        )

    def _post_secret(self, endpoints: Endpoints) -> dict[str, str]:
        if endpoints.auth_method == "client_secret_post":
            return {"client_secret": self.secret()}
        return {}

    async def _token_request(
        self, client: WebApplicationClient, endpoints: Endpoints, body: str
    ) -> dict[str, Any]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if endpoints.auth_method == "client_secret_basic":
            pair = f"{_form_quote(self.client_id)}:{_form_quote(self.secret())}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        answer = await request(
            self.provider_label,
            endpoints.token,
            wait=self.http_timeout,
            method="POST",
            headers=headers,
            body=body,
        )
        return self._parse_tokens(client, endpoints.token, answer)

    def _parse_tokens(
        self, client: WebApplicationClient, url: str, answer: Answer
    ) -> dict[str, Any]:
        if answer.body is None or not isinstance(answer.body, dict):
            raise ProviderError(
                bad_answer(self.provider_label),
                f"POST {where(url)} -> {answer.status}, no JSON object",
            )
        if answer.status >= 500:
            raise ProviderError(
                bad_answer(self.provider_label), f"POST {where(url)} -> {answer.status}"
            )
        try:
            parsed = client.parse_request_body_response(answer.text.decode("utf-8", "replace"))
        except OAuth2Error as e:
            if "error" not in answer.body:  # oauthlib's own complaint (no access_token)
                raise ProviderError(
                    bad_answer(self.provider_label),
                    f"POST {where(url)} -> {answer.status}: {bounded(str(e.error), 60)}",
                ) from None
            error = bounded(str(e.error), 60)
            status = 400 if e.error in REFUSED_GRANT else 502
            raise ProviderError(
                f"{capital(self.provider_label)} did not accept this login ({error}). "
                "Please log in again; if it keeps happening, tell the hub's administrators.",
                f"POST {where(url)} -> {answer.status}: {error}",
                status,
            ) from None
        except (ValueError, TypeError, Warning) as e:
            raise ProviderError(
                bad_answer(self.provider_label),
                f"POST {where(url)} -> {answer.status}: {type(e).__name__}",
            ) from None
        tokens = dict(parsed)
        if not isinstance(tokens.get("access_token"), str):
            raise ProviderError(
                bad_answer(self.provider_label), f"POST {where(url)}: no access_token"
            )
        return tokens

    # --- after the login ---------------------------------------------------------------

    def auth_state(
        self,
        tokens: Mapping[str, Any],
        user: Mapping[str, Any],
        allowed_by: list[str],
        **more: Any,
    ) -> dict[str, Any]:
        return {
            "access_token": tokens.get("access_token"),
            "refresh_token": tokens.get("refresh_token"),
            "id_token": tokens.get("id_token"),
            "token_response": dict(tokens),
            "oauth_user": dict(user),
            "allowed_by": allowed_by,
            **more,
        }

    def allowed_by_identity(self, identity: Identity) -> bool:
        state = identity.auth_state or {}
        return bool(state.get("allowed_by"))

    async def refresh(self, name: str, auth_state: dict[str, Any] | None) -> LoginOutcome | bool:
        """Ask the provider again: with the refresh token when there is one, else with the
        access token. A provider that refuses (a revoked grant, an expired token) logs
        the person out; one that cannot be reached does not."""
        if not auth_state or not isinstance(auth_state.get("access_token"), str):
            return True
        tokens: dict[str, Any] = dict(auth_state.get("token_response") or {})
        tokens["access_token"] = auth_state["access_token"]
        renewed = False
        try:
            refresh_token = auth_state.get("refresh_token")
            if isinstance(refresh_token, str) and refresh_token:
                endpoints = await self.endpoints()
                client = WebApplicationClient(self.client_id)
                body = client.prepare_refresh_body(
                    refresh_token=refresh_token,
                    client_id=self.client_id,
                    include_client_id=True,
                    **self._post_secret(endpoints),
                )
                fresh = await self._token_request(client, endpoints, body)
                fresh.setdefault("refresh_token", refresh_token)
                tokens = fresh
                renewed = True
            outcome = await self.identity_from_tokens(tokens, None, auth_state)
        except ProviderError as e:
            if e.status < 500:
                log.info("Refresh of %s with %s refused: %s", name, self.ident, e.log_message)
                return False
            log.warning("Could not refresh %s with %s: %s", name, self.ident, e.log_message)
            if renewed:
                # the provider may have rotated the refresh token: keep the new tokens, and
                # everything else as it was (admin and groups None: unchanged)
                kept = {
                    **auth_state,
                    "access_token": tokens["access_token"],
                    "refresh_token": tokens.get("refresh_token"),
                    "id_token": tokens.get("id_token") or auth_state.get("id_token"),
                    "token_response": tokens,
                }
                return Identity(name=name, auth_state=kept)
            return True
        if not isinstance(outcome, Identity):
            log.info("Refresh of %s with %s: no longer accepted", name, self.ident)
            return False
        try:
            same = self.normalize_username(outcome.name) == name
        except BadRequest:
            same = False
        if not same:
            log.info("Refresh of %s with %s: the provider names someone else", name, self.ident)
            return False
        return outcome
