"""GitLab (gitlab.com or your own): OAuth2 with groups.

Who the person is comes from `GET /api/v4/user`; their groups from
`GET /api/v4/groups?min_access_level=10` (groups they are a member of, at least
as Guest), named by full path (`physics/ta-2025`). `allowed_groups` and
`admin_groups` name full paths; the listing with the person's token is the
proof of membership (scope `read_api`, asked for when groups are configured or
`manage_groups` is on). Hub group names cannot hold '/', so with
`manage_groups` a subgroup `physics/ta-2025` becomes the hub group
`physics.ta-2025`. The email kept is the one GitLab gives (GitLab confirms a
primary address before it is used).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from traitlets import List, Unicode

from hub.auth.base import Identity, Refused
from hub.auth.oauth.base import Endpoints, OAuthAuthenticator, check_url
from hub.auth.oauth.http import ProviderError, bad_answer, get_json

MAX_GROUP_PAGES = 10  # 100 groups a page


class GitLabAuthenticator(OAuthAuthenticator):
    """Log in with a GitLab account (groups may restrict who)."""

    default_id: ClassVar[str] = "gitlab"
    provider_name: ClassVar[str] = "GitLab"

    gitlab_url = Unicode(
        "https://gitlab.com",
        help="The GitLab instance's address, e.g. 'https://gitlab.example.org'.",
    ).tag(config=True)
    allowed_groups = List(
        Unicode(),
        help="GitLab groups (full paths, e.g. 'physics' or 'physics/ta-2025') whose members "
        "may log in (besides allowed_users).",
    ).tag(config=True)
    admin_groups = List(
        Unicode(),
        help="GitLab groups (full paths) whose members are the hub's admins; others are "
        "not (admin is set at each login). Empty: admin comes from admin_users only.",
    ).tag(config=True)

    def base(self) -> str:
        return str(self.gitlab_url).rstrip("/")

    def check_settings(self, hub_ip: str) -> None:
        super().check_settings(hub_ip)
        check_url("c.GitLabAuthenticator.gitlab_url", self.gitlab_url)

    async def endpoints(self) -> Endpoints:
        base = self.base()
        return Endpoints(f"{base}/oauth/authorize", f"{base}/oauth/token", "client_secret_post")

    def needs_groups(self) -> bool:
        return bool(self.allowed_groups or self.admin_groups or self.manage_groups)

    def scopes(self) -> list[str]:
        scopes = list(self.scope) or ["read_user"]
        if self.needs_groups() and "read_api" not in scopes and "api" not in scopes:
            scopes.append("read_api")
        return scopes

    async def _get(self, path: str, token: str) -> Any:
        return await get_json(
            self.provider_label,
            f"{self.base()}/api/v4{path}",
            wait=self.http_timeout,
            token=token,
        )

    async def _groups(self, token: str) -> list[str]:
        paths: list[str] = []
        for page in range(1, MAX_GROUP_PAGES + 1):
            listed = await self._get(f"/groups?min_access_level=10&per_page=100&page={page}", token)
            if not isinstance(listed, list):
                raise ProviderError(bad_answer(self.provider_label), "GET /groups: not a list")
            paths += [
                g["full_path"]
                for g in listed
                if isinstance(g, dict) and isinstance(g.get("full_path"), str)
            ]
            if len(listed) < 100:
                break
        return paths

    async def identity_from_tokens(
        self, tokens: dict[str, Any], nonce: str | None, previous: Mapping[str, Any] | None
    ) -> Identity | Refused:
        token = str(tokens["access_token"])
        user = await self._get("/user", token)
        if not isinstance(user, dict) or not isinstance(user.get("username"), str):
            raise ProviderError(bad_answer(self.provider_label), "GET /user: no username")
        if user.get("state", "active") != "active":
            return Refused("Your GitLab account is not active. Ask GitLab's administrators.")
        field = self.username_claim or "username"
        if field == "email" and not user.get("confirmed_at"):
            return Refused(
                "Your GitLab email address is not confirmed. Confirm it on GitLab, then log "
                "in again."
            )
        raw = user.get(field)
        if not isinstance(raw, str) or not raw:
            return Refused(
                f"GitLab did not say who you are (no {field!r}). Tell the hub's "
                "administrators: username_claim may need changing."
            )
        groups = await self._groups(token) if self.needs_groups() else None
        member = set(groups or [])
        allowed_by = [f"group:{g}" for g in self.allowed_groups if g in member]
        admin = bool(member & set(self.admin_groups)) if self.admin_groups else None
        email = user.get("email")
        name = user.get("name")
        return Identity(
            name=raw,
            admin=admin,
            groups=tuple(g.replace("/", ".") for g in groups)
            if self.manage_groups and groups is not None
            else None,
            full_name=name if isinstance(name, str) else "",
            email=email if isinstance(email, str) and user.get("confirmed_at") else "",
            auth_state=self.auth_state(tokens, user, allowed_by),
        )
