"""GitHub: OAuth2 (not OpenID Connect) with organizations and teams.

Who the person is comes from `GET /user` with their token. `allowed_organizations`
entries are `org` or `org:team`; membership is what GitHub's API says for this
token: `GET /user/memberships/orgs/<org>` (state `active`; a pending invitation
is not membership) and `GET /orgs/<org>/teams/<team>/memberships/<login>`. Those
need the `read:org` scope, asked for whenever organizations or teams are
configured (the person sees it on GitHub's consent page). A public email on the
profile is not proof of anything, so the email kept is the primary verified one
from `GET /user/emails`.

With `c.Authenticator.manage_groups`, the person's teams become hub groups named
`<org>.<team>` (hub group names cannot hold ':').

`github_url` and `github_api_url` point at GitHub Enterprise Server
(`https://github.example.org` and `https://github.example.org/api/v3`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from traitlets import List, TraitError, Unicode, validate

from hub.auth.base import Identity, Refused
from hub.auth.oauth.base import Endpoints, OAuthAuthenticator, check_url
from hub.auth.oauth.http import ProviderError, bad_answer, get_json, request, where

MAX_TEAM_PAGES = 10  # 100 teams a page


def _entries(value: list[str], setting: str) -> list[str]:
    for entry in value:
        org, _, team = entry.partition(":")
        if not org or ":" in team or "/" in entry or (":" in entry and not team):
            raise TraitError(f"{setting}: {entry!r} is not 'org' or 'org:team'")
    return value


class GitHubAuthenticator(OAuthAuthenticator):
    """Log in with a GitHub account (organizations and teams may restrict who)."""

    default_id: ClassVar[str] = "github"
    provider_name: ClassVar[str] = "GitHub"

    github_url = Unicode(
        "https://github.com",
        help="GitHub's web address (where people log in); GitHub Enterprise Server's for "
        "one, e.g. 'https://github.example.org'.",
    ).tag(config=True)
    github_api_url = Unicode(
        "",
        help="GitHub's API address. '' for https://api.github.com with github.com, and "
        "<github_url>/api/v3 otherwise (GitHub Enterprise Server).",
    ).tag(config=True)
    allowed_organizations = List(
        Unicode(),
        help="GitHub organizations ('physics') or teams ('physics:ta-2025') whose active "
        "members may log in (besides allowed_users), checked with GitHub's API at each "
        "login.",
    ).tag(config=True)
    admin_organizations = List(
        Unicode(),
        help="GitHub organizations or teams ('org' or 'org:team') whose members are the "
        "hub's admins; others are not (admin is set at each login). Empty: admin comes "
        "from admin_users only.",
    ).tag(config=True)

    @validate("allowed_organizations", "admin_organizations")
    def _valid_entries(self, proposal: Any) -> list[str]:
        return _entries(list(proposal["value"]), proposal["trait"].name)

    def api_url(self) -> str:
        if self.github_api_url:
            return str(self.github_api_url).rstrip("/")
        base = str(self.github_url).rstrip("/")
        return "https://api.github.com" if base == "https://github.com" else f"{base}/api/v3"

    def check_settings(self, hub_ip: str) -> None:
        super().check_settings(hub_ip)
        check_url("c.GitHubAuthenticator.github_url", self.github_url)
        check_url("c.GitHubAuthenticator.github_api_url", self.api_url())

    async def endpoints(self) -> Endpoints:
        base = str(self.github_url).rstrip("/")
        return Endpoints(
            f"{base}/login/oauth/authorize",
            f"{base}/login/oauth/access_token",
            "client_secret_post",
        )

    def scopes(self) -> list[str]:
        scopes = list(self.scope) or ["read:user", "user:email"]
        if (self.allowed_organizations or self.admin_organizations or self.manage_groups) and (
            "read:org" not in scopes
        ):
            scopes.append("read:org")
        return scopes

    # --- GitHub's API ------------------------------------------------------------------

    async def _get(self, path: str, token: str) -> Any:
        return await get_json(
            self.provider_label, self.api_url() + path, wait=self.http_timeout, token=token
        )

    async def _member(self, entry: str, login: str, token: str) -> bool:
        """Whether GitHub says `login` is an active member of `org` or `org:team`."""
        org, _, team = entry.partition(":")
        if team:
            path = f"/orgs/{quote(org, safe='')}/teams/{quote(team, safe='')}/memberships/"
            path += quote(login, safe="")
        else:
            path = f"/user/memberships/orgs/{quote(org, safe='')}"
        url = self.api_url() + path
        answer = await request(
            self.provider_label,
            url,
            wait=self.http_timeout,
            headers={"Authorization": f"Bearer {token}"},
        )
        if answer.status in (403, 404):  # not a member, or the org hides it from this token
            return False
        if answer.status == 401:
            raise ProviderError(
                "GitHub no longer accepts this login. Please log in again.",
                f"GET {where(url)} -> 401",
                401,
            )
        if not answer.ok or not isinstance(answer.body, dict):
            raise ProviderError(
                bad_answer(self.provider_label), f"GET {where(url)} -> {answer.status}"
            )
        return answer.body.get("state") == "active"

    async def _teams(self, token: str) -> list[str]:
        groups: list[str] = []
        for page in range(1, MAX_TEAM_PAGES + 1):
            listed = await self._get(f"/user/teams?per_page=100&page={page}", token)
            if not isinstance(listed, list):
                break
            for team in listed:
                org = (
                    (team.get("organization") or {}).get("login")
                    if isinstance(team, dict)
                    else None
                )
                slug = team.get("slug") if isinstance(team, dict) else None
                if isinstance(org, str) and isinstance(slug, str):
                    groups.append(f"{org}.{slug}")
            if len(listed) < 100:
                break
        return groups

    async def _email(self, token: str) -> str:
        try:
            emails = await self._get("/user/emails", token)
        except ProviderError:
            return ""  # the scope was not granted: no email, no harm
        for entry in emails if isinstance(emails, list) else []:
            if isinstance(entry, dict) and entry.get("primary") and entry.get("verified") is True:
                email = entry.get("email")
                return email if isinstance(email, str) else ""
        return ""

    async def identity_from_tokens(
        self, tokens: dict[str, Any], nonce: str | None, previous: Mapping[str, Any] | None
    ) -> Identity | Refused:
        token = str(tokens["access_token"])
        user = await self._get("/user", token)
        if not isinstance(user, dict) or not isinstance(user.get("login"), str):
            raise ProviderError(bad_answer(self.provider_label), "GET /user: no login")
        login = str(user["login"])
        field = self.username_claim or "login"
        if field == "email":
            raw: Any = await self._email(token)
            if not raw:
                return Refused(
                    "Your GitHub account has no verified primary email address. Verify one "
                    "on GitHub, then log in again."
                )
        else:
            raw = user.get(field)
        if not isinstance(raw, str | int) or raw == "":
            return Refused(
                f"GitHub did not say who you are (no {field!r}). Tell the hub's "
                "administrators: username_claim may need changing."
            )
        entries = list(dict.fromkeys([*self.allowed_organizations, *self.admin_organizations]))
        checks = await asyncio.gather(*(self._member(e, login, token) for e in entries))
        member = {e for e, ok in zip(entries, checks, strict=True) if ok}
        allowed_by = [f"organization:{e}" for e in self.allowed_organizations if e in member]
        admin = bool(member & set(self.admin_organizations)) if self.admin_organizations else None
        groups = tuple(await self._teams(token)) if self.manage_groups else None
        email = await self._email(token)
        name = user.get("name")
        return Identity(
            name=str(raw),
            admin=admin,
            groups=groups,
            full_name=name if isinstance(name, str) else "",
            email=email,
            auth_state=self.auth_state(tokens, user, allowed_by),
        )
