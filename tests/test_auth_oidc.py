"""OpenID Connect logins (hub.auth.oauth.oidc) against a real OpenID Provider,
oidc-provider run locally (tests/oidcprovider.py), driven over HTTP by a cookie-keeping
client (tests/visitor.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from tornado.web import create_signed_value, decode_signed_value

from hub.auth.base import Identity
from hub.auth.crypto import KEY_ENV, Crypter
from hub.auth.oauth.idtoken import IdTokenError, check_claims
from hub.auth.oauth.pending import STATE_COOKIE, Pending
from hub.db.models import User
from tests.conftest import HubFactory, LogCapture, RunningHub
from tests.oauthprovider import CLIENT_ID as FAKE_CLIENT
from tests.oauthprovider import CLIENT_SECRET as FAKE_SECRET
from tests.oauthprovider import FakeProvider, fake_provider
from tests.oidcprovider import (
    CLIENT_SECRET,
    OIDCProvider,
    log_in_at_provider,
    oidc_provider,
)
from tests.pg import free_port
from tests.visitor import Page, Visitor, refused

KEY = "b" * 64
ACCOUNTS: dict[str, dict[str, Any]] = {
    "ann": {
        "preferred_username": "ann",
        "email": "ann@school.example",
        "email_verified": True,
        "name": "Ann Smith",
        "groups": ["physics", "staff"],
    },
    "bob": {
        "preferred_username": "bob",
        "email": "bob@school.example",
        "email_verified": False,
        "name": "Bob Jones",
        "groups": ["physics"],
    },
    "eve": {"preferred_username": "eve", "email": "eve@school.example", "groups": []},
}


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


@dataclass
class Setup:
    hub: RunningHub
    provider: OIDCProvider

    @property
    def callback(self) -> str:
        return self.hub.url + "oauth_callback"


@pytest.fixture
async def make_setup(hub_factory: HubFactory, db_url: str) -> AsyncIterator[Any]:
    """Start a hub with `config` (the provider's settings are added) and the provider."""
    started: list[Any] = []

    async def make(config: str = "", scopes: str = "openid email profile groups") -> Setup:
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        hub = await hub_factory(
            config=(
                "c.Hub.authenticator_class = 'oidc'\n"
                f"c.GenericOIDCAuthenticator.issuer = {issuer!r}\n"
                "c.GenericOIDCAuthenticator.client_id = 'atrium-hub'\n"
                "c.GenericOIDCAuthenticator.client_secret = "
                "'provider-secret-for-tests-0123456789'\n"
                f"c.GenericOIDCAuthenticator.scope = {scopes.split()!r}\n" + config
            )
        )
        cm = oidc_provider(port, [hub.url + "oauth_callback"], ACCOUNTS)
        provider = await cm.__aenter__()
        started.append(cm)
        return Setup(hub, provider)

    yield make
    for cm in started:
        await cm.__aexit__(None, None, None)


async def start_login(visitor: Visitor, setup: Setup, next_url: str = "") -> Page:
    """From the hub's login page to the provider's login page."""
    login = await visitor.fetch(setup.hub.url + "login")
    assert login.status == 200
    assert "Log in with the identity provider" in login.text
    start = setup.hub.url + "oauth_login/oidc" + (f"?next={next_url}" if next_url else "")
    return await visitor.follow(start)


async def log_in(visitor: Visitor, setup: Setup, login: str, next_url: str = "") -> Page:
    page = await start_login(visitor, setup, next_url)
    back = await log_in_at_provider(visitor, page, login, setup.callback)
    return await visitor.fetch(back.location)


async def users(hub: RunningHub) -> dict[str, Any]:
    return {u["name"]: u for u in (await hub.api("GET", "/users")).json()}


async def test_login_through_the_provider(make_setup: Any) -> None:
    setup = await make_setup("c.Authenticator.allow_all = True\n")
    visitor = Visitor()
    done = await log_in(visitor, setup, "ann", next_url="/hub/home")
    assert done.status == 302, done.text[:500]
    assert done.location == setup.hub.url + "home"
    assert visitor.cookie("atrium-hub-login")
    assert visitor.cookie("atrium-oauth-state") is None
    ann = (await users(setup.hub))["ann"]
    assert ann["admin"] is False
    home = await visitor.fetch(setup.hub.url + "home")
    assert home.status == 200
    assert "ann" in home.text


def cookie_secret(tmp_path: Path) -> bytes:
    return bytes.fromhex((tmp_path / "cookie_secret").read_text().strip())


async def user_row(hub: RunningHub, name: str) -> dict[str, Any] | None:
    def read(session: Any) -> dict[str, Any] | None:
        found = session.scalar(select(User).where(User.name == name))
        if found is None:
            return None
        return {
            "admin": found.admin,
            "groups": sorted(g.name for g in found.groups),
            "email": found.email,
            "full_name": found.full_name,
            "state": found.encrypted_auth_state,
        }

    return await hub.db.run(read)


# --- with the real provider ------------------------------------------------------------


async def test_identity_groups_admin_and_auth_state(
    make_setup: Any, monkeypatch: pytest.MonkeyPatch, hub_logs: LogCapture
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    setup = await make_setup(
        "c.GenericOIDCAuthenticator.allowed_groups = ['physics']\n"
        "c.GenericOIDCAuthenticator.admin_groups = ['staff']\n"
        "c.Authenticator.manage_groups = True\n"
    )
    visitor = Visitor()
    url = await callback_of(visitor, setup)
    code = parse_qs(urlsplit(url).query)["code"][0]
    done = await visitor.fetch(url)
    assert done.status == 302
    ann = await user_row(setup.hub, "ann")
    assert ann is not None
    assert ann["admin"] is True
    assert ann["groups"] == ["physics", "staff"]
    assert ann["email"] == "ann@school.example"
    assert ann["full_name"] == "Ann Smith"
    state = Crypter.from_environment().decrypt_json(ann["state"])  # type: ignore[union-attr]
    assert set(state) >= {
        "access_token",
        "refresh_token",
        "id_token",
        "token_response",
        "oauth_user",
    }
    assert state["oauth_user"]["email"] == "ann@school.example"
    assert state["allowed_by"] == ["group:physics"]
    # bob is in physics, not staff: in, not an admin; his unverified email is not kept
    visitor = Visitor()
    assert (await log_in(visitor, setup, "bob")).status == 302
    bob = await user_row(setup.hub, "bob")
    assert bob is not None
    assert bob["admin"] is False
    assert bob["email"] == ""
    # eve is in no allowed group
    visitor = Visitor()
    refused(await log_in(visitor, setup, "eve"), visitor, 403, "not allowed")
    assert await user_row(setup.hub, "eve") is None
    hub_logs.assert_no_secrets(
        code, state["access_token"], state["refresh_token"], state["id_token"], CLIENT_SECRET
    )


async def test_refresh_with_the_refresh_token(
    make_setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    setup = await make_setup(
        "c.Authenticator.allow_all = True\n", "openid email profile groups offline_access"
    )
    visitor = Visitor()
    page = await start_login(visitor, setup)
    back = await log_in_at_provider(visitor, page, "ann", setup.callback)
    assert (await visitor.fetch(back.location)).status == 302
    row = await user_row(setup.hub, "ann")
    assert row is not None
    state = Crypter.from_environment().decrypt_json(row["state"])  # type: ignore[union-attr]
    auth = setup.hub.state.auth.get("oidc")
    assert auth is not None
    assert auth.can_refresh
    fresh = await auth.refresh("ann", state)
    assert isinstance(fresh, Identity)
    assert fresh.name == "ann"
    assert fresh.auth_state is not None
    assert fresh.auth_state["access_token"] != state["access_token"]
    # a refresh token the provider does not know: no longer accepted
    assert await auth.refresh("ann", {**state, "refresh_token": "forged-refresh-token"}) is False
    # another user's state cannot refresh into this one
    assert await auth.refresh("bob", fresh.auth_state) is False


async def callback_of(visitor: Visitor, setup: Setup, login: str = "ann") -> str:
    """A login as far as the provider's redirect to the hub's callback (not followed)."""
    page = await start_login(visitor, setup)
    return (await log_in_at_provider(visitor, page, login, setup.callback)).location


async def test_state_missing_mismatched_replayed_or_expired_is_refused(
    make_setup: Any, tmp_path: Path, hub_logs: LogCapture
) -> None:
    setup = await make_setup("c.Authenticator.allow_all = True\n")
    hub = setup.hub
    # no state in the callback
    visitor = Visitor()
    url = await callback_of(visitor, setup)
    refused(await visitor.fetch(re.sub(r"state=[^&]*&?", "", url)), visitor, 400, "log in again")
    # another state than this browser's
    visitor = Visitor()
    url = await callback_of(visitor, setup)
    forged = re.sub(r"state=[^&]*", "state=" + "A" * 43, url)
    refused(await visitor.fetch(forged), visitor, 400, "log in again")
    # the callback opened in another browser (no cookie): login CSRF
    visitor = Visitor()
    url = await callback_of(visitor, setup)
    stranger = Visitor()
    refused(await stranger.fetch(url), stranger, 400, "log in again")
    # replayed: the same callback with a copy of the cookie, after a successful login
    visitor = Visitor()
    url = await callback_of(visitor, setup)
    copied = dict(visitor.jar)
    assert (await visitor.fetch(url)).status == 302
    replayer = Visitor()
    replayer.jar = copied
    refused(await replayer.fetch(url), replayer, 400, "log in again")
    assert "state already used" in hub_logs.text()
    # expired: a correctly signed cookie for a login started long ago
    visitor = Visitor()
    url = await callback_of(visitor, setup)
    raw = visitor.cookie(STATE_COOKIE)
    assert raw is not None
    value = decode_signed_value(cookie_secret(tmp_path), STATE_COOKIE, raw.strip('"'))
    assert value is not None
    pending = Pending.loads(value)
    assert pending is not None
    old = replace(pending, created=time.time() - 3600)
    signed = create_signed_value(cookie_secret(tmp_path), STATE_COOKIE, old.dumps()).decode()
    visitor.jar = {k: v for k, v in visitor.jar.items() if k[0] != STATE_COOKIE}
    visitor.jar[(STATE_COOKIE, "/hub/")] = signed
    refused(await visitor.fetch(url), visitor, 400, "log in again")
    assert "pending login expired" in hub_logs.text()
    # ann logged in once, with the one good callback
    assert [u for u in await users(hub)] == ["admin", "ann"]


async def test_bad_callback_input(make_setup: Any, hub_logs: LogCapture) -> None:
    setup = await make_setup("c.Authenticator.allow_all = True\n")
    cb = setup.callback
    cases = [
        "",
        "?code=abc",
        "?state=abc",
        "?state=" + "s" * 5000 + "&code=x",
        "?state=x&code=" + "c" * 20000,
        "?state=a&state=b&code=c",
        "?state=%ff%fe%00&code=%00%ff",
        "?error=" + "e" * 5000,
        "?error=access_denied&error_description=%3Cscript%3Ealert(1)%3C/script%3E",
        "?code=x&state=x&iss=http://evil.example",
    ]
    for query in cases:
        visitor = Visitor()
        page = await visitor.fetch(cb + query)
        refused(page, visitor, 400, "log in again")
        assert "<script>alert" not in page.text
    # with a real pending login: a code the provider never issued, another issuer
    visitor = Visitor()
    url = await callback_of(visitor, setup)
    refused(
        await visitor.fetch(re.sub(r"code=[^&]*", "code=forged", url)),
        visitor,
        400,
        "did not accept",
    )
    visitor = Visitor()
    url = await callback_of(visitor, setup)
    wrong_iss = re.sub(r"iss=[^&]*", "iss=http%3A%2F%2Fevil.example", url)
    assert wrong_iss != url
    refused(await visitor.fetch(wrong_iss), visitor, 400, "log in again")
    assert list(await users(setup.hub)) == ["admin"]
    hub_logs.assert_no_secrets(CLIENT_SECRET)


async def test_the_person_says_no_at_the_provider(make_setup: Any) -> None:
    setup = await make_setup("c.Authenticator.allow_all = True\n")
    visitor = Visitor()
    page = await start_login(visitor, setup)
    # oidc-provider's "Cancel" on its login page
    uid = page.url.rstrip("/").rsplit("/", 1)[-1]
    back = await visitor.follow(
        f"{setup.provider.issuer}/interaction/{uid}/abort", stop=setup.callback
    )
    assert "error=access_denied" in back.location
    refused(await visitor.fetch(back.location), visitor, 403, "did not allow this hub")
    assert list(await users(setup.hub)) == ["admin"]


async def test_email_as_username_only_when_verified(make_setup: Any) -> None:
    setup = await make_setup(
        "c.Authenticator.allow_all = True\nc.GenericOIDCAuthenticator.username_claim = 'email'\n"
    )
    for login in ("bob", "eve"):  # email_verified false, and missing
        visitor = Visitor()
        refused(await log_in(visitor, setup, login), visitor, 403, "not verified")
    visitor = Visitor()
    assert (await log_in(visitor, setup, "ann")).status == 302
    assert list(await users(setup.hub)) == ["admin", "ann@school.example"]


async def test_auto_login_and_the_login_button(make_setup: Any) -> None:
    setup = await make_setup(
        "c.Authenticator.allow_all = True\n"
        "c.GenericOIDCAuthenticator.auto_login = True\n"
        "c.GenericOIDCAuthenticator.display_name = 'School login'\n"
    )
    visitor = Visitor()
    page = await visitor.fetch(setup.hub.url + "login?next=%2Fhub%2Ftoken")
    assert page.status == 302
    assert page.location == setup.hub.url + "oauth_login/oidc?next=%2Fhub%2Ftoken"
    at_provider = await visitor.follow(page.location)
    back = await log_in_at_provider(visitor, at_provider, "ann", setup.callback)
    done = await visitor.fetch(back.location)
    assert done.location == setup.hub.url + "token"
    # logged out, the page shows the button (no loop back to the provider)
    out = await Visitor().fetch(setup.hub.url + "login?logged_out=1")
    assert "Log in with School login" in out.text
    # a next= off the site is not followed
    visitor = Visitor()
    page = await visitor.follow(setup.hub.url + "oauth_login/oidc?next=https://evil.example/")
    back = await log_in_at_provider(visitor, page, "ann", setup.callback)
    done = await visitor.fetch(back.location)
    assert done.status == 302
    assert done.location.startswith(setup.hub.url)


# --- forged and misdirected ID tokens, from the stand-in provider ------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        provider.users = {
            "ann": {"preferred_username": "ann", "email": "ann@x.example", "email_verified": True}
        }
        provider.login_as = "ann"
        yield provider


def fake_oidc(fake: FakeProvider, extra: str = "") -> str:
    return (
        "c.Hub.authenticator_class = ['oidc', 'native']\n"
        f"c.GenericOIDCAuthenticator.issuer = {fake.url + '/oidc'!r}\n"
        f"c.GenericOIDCAuthenticator.client_id = {FAKE_CLIENT!r}\n"
        f"c.GenericOIDCAuthenticator.client_secret = {FAKE_SECRET!r}\n"
        "c.Authenticator.allow_all = True\n" + extra
    )


async def fake_login(visitor: Visitor, hub: RunningHub) -> Page:
    begin = await visitor.fetch(f"{hub.url}oauth_login/oidc")
    assert begin.status == 302, begin.text[:300]
    at_provider = await visitor.fetch(begin.location)
    assert at_provider.status == 302, at_provider.text[:300]
    return await visitor.fetch(at_provider.location)


NOW = int(time.time())


@pytest.mark.parametrize(
    ("changes", "sign_with", "why"),
    [
        ({"nonce": "not-this-logins-nonce"}, "key", "nonce does not match"),
        ({"nonce": None}, "key", "nonce does not match"),
        ({"exp": NOW - 3600, "iat": NOW - 7200}, "key", "expired"),
        ({"iat": NOW - 7200}, "key", "issued too long ago"),
        ({"iat": NOW + 3600, "exp": NOW + 7200}, "key", "issued in the future"),
        ({"nbf": NOW + 3600}, "key", "not valid yet"),
        ({"exp": None}, "key", "exp missing"),
        ({}, "none", "algorithm 'none' is not allowed"),
        ({}, "hs256", "algorithm 'HS256' is not allowed"),
        ({}, "other-key", "signature"),
        ({"iss": "http://127.0.0.1:1/oidc"}, "key", "is not the provider's"),
        ({"aud": "another-client"}, "key", "aud does not name"),
        ({"aud": [FAKE_CLIENT, "another-client"]}, "key", "azp is not"),
        ({"aud": [FAKE_CLIENT, "x"], "azp": "x"}, "key", "azp is not"),
        ({"sub": "someone-else"}, "key", "userinfo names another subject"),
    ],
)
async def test_forged_or_misdirected_id_tokens_are_refused(
    hub_factory: HubFactory,
    fake: FakeProvider,
    hub_logs: LogCapture,
    changes: dict[str, Any],
    sign_with: str,
    why: str,
) -> None:
    hub = await hub_factory(config=fake_oidc(fake))
    fake.id_token_changes = changes
    fake.sign_with = sign_with
    visitor = Visitor()
    page = await fake_login(visitor, hub)
    refused(page, visitor, 403, "could not verify who")
    assert list(await users(hub)) == ["admin"]
    assert why in hub_logs.text()
    hub_logs.assert_no_secrets(FAKE_SECRET, *fake.access, *fake.refresh)


async def test_a_correct_id_token_and_rotated_keys(
    hub_factory: HubFactory, fake: FakeProvider
) -> None:
    hub = await hub_factory(config=fake_oidc(fake))
    # several audiences with azp naming this client are fine
    fake.id_token_changes = {"aud": [FAKE_CLIENT, "api"], "azp": FAKE_CLIENT}
    visitor = Visitor()
    assert (await fake_login(visitor, hub)).status == 302
    # the provider rotates its keys: the hub fetches the JWKS again for the new kid
    fake.rotate()
    fake.id_token_changes = {}
    visitor = Visitor()
    assert (await fake_login(visitor, hub)).status == 302
    assert list(await users(hub)) == ["admin", "ann"]


async def test_hs256_when_configured(hub_factory: HubFactory, fake: FakeProvider) -> None:
    """A provider that signs with the client secret (HS256) works only when allowed."""
    hub = await hub_factory(
        config=fake_oidc(fake, "c.GenericOIDCAuthenticator.id_token_algorithms = ['HS256']\n")
    )
    fake.sign_with = "key"  # RS256 is not on this hub's list now
    visitor = Visitor()
    refused(await fake_login(visitor, hub), visitor, 403, "could not verify who")
    assert list(await users(hub)) == ["admin"]
    fake.sign_with = "hs256"
    visitor = Visitor()
    assert (await fake_login(visitor, hub)).status == 302
    assert list(await users(hub)) == ["admin", "ann"]


async def test_an_unknown_key_id_fetches_the_keys_once(
    hub_factory: HubFactory, fake: FakeProvider
) -> None:
    hub = await hub_factory(config=fake_oidc(fake))
    visitor = Visitor()
    assert (await fake_login(visitor, hub)).status == 302
    assert fake.jwks_requests == 1  # kept between logins
    fake.sign_with = "unknown-kid"
    visitor = Visitor()
    refused(await fake_login(visitor, hub), visitor, 403, "could not verify who")
    assert fake.jwks_requests == 2  # fetched again once for the unknown kid, no more
    visitor = Visitor()
    refused(await fake_login(visitor, hub), visitor, 403, "could not verify who")
    assert fake.jwks_requests == 3
    assert list(await users(hub)) == ["admin", "ann"]


def test_clock_leeway_on_exp_iat_and_nbf() -> None:
    now = 1_800_000_000.0
    base = {"iss": "https://id.example", "aud": "hub", "sub": "ann", "nonce": "n"}

    def check(**claims: Any) -> str:
        try:
            check_claims(
                {**base, **claims},
                issuers={"https://id.example"},
                client_id="hub",
                nonce="n",
                leeway=60,
                max_age=600,
                now=now,
            )
        except IdTokenError as e:
            return str(e)
        return "ok"

    assert check(iat=now, exp=now + 300) == "ok"
    assert check(iat=now - 400, exp=now - 30) == "ok"  # expired within the leeway
    assert check(iat=now - 400, exp=now - 61) == "expired"
    assert check(iat=now + 30, exp=now + 300) == "ok"
    assert check(iat=now + 61, exp=now + 300) == "issued in the future"
    assert check(iat=now, exp=now + 300, nbf=now + 59) == "ok"
    assert check(iat=now, exp=now + 300, nbf=now + 61) == "not valid yet (nbf)"
    assert check(iat=now, exp="soon") == "exp is not a number"
    assert check(iat=now, exp=True) == "exp is not a number"
    assert check(iat=now, exp=now + 300, aud=["hub", "api"], azp="hub") == "ok"
    assert check(iat=now, exp=now + 300, aud=["hub", "api"]) == "azp is not this hub's client id"
    assert check(iat=now, exp=now + 300, aud=42) == "aud missing or malformed"
    assert check(iat=now, exp=now + 300, sub="") == "sub missing"
