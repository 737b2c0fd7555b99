"""The OAuth presets (GitHub, GitLab, Google, Entra) and the attacks an OAuth client
must turn away, against a local stand-in for those providers (tests/oauthprovider.py):
organizations, teams and groups checked where the provider proves them; Google's
hosted domain on the `hd` claim only; Entra's tenant; forged, expired and misdirected
ID tokens; provider failures; bad settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from hub.auth.oauth.pending import STATE_COOKIE
from hub.db.models import User
from hub.errors import ConfigError
from hub.pages.base import LOGIN_COOKIE
from tests.conftest import HubFactory, LogCapture, RunningHub
from tests.oauthprovider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_TENANT,
    TENANT,
    FakeProvider,
    fake_provider,
)
from tests.test_auth_login import _error
from tests.visitor import Page, Visitor, refused


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        yield provider


def client(cls: str) -> str:
    return f"c.{cls}.client_id = {CLIENT_ID!r}\nc.{cls}.client_secret = {CLIENT_SECRET!r}\n"


async def start(hub_factory: HubFactory, db_url: str, config: str) -> RunningHub:
    return await hub_factory(config=config)


async def log_in(visitor: Visitor, hub: RunningHub, ident: str) -> Page:
    """The hub's login start, the provider's authorization (already logged in there),
    and the callback; returns the callback's answer."""
    begin = await visitor.fetch(f"{hub.url}oauth_login/{ident}")
    assert begin.status == 302, begin.text[:300]
    assert visitor.cookie(STATE_COOKIE)
    at_provider = await visitor.fetch(begin.location)
    assert at_provider.status == 302, at_provider.text[:300]
    assert at_provider.location.startswith(hub.url + "oauth_callback")
    return await visitor.fetch(at_provider.location)


def logged_in(page: Page, visitor: Visitor) -> bool:
    return page.status == 302 and visitor.cookie(LOGIN_COOKIE) is not None


async def user(hub: RunningHub, name: str) -> dict[str, Any] | None:
    def read(session: Any) -> dict[str, Any] | None:
        found = session.scalar(select(User).where(User.name == name))
        if found is None:
            return None
        return {
            "admin": found.admin,
            "groups": sorted(g.name for g in found.groups),
            "email": found.email,
            "full_name": found.full_name,
            "provider": found.auth_provider,
        }

    return await hub.db.run(read)


async def user_names(hub: RunningHub) -> list[str]:
    return sorted(u["name"] for u in (await hub.api("GET", "/users")).json())


# --- GitHub ----------------------------------------------------------------------------


async def test_github_organizations_and_teams(
    hub_factory: HubFactory, db_url: str, fake: FakeProvider
) -> None:
    hub = await start(
        hub_factory,
        db_url,
        "c.Hub.authenticator_class = 'github'\n"
        + client("GitHubAuthenticator")
        + f"c.GitHubAuthenticator.github_url = {fake.url!r}\n"
        + f"c.GitHubAuthenticator.github_api_url = {fake.url + '/api/v3'!r}\n"
        + "c.GitHubAuthenticator.allowed_organizations = ['physics', 'chem:ta']\n"
        + "c.GitHubAuthenticator.admin_organizations = ['physics:staff']\n"
        + "c.Authenticator.manage_groups = True\n",
    )
    fake.users = {
        "ann": {"name": "Ann Smith", "email": "public@example.org"},
        "bob": {"name": "Bob"},
        "carl": {"name": "Carl"},
        "dan": {"name": "Dan"},
    }
    fake.memberships = {
        "ann": {"physics": "active", "physics:staff": "active"},
        "bob": {"chem:ta": "active", "chem": "active"},
        "carl": {"physics": "pending"},  # an invitation is not membership
    }
    fake.emails = {
        "ann": [
            {"email": "public@example.org", "primary": False, "verified": False},
            {"email": "ann@school.example", "primary": True, "verified": True},
        ]
    }
    for name in ("ann", "bob"):
        fake.login_as = name
        visitor = Visitor()
        assert logged_in(await log_in(visitor, hub, "github"), visitor), name
    ann, bob = await user(hub, "ann"), await user(hub, "bob")
    assert ann == {
        "admin": True,
        "groups": ["physics.staff"],
        "email": "ann@school.example",  # the verified primary one, not the profile's
        "full_name": "Ann Smith",
        "provider": "github",
    }
    assert bob is not None
    assert bob["admin"] is False
    assert bob["groups"] == ["chem.ta"]
    for name in ("carl", "dan"):
        fake.login_as = name
        visitor = Visitor()
        refused(await log_in(visitor, hub, "github"), visitor, 403, "not allowed")
        assert await user(hub, name) is None
    # the authorization asked for read:org (membership checks), with PKCE and a state
    asked = fake.authorize_requests[0]
    assert asked["scope"].split() == ["read:user", "user:email", "read:org"]
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["code_challenge"]) == 43
    assert len(asked["state"]) >= 32
    assert "nonce" not in asked  # OAuth2, not OpenID Connect
    assert asked["redirect_uri"] == hub.url + "oauth_callback"


