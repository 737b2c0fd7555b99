"""Logging in through an OpenID Provider, in Chromium: the hub's login page offers
"Log in with School login" beside its own accounts; the button leads to the provider
(oidc-provider, run locally), where the person signs in and consents; the provider
sends them back and they land on the page they first asked for, logged in, with the
name, email and groups the provider gave. A refusal (a person no allowed group
holds) comes back to the login page with the reason. The hub's pages pass axe-core
and break none of their own CSP.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.a11y import assert_accessible
from tests.browser import browser_page, watch_console
from tests.conftest import HubFactory
from tests.oidcprovider import CLIENT_ID, CLIENT_SECRET, oidc_provider
from tests.pg import free_port

LOAD = 30_000  # ms
ACCOUNTS = {
    "ann": {
        "preferred_username": "ann",
        "email": "ann@school.example",
        "email_verified": True,
        "name": "Ann Smith",
        "groups": ["physics"],
    },
    "eve": {"preferred_username": "eve", "email": "eve@x.example", "groups": ["history"]},
}


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


async def provider_login(page: Any, login: str, shots: Path, prefix: str) -> None:
    """oidc-provider's development pages: sign in, then consent."""
    await page.wait_for_selector("input[name=login]", timeout=LOAD)
    await page.screenshot(path=str(shots / f"{prefix}-provider-login.png"))
    await page.fill("input[name=login]", login)
    await page.fill("input[name=password]", "any password")
    await page.click("button[type=submit]")
    await page.wait_for_selector("button:has-text('Continue')", timeout=LOAD)
    await page.screenshot(path=str(shots / f"{prefix}-provider-consent.png"))
    await page.click("button:has-text('Continue')")


def school_config(issuer: str) -> str:
    """The school's provider and hub accounts on one login page; the physics group only."""
    return (
        "c.Hub.authenticator_class = ['oidc', 'native']\n"
        f"c.GenericOIDCAuthenticator.issuer = {issuer!r}\n"
        f"c.GenericOIDCAuthenticator.client_id = {CLIENT_ID!r}\n"
        f"c.GenericOIDCAuthenticator.client_secret = {CLIENT_SECRET!r}\n"
        "c.GenericOIDCAuthenticator.display_name = 'School login'\n"
        "c.GenericOIDCAuthenticator.scope = ['openid', 'email', 'profile', 'groups']\n"
        "c.GenericOIDCAuthenticator.allowed_groups = ['physics']\n"
    )


async def test_log_in_with_the_schools_provider(hub_factory: HubFactory, shots: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    hub = await hub_factory(config=school_config(issuer) + "c.Authenticator.manage_groups = True\n")
    async with (
        oidc_provider(port, [hub.url + "oauth_callback"], ACCOUNTS),
        browser_page() as page,
    ):
        console = watch_console(page)
        # a page that needs a login sends Ann to the login page, which offers both ways
        await page.goto(hub.url + "token")
        await page.wait_for_url(re.compile(r".*/hub/login\?next="))
        button = page.get_by_role("link", name="Log in with School login")
        await button.wait_for()
        await page.screenshot(path=str(shots / "1-hub-login.png"), full_page=True)
        await assert_accessible(page)
        await button.click()
        await provider_login(page, "ann", shots, "2")
        # back on the hub, logged in, on the page she asked for
        await page.wait_for_url(hub.url + "token", timeout=LOAD)
        await page.screenshot(path=str(shots / "3-logged-in.png"), full_page=True)
        assert await page.get_by_role("button", name="Log out").is_visible()
        ann = (await hub.api("GET", "/users/ann")).json()
        assert ann["groups"] == ["physics"]
        await assert_accessible(page)
        # logging out and in again: the provider remembers her, no new password
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(re.compile(r".*/hub/login\?logged_out=1"))
        await page.get_by_role("link", name="Log in with School login").click()
        await page.wait_for_url(re.compile(r".*/hub/(spawn|home).*"), timeout=LOAD)
        assert not console, console


async def test_someone_not_allowed_is_told_why(hub_factory: HubFactory, shots: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    hub = await hub_factory(config=school_config(issuer))
    async with (
        oidc_provider(port, [hub.url + "oauth_callback"], ACCOUNTS),
        browser_page() as page,
    ):
        console = watch_console(page)
        await page.goto(hub.url + "login")
        await page.get_by_role("link", name="Log in with School login").click()
        await provider_login(page, "eve", shots, "1")
        alert = page.get_by_role("alert")
        await alert.wait_for(timeout=LOAD)
        assert "not allowed to use this hub" in await alert.inner_text()
        assert page.url.startswith(hub.url + "oauth_callback")
        await page.screenshot(path=str(shots / "2-refused.png"), full_page=True)
        await assert_accessible(page)
        assert (await hub.api("GET", "/users/eve")).status == 404
        cookies = {c["name"] for c in await page.context.cookies()}
        assert "atrium-hub-login" not in cookies
        assert not console, console


async def test_log_in_with_github(hub_factory: HubFactory, shots: Path) -> None:
    """The GitHub preset in Chromium, against the stand-in for GitHub (`tests.oauthprovider`:
    the person is taken to be signed in at GitHub already and to consent)."""
    from tests.oauthprovider import CLIENT_ID as GH_ID
    from tests.oauthprovider import CLIENT_SECRET as GH_SECRET
    from tests.oauthprovider import fake_provider

    async with fake_provider() as github:
        hub = await hub_factory(
            config="c.Hub.authenticator_class = 'github'\n"
            f"c.GitHubAuthenticator.client_id = {GH_ID!r}\n"
            f"c.GitHubAuthenticator.client_secret = {GH_SECRET!r}\n"
            f"c.GitHubAuthenticator.github_url = {github.url!r}\n"
            f"c.GitHubAuthenticator.github_api_url = {github.url + '/api/v3'!r}\n"
            "c.GitHubAuthenticator.allowed_organizations = ['physics']\n"
            "c.Hub.redirect_to_server = False\n"
        )
        github.users = {"ann": {"name": "Ann Smith"}}
        github.memberships = {"ann": {"physics": "active"}}
        github.login_as = "ann"
        async with browser_page() as page:
            console = watch_console(page)
            await page.goto(hub.url + "login")
            button = page.get_by_role("link", name="Log in with GitHub")
            await button.wait_for()
            await page.screenshot(path=str(shots / "1-login.png"))
            await assert_accessible(page)
            await button.click()
            await page.wait_for_url(hub.url + "home", timeout=LOAD)
            await page.get_by_role("button", name="Log out").wait_for()
            await page.screenshot(path=str(shots / "2-home.png"))
            assert not console, console
        assert (await hub.api("GET", "/users/ann")).json()["name"] == "ann"
