"""The admin panel's Sign-ups page (`/hub/admin/signups`) over HTTP: the list, approving,
rejecting and resetting two-step login with its forms, who may use it, bad posts, and
the tab in the admin panel's navigation (only where native accounts are a way in)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth import signups, totp
from hub.db.engine import Database
from hub.db.models import SignupRequest, User
from hub.ops import users as user_ops
from hub.ops.context import HubContext
from hub.secrets_hash import hash_password
from tests.conftest import SYSTEM, HubFactory, RunningHub
from tests.test_auth_native import post_form
from tests.test_pages import Browser

PASSWORD = "correct horse battery staple"
ADMIN_PASSWORD = "admin-password-for-tests"
TAB = '<a href="/hub/admin/signups"'


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


async def request(hub: RunningHub, name: str, **extra: str) -> None:
    new = signups.NewAccount(name, hash_password(PASSWORD), address="203.0.113.4", **extra)
    await hub.db.run(signups.request_account, new, 1000)


async def waiting(hub: RunningHub) -> list[str]:
    def read(session: Session) -> list[str]:
        return list(session.scalars(select(SignupRequest.name).order_by(SignupRequest.id)))

    return await hub.db.run(read)


async def users(hub: RunningHub) -> dict[str, bool]:
    def read(session: Session) -> dict[str, bool]:
        rows = session.execute(select(User.name, User.totp_secret.is_not(None)))
        return {n: bool(t) for n, t in rows}

    return await hub.db.run(read)


async def admin_browser(hub: RunningHub) -> Browser:
    browser = Browser(hub)
    assert (await browser.login("admin", ADMIN_PASSWORD)).code == 302
    return browser


async def act(browser: Browser, action: str, name: str, **extra: str) -> str:
    """Post a form of the page; returns the flash the page shows next."""
    r = await post_form(browser, "/hub/admin/signups", action=action, name=name, **extra)
    assert r.code == 303, r.code
    page = await browser.request("GET", r.headers["Location"])
    assert page.code == 200
    found = re.search(r'<div class="flash[^"]*" role="(\w+)">\s*<p>(.*?)</p>', page.body.decode())
    assert found, page.body.decode()[:3000]
    return f"{found.group(1)}: {html.unescape(found.group(2))}"


async def test_list_approve_reject_reset(hub_factory: HubFactory) -> None:
    hub = await hub_factory(config="c.NativeAuthenticator.enable_signup = True\n")
    browser = await admin_browser(hub)
    page = await browser.request("GET", "/hub/admin/signups")
    text = page.body.decode()
    assert page.code == 200
    assert f'{TAB} aria-current="page">Sign-ups</a>' in text
    assert "No sign-up request is waiting." in text

    await request(hub, "zed", full_name="Zed <b>Zhang</b>", email="zed@example.org")
    await request(hub, "yan")
    text = (await browser.request("GET", "/hub/admin/signups")).body.decode()
    assert "Requests waiting for approval, oldest first" in text
    assert "Zed &lt;b&gt;Zhang&lt;/b&gt;" in text  # escaped
    assert "<code>203.0.113.4</code>" in text
    assert 'Approve<span class="visually-hidden"> <bdi>zed</bdi></span>' in text
    # every other admin page has the tab too
    assert TAB in (await browser.request("GET", "/hub/admin/audit")).body.decode()

    assert await act(browser, "approve", "zed") == (
        "status: Approved zed: the account is ready and they can log in."
    )
    assert await act(browser, "reject", "yan") == "status: Rejected the sign-up of yan."
    assert await waiting(hub) == []
    assert "zed" in await users(hub)
    assert "yan" not in await users(hub)
    assert (await Browser(hub).login("zed", PASSWORD)).code == 302

    await hub.db.run(totp.enable, "zed", b"encrypted", 1)
    assert await act(browser, "reset_totp", "Zed") == (
        "status: Two-step login is off for zed: their password alone logs them in until "
        "they turn it on again."
    )
    assert (await users(hub))["zed"] is False


async def test_bad_posts_change_nothing(hub: RunningHub) -> None:
    await request(hub, "zed")
    await hub.add_user("ann", password=PASSWORD)
    browser = await admin_browser(hub)
    before = (await waiting(hub), await users(hub))
    for action, name, flash in (
        ("approve", "nobody", "alert: No sign-up request for nobody is waiting"),
        ("reject", "", "alert: Give the username."),
        (
            "approve",
            "x<y",
            "alert: invalid username 'x<y': character '<' is not allowed (use letters, "
            "digits and + - . @ _)",
        ),
        ("promote", "zed", "alert: Unknown action; use the buttons on this page."),
        ("reset_totp", "ann", "alert: ann does not use two-step login: there is nothing to reset"),
        ("reset_totp", "nobody", "alert: No such user: nobody"),
        ("approve", "z" * 400, "alert: The name is too long (at most 300 characters)."),
    ):
        assert await act(browser, action, name) == flash, (action, name)
    # without the XSRF token
    r = await browser.request("POST", "/hub/admin/signups", {"action": "approve", "name": "zed"})
    assert r.code == 403
    r = await browser.request("GET", "/hub/admin/signups?page=abc")
    assert r.code == 400
    assert (await waiting(hub), await users(hub)) == before


async def test_only_admins(hub: RunningHub) -> None:
    await request(hub, "zed")
    anonymous = Browser(hub)
    r = await anonymous.request("GET", "/hub/admin/signups")
    assert r.code == 302
    assert r.headers["Location"].startswith("/hub/login?next=")
    await hub.add_user("ann", password=PASSWORD)
    ann = Browser(hub)
    assert (await ann.login("ann", PASSWORD)).code == 302
    assert (await ann.request("GET", "/hub/admin/signups")).code == 403
    r = await post_form(ann, "/hub/admin/signups", action="approve", name="zed")
    assert r.code == 403
    assert await waiting(hub) == ["zed"]


async def test_no_tab_without_native_accounts(hub_factory: HubFactory, db_url: str) -> None:
    # the hub makes its first admin only with native accounts: here, beforehand
    db = Database(db_url)
    try:
        await db.run(user_ops.create_users, HubContext(), SYSTEM, ["admin"], True)
    finally:
        db.close()
    hub = await hub_factory(config="c.Hub.authenticator_class = 'dummy'\n")
    browser = Browser(hub)
    assert (await browser.login("admin", "any", authenticator="dummy")).code == 302
    page: Any = await browser.request("GET", "/hub/admin/audit")
    assert page.code == 200
    assert TAB not in page.body.decode()
    assert (await browser.request("GET", "/hub/admin/signups")).code == 404
    assert (await browser.request("GET", "/hub/signup")).code == 404