async def test_github_enterprise_and_default_urls() -> None:
    from hub.auth.oauth.github import GitHubAuthenticator

    assert GitHubAuthenticator().api_url() == "https://api.github.com"
    ghe = GitHubAuthenticator(github_url="https://github.example.org/")
    assert ghe.api_url() == "https://github.example.org/api/v3"
    endpoints = await ghe.endpoints()
    assert endpoints.authorize == "https://github.example.org/login/oauth/authorize"
    assert endpoints.token == "https://github.example.org/login/oauth/access_token"


# --- GitLab ----------------------------------------------------------------------------


async def test_gitlab_groups(hub_factory: HubFactory, db_url: str, fake: FakeProvider) -> None:
    hub = await start(
        hub_factory,
        db_url,
        "c.Hub.authenticator_class = 'gitlab'\n"
        + client("GitLabAuthenticator")
        + f"c.GitLabAuthenticator.gitlab_url = {fake.url!r}\n"
        + "c.GitLabAuthenticator.allowed_groups = ['physics/ta-2025']\n"
        + "c.GitLabAuthenticator.admin_groups = ['staff']\n"
        + "c.Authenticator.manage_groups = True\n",
    )
    fake.users = {
        "ann": {"name": "Ann", "email": "ann@school.example", "confirmed_at": "2024-01-01"},
        "bob": {"name": "Bob", "email": "bob@school.example"},
    }
    fake.groups = {"ann": ["physics", "physics/ta-2025", "staff"], "bob": ["physics"]}
    fake.login_as = "ann"
    visitor = Visitor()
    assert logged_in(await log_in(visitor, hub, "gitlab"), visitor)
    assert await user(hub, "ann") == {
        "admin": True,
        "groups": ["physics", "physics.ta-2025", "staff"],
        "email": "ann@school.example",
        "full_name": "Ann",
        "provider": "gitlab",
    }
    assert fake.authorize_requests[0]["scope"].split() == ["read_user", "read_api"]
    # a member of the parent group only is not a member of the allowed subgroup
    fake.login_as = "bob"
    visitor = Visitor()
    refused(await log_in(visitor, hub, "gitlab"), visitor, 403, "not allowed")
    assert await user(hub, "bob") is None


# --- Google ----------------------------------------------------------------------------


def google(fake: FakeProvider, extra: str = "") -> str:
    return (
        "c.Hub.authenticator_class = 'google'\n"
        + client("GoogleAuthenticator")
        + f"c.GoogleAuthenticator.issuer = {fake.url + '/google'!r}\n"
        + extra
    )


async def test_google_hosted_domain_is_the_hd_claim_not_the_email(
    hub_factory: HubFactory, db_url: str, fake: FakeProvider
) -> None:
    hub = await start(
        hub_factory, db_url, google(fake, "c.GoogleAuthenticator.hosted_domain = ['school.edu']\n")
    )
    fake.users = {
        "ann": {
            "email": "ann@school.edu",
            "email_verified": True,
            "hd": "school.edu",
            "name": "Ann",
        },
        # a personal Google account carrying the school's address: verified, but no hd
        "eve": {"email": "eve@school.edu", "email_verified": True},
        # another Workspace domain's account with an address at the school
        "mal": {"email": "mal@school.edu", "email_verified": True, "hd": "other.edu"},
    }
    fake.login_as = "ann"
    visitor = Visitor()
    assert logged_in(await log_in(visitor, hub, "google"), visitor)
    # one hosted domain, email as name: the name without '@school.edu'
    assert await user_names(hub) == ["admin", "ann"]
    assert (await user(hub, "ann") or {})["email"] == "ann@school.edu"
    assert fake.authorize_requests[0]["hd"] == "school.edu"
    assert fake.authorize_requests[0]["nonce"]
    for name in ("eve", "mal"):
        fake.login_as = name
        visitor = Visitor()
        refused(await log_in(visitor, hub, "google"), visitor, 403, "Only accounts of school.edu")
    assert await user_names(hub) == ["admin", "ann"]


