"""Google: OpenID Connect with `hosted_domain` for Google Workspace organisations.

Membership of a Workspace domain is proven by the ID token's `hd` claim, which
Google sets only for accounts the domain manages. The domain of an email
address proves nothing: a personal Google account can carry any address, e.g.
`someone@school.edu`, verified or not, and has no `hd`. So `hosted_domain` is
checked on `hd` alone, and with it set, an account without the right `hd` is
turned away even if its email address looks right.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from traitlets import List, Unicode

from hub.auth.base import Refused
from hub.auth.oauth.oidc import GenericOIDCAuthenticator

GOOGLE_ISSUER = "https://accounts.google.com"


class GoogleAuthenticator(GenericOIDCAuthenticator):
    """Log in with a Google account (Google Workspace domains with `hosted_domain`)."""

    default_id: ClassVar[str] = "google"
    provider_name: ClassVar[str] = "Google"
    default_username_claim: ClassVar[str] = "email"

    issuer = Unicode(
        GOOGLE_ISSUER,
        help="Google's issuer URL; change it only to test against a stand-in for Google.",
    ).tag(config=True)
    hosted_domain = List(
        Unicode(),
        help="Google Workspace domains whose accounts may log in, e.g. ['school.edu'], "
        "checked on the ID token's 'hd' claim (set by Google for accounts the domain "
        "manages), never on the email address. When set, other accounts are turned away. "
        "With one domain and the email as username, the '@domain' is left off names.",
    ).tag(config=True)

    def accepted_issuers(self) -> set[str]:
        issuers = {self.issuer_url()}
        if self.issuer_url() == GOOGLE_ISSUER:
            # Google's ID tokens may name it without the scheme
            issuers.add("accounts.google.com")
        return issuers

    def authorize_params(self) -> dict[str, str]:
        params = super().authorize_params()
        if len(self.hosted_domain) == 1:
            # a hint for Google's account chooser; the ID token's hd is what is checked
            params.setdefault("hd", self.hosted_domain[0])
        return params

    def _hd(self, id_claims: Mapping[str, Any]) -> str:
        hd = id_claims.get("hd")
        return hd.lower() if isinstance(hd, str) else ""

    def refusal(self, id_claims: Mapping[str, Any], merged: Mapping[str, Any]) -> Refused | None:
        if not self.hosted_domain:
            return None
        if self._hd(id_claims) in {d.lower() for d in self.hosted_domain}:
            return None
        domains = ", ".join(self.hosted_domain)
        return Refused(
            f"Only accounts of {domains} managed by Google Workspace may log in here. Log "
            "out of Google, then log in again with your organisation's account."
        )

    def allow_rules(
        self, id_claims: Mapping[str, Any], merged: Mapping[str, Any], groups: list[str]
    ) -> list[str]:
        rules = super().allow_rules(id_claims, merged, groups)
        hd = self._hd(id_claims)
        if hd and hd in {d.lower() for d in self.hosted_domain}:
            rules.append(f"hosted_domain:{hd}")
        return rules

    def identity_from_claims(
        self, tokens: Mapping[str, Any], id_claims: dict[str, Any], merged: dict[str, Any]
    ) -> Any:
        outcome = super().identity_from_claims(tokens, id_claims, merged)
        if (
            not isinstance(outcome, Refused)
            and len(self.hosted_domain) == 1
            and self.username_field() == "email"
        ):
            suffix = "@" + self.hosted_domain[0].lower()
            if outcome.name.lower().endswith(suffix) and self._hd(id_claims) == suffix[1:]:
                from dataclasses import replace

                outcome = replace(outcome, name=outcome.name[: -len(suffix)])
        return outcome
