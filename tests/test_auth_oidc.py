"""OpenID Connect logins (hub.auth.oauth.oidc) against a real OpenID Provider,
oidc-provider run locally (tests/oidcprovider.py), driven over HTTP by a cookie-keeping
client (tests/visitor.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import HubFactory, RunningHub
from tests.oidcprovider import OIDCProvider, add_admin, log_in_at_provider, oidc_provider
from tests.pg import free_port
from tests.visitor import Page, Visitor

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
        add_admin(db_url)
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