async def test_unverified_email_never_becomes_a_username(
    hub_factory: HubFactory, db_url: str, fake: FakeProvider
) -> None:
    hub = await start(hub_factory, db_url, google(fake, "c.Authenticator.allow_all = True\n"))
    fake.users = {
        "bob": {"email": "bob@gmail.example", "email_verified": False},
        "eve": {"email": "admin@gmail.example"},  # email_verified missing
        "ann": {"email": "ann@gmail.example", "email_verified": "true"},
    }
    for name in ("bob", "eve"):
        fake.login_as = name
        visitor = Visitor()
        refused(await log_in(visitor, hub, "google"), visitor, 403, "not verified")
    assert await user_names(hub) == ["admin"]
    fake.login_as = "ann"
    visitor = Visitor()
    assert logged_in(await log_in(visitor, hub, "google"), visitor)
    assert await user_names(hub) == ["admin", "ann@gmail.example"]


# --- Entra -----------------------------------------------------------------------------


def entra(fake: FakeProvider, extra: str = "") -> str:
    return (
        "c.Hub.authenticator_class = 'entra'\n"
        + client("EntraAuthenticator")
        + f"c.EntraAuthenticator.tenant_id = {TENANT!r}\n"
        + f"c.EntraAuthenticator.authority_url = {fake.url + '/entra'!r}\n"
        + extra
    )


async def test_entra_tenant_and_groups(
    hub_factory: HubFactory, db_url: str, fake: FakeProvider
) -> None:
    staff, students = "0a0a0a0a-0000-0000-0000-000000000001", "0b0b0b0b-0000-0000-0000-000000000002"
    hub = await start(
        hub_factory,
        db_url,
        entra(
            fake,
            f"c.EntraAuthenticator.allowed_groups = [{students!r}]\n"
            f"c.EntraAuthenticator.admin_groups = [{staff!r}]\n"
            "c.Authenticator.manage_groups = True\n",
        ),
    )
    fake.users = {
        "ann": {
            "preferred_username": "ann@school.example",
            "tid": TENANT,
            "groups": [staff, students],
            "name": "Ann",
        },
        "bob": {"preferred_username": "bob@school.example", "tid": TENANT, "groups": [students]},
        "eve": {"preferred_username": "eve@school.example", "tid": TENANT, "groups": []},
    }
    for name in ("ann", "bob"):
        fake.login_as = name
        visitor = Visitor()
        assert logged_in(await log_in(visitor, hub, "entra"), visitor), name
    ann = await user(hub, "ann@school.example")
    assert ann is not None
    assert ann["admin"] is True
    assert ann["groups"] == sorted([staff, students])
    assert (await user(hub, "bob@school.example") or {})["admin"] is False
    fake.login_as = "eve"
    visitor = Visitor()
    refused(await log_in(visitor, hub, "entra"), visitor, 403, "not allowed")
    # an ID token of another tenant: wrong issuer, or the right issuer with another tid
    fake.login_as = "bob"
    for changes in ({"iss": f"{fake.url}/entra/{OTHER_TENANT}/v2.0"}, {"tid": OTHER_TENANT}):
        fake.id_token_changes = changes
        visitor = Visitor()
        page = await log_in(visitor, hub, "entra")
        assert page.status == 403, page.text[:300]
        assert visitor.cookie(LOGIN_COOKIE) is None
    assert await user_names(hub) == ["admin", "ann@school.example", "bob@school.example"]


# --- provider failures -----------------------------------------------------------------


def github(fake: FakeProvider, extra: str = "") -> str:
    return (
        "c.Hub.authenticator_class = ['github', 'native']\n"
        + client("GitHubAuthenticator")
        + f"c.GitHubAuthenticator.github_url = {fake.url!r}\n"
        + f"c.GitHubAuthenticator.github_api_url = {fake.url + '/api/v3'!r}\n"
        + "c.GitHubAuthenticator.allow_all = True\n"
        + extra
    )


