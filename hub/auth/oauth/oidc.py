"""OpenID Connect: any provider that publishes `<issuer>/.well-known/openid-configuration`
(Keycloak, Authentik, Dex, Okta, Zitadel...).

The discovery document gives the endpoints and the JWKS; the document's
`issuer` must be the configured one. The ID token is checked (`idtoken`)
before any claim is used; the userinfo endpoint's answer, when there is one, is
merged in after its `sub` is found to be the ID token's. The username comes
from `username_claim`; an email address (`email`) becomes a username only when
`email_verified` is true, and is kept as the user's email only then. Groups
come from `groups_claim` (a dotted path such as `realm_access.roles` reaches
into nested claims); `allowed_groups` let their members in and `admin_groups`
make theirs admins.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from traitlets import Bool, Float, List, Unicode

from hub.auth.base import Identity, Refused
from hub.auth.oauth.base import Endpoints, OAuthAuthenticator, check_url, log
from hub.auth.oauth.http import ProviderError, bad_answer, capital, get_json
from hub.auth.oauth.idtoken import IdTokenError, Keys, check_id_token
from hub.errors import ConfigError
from hub.log import bounded

# asymmetric signatures only by default: HS256 would be keyed with the client secret
DEFAULT_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
]
_NESTED_MAX = 5


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """`path` in the claims: a plain name, or a dotted path into nested objects (a
    claim literally named with a dot wins)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split(".")[:_NESTED_MAX]:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def verified(claims: Mapping[str, Any]) -> bool:
    value = claims.get("email_verified")
    return value is True or value == "true"


def string_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)][:1000]
    return None