@pytest.mark.parametrize(
    ("failure", "status", "fragment"),
    [
        ({"token_answer": (500, b"<html>Oops</html>")}, 502, "answer it could not use"),
        ({"token_answer": (200, b"{not json")}, 502, "answer it could not use"),
        ({"token_answer": (200, b'{"token_type": "bearer"}')}, 502, "answer it could not use"),
        ({"token_answer": (200, b"[1, 2]")}, 502, "answer it could not use"),
        ({"token_answer": (400, b'{"error": "invalid_grant"}')}, 400, "did not accept"),
        ({"token_answer": (401, b'{"error": "invalid_client"}')}, 502, "did not accept"),
        ({"token_delay": 3.0}, 502, "could not reach"),
        ({"authorize_error": "access_denied"}, 403, "did not allow this hub"),
        ({"authorize_error": "server_error"}, 400, "had a problem"),
        ({"authorize_error": "odd<script>"}, 400, "did not log you in"),
    ],
)
async def test_provider_failures_give_a_clear_page_and_change_nothing(
    hub_factory: HubFactory,
    fake: FakeProvider,
    hub_logs: LogCapture,
    failure: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    hub = await hub_factory(config=github(fake, "c.GitHubAuthenticator.http_timeout = 0.5\n"))
    fake.users = {"ann": {"name": "Ann"}}
    fake.login_as = "ann"
    for key, value in failure.items():
        setattr(fake, key, value)
    visitor = Visitor()
    page = await log_in(visitor, hub, "github")
    refused(page, visitor, status, fragment)
    assert "<script>" not in _error(page.body)
    assert await user_names(hub) == ["admin"]
    hub_logs.assert_no_secrets(CLIENT_SECRET, *fake.codes, *fake.access)


async def test_the_provider_down_at_login_start(hub_factory: HubFactory, db_url: str) -> None:
    from tests.pg import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    hub = await start(
        hub_factory,
        db_url,
        "c.Hub.authenticator_class = 'oidc'\n"
        + client("GenericOIDCAuthenticator")
        + f"c.GenericOIDCAuthenticator.issuer = {nowhere!r}\n",
    )
    visitor = Visitor()
    page = await visitor.fetch(hub.url + "oauth_login/oidc")
    refused(page, visitor, 502, "could not reach the identity provider")
    assert visitor.cookie(STATE_COOKIE) is None


async def test_unknown_way_in(hub_factory: HubFactory, fake: FakeProvider) -> None:
    hub = await hub_factory(config=github(fake))
    visitor = Visitor()
    for ident in ("nosuch", "native", "x" * 5000):
        page = await visitor.fetch(hub.url + "oauth_login/" + ident)
        refused(page, visitor, 404, "no such way to log in")


async def test_a_secret_from_the_environment(
    hub_factory: HubFactory, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATRIUM_GITHUB_CLIENT_SECRET", CLIENT_SECRET)
    config = github(fake).replace(f"c.GitHubAuthenticator.client_secret = {CLIENT_SECRET!r}\n", "")
    hub = await hub_factory(config=config)
    fake.users = {"ann": {"name": "Ann"}}
    fake.login_as = "ann"
    visitor = Visitor()
    assert logged_in(await log_in(visitor, hub, "github"), visitor)


# --- settings --------------------------------------------------------------------------


async def test_bad_settings_stop_the_hub(
    hub_factory: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATRIUM_OAUTH_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("ATRIUM_OIDC_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("OAUTH_CLIENT_SECRET", raising=False)
    oidc = "c.Hub.authenticator_class = 'oidc'\n"
    good = oidc + client("GenericOIDCAuthenticator")
    issuer = "c.GenericOIDCAuthenticator.issuer = 'https://id.example.org/realms/school'\n"
    cases = {
        oidc + issuer: "client_id must be set",
        oidc + issuer + "c.GenericOIDCAuthenticator.client_id = 'has space'\n": "spaces",
        oidc + issuer + "c.GenericOIDCAuthenticator.client_id = 'hub'\n": (
            "ATRIUM_OIDC_CLIENT_SECRET, ATRIUM_OAUTH_CLIENT_SECRET or OAUTH_CLIENT_SECRET"
        ),
        good: "issuer must be set",
        good + "c.GenericOIDCAuthenticator.issuer = 'id.example.org'\n": "absolute https://",
        good + "c.GenericOIDCAuthenticator.issuer = 'http://id.example.org'\n": "must use https",
        good + "c.GenericOIDCAuthenticator.issuer = 'https://u:p@id.example.org'\n": (
            "credentials"
        ),
        good + issuer + "c.GenericOIDCAuthenticator.id_token_algorithms = ['none']\n": (
            "never 'none'"
        ),
        good + issuer + "c.GenericOIDCAuthenticator.oauth_callback_url = 'callback'\n": (
            "oauth_callback_url must be an absolute"
        ),
        good + issuer + "c.GenericOIDCAuthenticator.extra_authorize_params = {'state': 'x'}\n": (
            "cannot set state"
        ),
        good + issuer + "c.GenericOIDCAuthenticator.http_timeout = 0\n": "must be positive",
        "c.Hub.authenticator_class = 'github'\n"
        + client("GitHubAuthenticator")
        + "c.GitHubAuthenticator.allowed_organizations = ['org:team:x']\n": "not 'org' or",
        "c.Hub.authenticator_class = 'github'\n"
        + client("GitHubAuthenticator")
        + "c.GitHubAuthenticator.github_url = 'http://github.example.org'\n": "must use https",
        "c.Hub.authenticator_class = 'entra'\n" + client("EntraAuthenticator"): (
            "tenant_id must be the tenant's id"
        ),
        "c.Hub.authenticator_class = 'entra'\n"
        + client("EntraAuthenticator")
        + "c.EntraAuthenticator.tenant_id = 'common'\n": "not 'common'",
        "c.Hub.authenticator_class = 'gitlab'\n"
        + client("GitLabAuthenticator")
        + "c.GitLabAuthenticator.gitlab_url = ''\n": "gitlab_url must be set",
    }
    for config, fragment in cases.items():
        with pytest.raises(ConfigError) as info:
            await hub_factory(config=config)
        assert fragment in str(info.value), (config, str(info.value))
        assert CLIENT_SECRET not in str(info.value)


def test_every_setting_has_help() -> None:
    from hub.auth.oauth.entra import EntraAuthenticator
    from hub.auth.oauth.github import GitHubAuthenticator
    from hub.auth.oauth.gitlab import GitLabAuthenticator
    from hub.auth.oauth.google import GoogleAuthenticator
    from hub.auth.oauth.oidc import GenericOIDCAuthenticator

    for cls in (
        GenericOIDCAuthenticator,
        GitHubAuthenticator,
        GitLabAuthenticator,
        GoogleAuthenticator,
        EntraAuthenticator,
    ):
        for name, trait in cls.class_traits(config=True).items():
            assert trait.help, f"{cls.__name__}.{name} has no help"
        assert cls.kind == "redirect"
        assert cls.default_id in ("oidc", "github", "gitlab", "google", "entra")


# --- several providers, refresh --------------------------------------------------------


async def test_several_oauth_providers_share_one_callback(
    hub_factory: HubFactory, fake: FakeProvider
) -> None:
    hub = await hub_factory(
        config=github(fake).replace("['github', 'native']", "['github', 'oidc', 'native']")
        + client("GenericOIDCAuthenticator")
        + f"c.GenericOIDCAuthenticator.issuer = {fake.url + '/oidc'!r}\n"
        + "c.GenericOIDCAuthenticator.allow_all = True\n"
    )
    fake.users = {
        "ann": {"name": "Ann"},
        "bob": {"preferred_username": "bob", "email": "b@x.example", "email_verified": True},
    }
    login = await Visitor().fetch(hub.url + "login")
    assert "Log in with GitHub" in login.text
    assert "Log in with the identity provider" in login.text
    fake.login_as = "ann"
    visitor = Visitor()
    assert logged_in(await log_in(visitor, hub, "github"), visitor)
    fake.login_as = "bob"
    visitor = Visitor()
    assert logged_in(await log_in(visitor, hub, "oidc"), visitor)
    assert (await user(hub, "ann") or {})["provider"] == "github"
    assert (await user(hub, "bob") or {})["provider"] == "oidc"
    # a login started with GitHub, then another with the other provider in the same
    # browser: the first one's callback no longer matches this browser's pending login
    visitor = Visitor()
    fake.login_as = "ann"
    first = await visitor.fetch(hub.url + "oauth_login/github")
    first_back = await visitor.fetch(first.location)
    second = await visitor.fetch(hub.url + "oauth_login/oidc")
    assert second.status == 302
    refused(await visitor.fetch(first_back.location), visitor, 400, "log in again")
    # an account belongs to the provider that made it: bob cannot come in through GitHub
    fake.users["bob"] = {"name": "Bob on GitHub"}
    fake.login_as = "bob"
    visitor = Visitor()
    refused(await log_in(visitor, hub, "github"), visitor, 403, "logs in another way")


async def test_refresh_on_page_visits(
    hub_factory: HubFactory, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATRIUM_CRYPT_KEY", "c" * 64)
    hub = await hub_factory(
        config=github(
            fake,
            "c.GitHubAuthenticator.allow_all = False\n"
            "c.GitHubAuthenticator.allowed_organizations = ['physics']\n"
            "c.Authenticator.allow_existing_users = False\n"
            # any visit after the login asks GitHub again
            "c.Authenticator.auth_refresh_age = 0.001\n",
        )
    )
    fake.users = {"ann": {"name": "Ann"}, "bob": {"name": "Bob"}, "cat": {"name": "Cat"}}
    fake.memberships = {name: {"physics": "active"} for name in fake.users}
    visitors = {}
    for name in fake.users:
        fake.login_as = name
        visitors[name] = Visitor()
        assert logged_in(await log_in(visitors[name], hub, "github"), visitors[name])
        assert (await visitors[name].fetch(hub.url + "home")).status == 200
    # Ann leaves the organization, Bob's token is revoked, GitHub's API fails for Cat
    del fake.memberships["ann"]
    for issued in (fake.access, fake.refresh):
        for token, (login, _prefix) in list(issued.items()):
            if login == "bob":
                del issued[token]
    assert (await visitors["ann"].fetch(hub.url + "home")).status == 302
    assert (await visitors["bob"].fetch(hub.url + "home")).status == 302
    fake.memberships["cat"] = {"physics": "weird"}
    fake.users["cat"] = {"login": None}  # /user answers without a login: a bad answer
    assert (await visitors["cat"].fetch(hub.url + "home")).status == 200
    # the refresh token the failed refresh got in exchange (GitHub rotates them) was kept
    fake.users["cat"] = {"name": "Cat"}
    fake.memberships["cat"] = {"physics": "active"}
    assert (await visitors["cat"].fetch(hub.url + "home")).status == 200
    assert (await visitors["cat"].fetch(hub.url + "home")).status == 200


async def test_a_discovery_document_for_another_issuer(
    hub_factory: HubFactory, fake: FakeProvider, hub_logs: LogCapture
) -> None:
    """The issuer in the discovery document must be the configured one, exactly."""
    hub = await hub_factory(
        config="c.Hub.authenticator_class = ['oidc', 'native']\n"
        + client("GenericOIDCAuthenticator")
        + f"c.GenericOIDCAuthenticator.issuer = {fake.url + '/oidc/'!r}\n"
    )
    visitor = Visitor()
    page = await visitor.fetch(hub.url + "oauth_login/oidc")
    refused(page, visitor, 502, "answer it could not use")
    assert visitor.cookie(STATE_COOKIE) is None
    assert "is not" in hub_logs.text()


async def test_the_callback_url_derived_or_pinned(
    hub_factory: HubFactory, fake: FakeProvider
) -> None:
    fake.users = {"ann": {"name": "Ann"}}
    fake.login_as = "ann"
    pinned = "https://hub.example.org/hub/oauth_callback"
    hub = await hub_factory(
        config=github(fake).replace("['github', 'native']", "['github', 'oidc', 'native']")
        + client("GenericOIDCAuthenticator")
        + f"c.GenericOIDCAuthenticator.issuer = {fake.url + '/oidc'!r}\n"
        + f"c.GitHubAuthenticator.oauth_callback_url = {pinned!r}\n"
    )
    hub_for_localhost = hub.url.replace("127.0.0.1", "localhost")
    # derived from the request: the name the browser used
    begin = await Visitor().fetch(hub_for_localhost + "oauth_login/oidc")
    assert begin.status == 302
    assert "redirect_uri=" + quote(hub_for_localhost + "oauth_callback", safe="") in begin.location
    # pinned: whatever name the browser used, for the authorization and the code exchange
    visitor = Visitor()
    begin = await visitor.fetch(hub_for_localhost + "oauth_login/github")
    at_provider = await visitor.fetch(begin.location)
    assert at_provider.location.startswith(pinned + "?")
    query = at_provider.location.split("?", 1)[1]
    done = await visitor.fetch(hub.url + "oauth_callback?" + query)
    assert logged_in(done, visitor)