class GenericOIDCAuthenticator(OAuthAuthenticator):
    """Log in with an OpenID Connect provider (Keycloak, Authentik, ...)."""

    default_id: ClassVar[str] = "oidc"
    provider_name: ClassVar[str] = "the identity provider"
    uses_nonce: ClassVar[bool] = True
    default_username_claim: ClassVar[str] = "preferred_username"

    issuer = Unicode(
        "",
        help="The provider's issuer URL, e.g. 'https://keycloak.example.org/realms/school'. "
        "Its discovery document, <issuer>/.well-known/openid-configuration, gives the "
        "endpoints and signing keys; ID tokens must name exactly this issuer.",
    ).tag(config=True)
    provider_display_name = Unicode(
        "",
        help="How messages name the provider, e.g. 'University login'. '' for "
        "display_name, or 'the identity provider'.",
    ).tag(config=True)
    groups_claim = Unicode(
        "groups",
        help="The claim listing the person's groups (ID token or userinfo); a dotted path "
        "such as 'realm_access.roles' reaches into nested claims. '' for none.",
    ).tag(config=True)
    allowed_groups = List(
        Unicode(),
        help="Members of these provider groups may log in (besides allowed_users).",
    ).tag(config=True)
    admin_groups = List(
        Unicode(),
        help="Members of these provider groups are the hub's admins; others are not "
        "(admin is set at each login). Empty: admin comes from admin_users only.",
    ).tag(config=True)
    fetch_userinfo = Bool(
        True,
        help="Ask the userinfo endpoint for the person's claims as well as reading the ID "
        "token (providers put email, name or groups in either).",
    ).tag(config=True)
    id_token_algorithms = List(
        Unicode(),
        default_value=DEFAULT_ALGORITHMS,
        help="Signature algorithms accepted on ID tokens. 'none' is never accepted; HS256 "
        "(keyed with the client secret) only when listed here.",
    ).tag(config=True)
    clock_leeway = Float(
        60.0,
        help="Seconds of clock difference tolerated when checking an ID token's exp, iat and nbf.",
    ).tag(config=True)
    id_token_max_age = Float(
        600.0,
        help="Seconds after its iat an ID token is still accepted at login.",
    ).tag(config=True)
    discovery_max_age = Float(
        3600.0,
        help="Seconds the discovery document and the signing keys (JWKS) are kept before "
        "they are fetched again (keys are also fetched again when a token names an "
        "unknown one).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._discovery: dict[str, Any] | None = None
        self._discovered = 0.0
        self._keys: Keys | None = None

    # --- settings ----------------------------------------------------------------------

    @property
    def provider_label(self) -> str:
        return self.provider_display_name or super().provider_label

    def issuer_url(self) -> str:
        return str(self.issuer)

    def accepted_issuers(self) -> set[str]:
        """Issuers an ID token (and the discovery document) may name: exactly this one."""
        return {self.issuer_url()}

    def callback_issuer_ok(self, iss: str) -> bool:
        return iss in self.accepted_issuers()

    def discovery_url(self) -> str:
        return self.issuer_url().rstrip("/") + "/.well-known/openid-configuration"

    def username_field(self) -> str:
        return str(self.username_claim or self.default_username_claim)

    def check_settings(self, hub_ip: str) -> None:
        super().check_settings(hub_ip)
        cls = type(self).__name__
        self.check_issuer()
        algs = {a.lower() for a in self.id_token_algorithms}
        if not algs or "none" in algs:
            raise ConfigError(
                f"c.{cls}.id_token_algorithms must list signature algorithms, never 'none'"
            )

    def check_issuer(self) -> None:
        check_url(f"c.{type(self).__name__}.issuer", self.issuer_url())

    def scopes(self) -> list[str]:
        scopes = list(self.scope) or ["openid", "email", "profile"]
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        return scopes

    # --- discovery ---------------------------------------------------------------------

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is not None and time.monotonic() - self._discovered < (
            self.discovery_max_age
        ):
            return dict(self._discovery)
        url = self.discovery_url()
        document: dict[str, Any] = await get_json(self.provider_label, url, wait=self.http_timeout)
        problem = self._discovery_problem(document)
        if problem:
            raise ProviderError(bad_answer(self.provider_label), f"discovery at {url}: {problem}")
        self._discovery = document
        self._discovered = time.monotonic()
        jwks = str(document["jwks_uri"])
        if self._keys is None or self._keys.url != jwks:
            self._keys = Keys(self.provider_label, jwks, self.discovery_max_age, self.http_timeout)
        return dict(document)

    def _discovery_problem(self, document: Any) -> str:
        if not isinstance(document, dict):
            return "not a JSON object"
        if document.get("issuer") not in self.accepted_issuers():
            return f"issuer {bounded(str(document.get('issuer')), 80)!r} is not {self.issuer!r}"
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            try:
                check_url(name, document.get(name) or "")
            except ConfigError as e:
                return str(e)
        if document.get("userinfo_endpoint"):
            try:
                check_url("userinfo_endpoint", document["userinfo_endpoint"])
            except ConfigError as e:
                return str(e)
        return ""

    async def endpoints(self) -> Endpoints:
        document = await self.discovery()
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        post = "client_secret_basic" not in methods and "client_secret_post" in methods
        return Endpoints(
            str(document["authorization_endpoint"]),
            str(document["token_endpoint"]),
            "client_secret_post" if post else "client_secret_basic",
        )

    async def start(self, hub: Any) -> None:
        try:
            await self.discovery()
        except ProviderError as e:  # not fatal: fetched again at the first login
            log.warning("%s: discovery failed: %s", self.ident, e.log_message)

    # --- identity ----------------------------------------------------------------------

    async def id_claims(self, tokens: Mapping[str, Any], nonce: str | None) -> dict[str, Any]:
        token = tokens.get("id_token")
        if not isinstance(token, str):
            raise IdTokenError("the token answer has no id_token")
        await self.discovery()
        assert self._keys is not None
        return await check_id_token(
            token,
            self._keys,
            algorithms=self.id_token_algorithms,
            issuers=self.accepted_issuers(),
            client_id=self.client_id,
            nonce=nonce,
            client_secret=self.secret(),
            leeway=self.clock_leeway,
            # a refreshed token may be reissued later; only its exp matters then
            max_age=self.id_token_max_age if nonce is not None else 10 * 365 * 86400.0,
        )

    async def claims(
        self, tokens: Mapping[str, Any], nonce: str | None, previous: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(checked ID token claims, all claims with userinfo merged in)."""
        if previous is None:
            id_claims = await self.id_claims(tokens, nonce)
        else:
            # a refresh: a new ID token is checked (its nonce is not this login's); without
            # one, the claims checked at login stand
            before = dict(previous.get("id_token_claims") or {})
            token = tokens.get("id_token")
            if token and token != previous.get("id_token"):
                id_claims = await self.id_claims(tokens, None)
            else:
                id_claims = before
            if id_claims.get("sub") != before.get("sub"):
                raise IdTokenError("a refreshed ID token names another subject")
        merged = dict(id_claims)
        document = await self.discovery()
        userinfo_url = document.get("userinfo_endpoint")
        if self.fetch_userinfo and userinfo_url:
            info = await get_json(
                self.provider_label,
                str(userinfo_url),
                wait=self.http_timeout,
                token=str(tokens["access_token"]),
            )
            if not isinstance(info, dict) or info.get("sub") != id_claims.get("sub"):
                raise IdTokenError("userinfo names another subject than the ID token")
            for key, value in info.items():
                if key not in ("iss", "aud", "exp", "iat", "nbf", "nonce", "azp", "sub"):
                    merged[key] = value
        return id_claims, merged

    async def identity_from_tokens(
        self, tokens: dict[str, Any], nonce: str | None, previous: Mapping[str, Any] | None
    ) -> Identity | Refused:
        try:
            id_claims, merged = await self.claims(tokens, nonce, previous)
        except IdTokenError as e:
            raise ProviderError(
                f"The hub could not verify who {self.provider_label} says you are, so you "
                "are not logged in. Please log in again; if it keeps happening, tell the "
                "hub's administrators.",
                f"{self.ident}: ID token or userinfo refused: {e}",
                403,
            ) from None
        return self.identity_from_claims(tokens, id_claims, merged)

    def identity_from_claims(
        self, tokens: Mapping[str, Any], id_claims: dict[str, Any], merged: dict[str, Any]
    ) -> Identity | Refused:
        field = self.username_field()
        raw = claim(merged, field)
        email_ok = verified(merged)
        if field == "email" and not email_ok:
            return Refused(
                f"Your email address is not verified with {self.provider_label}. Verify it "
                "there, then log in again."
            )
        if not isinstance(raw, str) or not raw:
            return Refused(
                f"{capital(self.provider_label)} did not say who you are (no {field!r} in "
                "its answer). Tell the hub's administrators: username_claim may need changing."
            )
        groups = string_list(claim(merged, self.groups_claim)) if self.groups_claim else None
        allowed_by = self.allow_rules(id_claims, merged, groups or [])
        refusal = self.refusal(id_claims, merged)
        if refusal is not None:
            return refusal
        admin = None
        if self.admin_groups:
            admin = bool(set(self.admin_groups) & set(groups or []))
        email = merged.get("email") if email_ok else ""
        name = merged.get("name")
        return Identity(
            name=raw,
            admin=admin,
            groups=tuple(groups) if groups is not None else None,
            full_name=name if isinstance(name, str) else "",
            email=email if isinstance(email, str) else "",
            auth_state=self.auth_state(tokens, merged, allowed_by, id_token_claims=id_claims),
        )

    def allow_rules(
        self, id_claims: Mapping[str, Any], merged: Mapping[str, Any], groups: list[str]
    ) -> list[str]:
        """The allow rules this person meets, e.g. ['group:staff']."""
        return [f"group:{g}" for g in self.allowed_groups if g in groups]

    def refusal(self, id_claims: Mapping[str, Any], merged: Mapping[str, Any]) -> Refused | None:
        """A provider-specific reason to turn the person away (a wrong hosted domain)."""
        return None
