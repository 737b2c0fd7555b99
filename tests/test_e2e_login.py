"""The login page with several ways in, in Chromium: each form logs in with its own
authenticator, the page passes the accessibility checks, and a throttled account
says how long to wait."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.a11y import assert_accessible
from tests.browser import browser_page, watch_console
from tests.conftest import HubFactory
from tests.test_pages import PASSWORD


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


CONFIG = (
    "c.Hub.authenticator_class = ['native', 'shared']\n"
    "c.SharedPasswordAuthenticator.user_password = 'workshop-2026'\n"
    "c.Hub.redirect_to_server = False\n"
)


async def test_two_ways_in_on_one_page(hub_factory: HubFactory, shots: Path) -> None:
    hub = await hub_factory(config=CONFIG)
    await hub.add_user("ann", password=PASSWORD)
    async with browser_page() as page:
        problems = watch_console(page)
        await page.goto(hub.url + "login")
        native = page.get_by_role("region", name="Hub account")
        workshop = page.get_by_role("region", name="Workshop login")
        await native.wait_for()
        await workshop.wait_for()
        await page.screenshot(path=str(shots / "1-two-ways.png"), full_page=True)
        await assert_accessible(page)

        # the workshop form: any name with the shared password
        await workshop.get_by_label("Username").fill("Guest7")
        await workshop.get_by_label("Password").fill("workshop-2026")
        await workshop.get_by_role("button", name="Log in").click()
        await page.wait_for_url(re.compile(r".*/hub/home$"))
        await page.get_by_text("guest7").first.wait_for()
        await page.screenshot(path=str(shots / "2-workshop-home.png"))

        # log out, then ann with her own account, through the other form
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(re.compile(r".*/hub/login\?logged_out=1$"))
        await native.get_by_label("Username").fill("ann")
        await native.get_by_label("Password").fill(PASSWORD)
        await native.get_by_role("button", name="Log in").click()
        await page.wait_for_url(re.compile(r".*/hub/home$"))
        await page.get_by_text("ann").first.wait_for()
        assert problems == []


async def test_a_throttled_login_says_how_long_to_wait(
    hub_factory: HubFactory, shots: Path
) -> None:
    hub = await hub_factory(login_failures_free=2)
    await hub.add_user("ann", password=PASSWORD)
    async with browser_page() as page:
        await page.goto(hub.url + "login")
        for _ in range(4):
            await page.get_by_label("Username").fill("ann")
            await page.get_by_label("Password").fill("not it")
            await page.get_by_role("button", name="Log in").click()
            await page.get_by_role("alert").wait_for()
        alert = page.get_by_role("alert")
        text = await alert.inner_text()
        assert re.fullmatch(
            r"Too many failed logins\. Please wait \d+ seconds? before trying again\.", text
        ), text
        # the name stays filled in, so trying again later is one field
        assert await page.get_by_label("Username").input_value() == "ann"
        await page.screenshot(path=str(shots / "throttled.png"))
        await assert_accessible(page)


async def test_the_dummy_login_for_a_demo(hub_factory: HubFactory, shots: Path) -> None:
    hub = await hub_factory(
        config="c.Hub.authenticator_class = 'dummy'\nc.Hub.redirect_to_server = False\n"
    )
    async with browser_page() as page:
        await page.goto(hub.url + "login")
        await page.get_by_label("Username").fill("Demo1")
        await page.get_by_label("Password").fill("anything")
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(re.compile(r".*/hub/home$"))
        await page.get_by_text("demo1").first.wait_for()
        await page.screenshot(path=str(shots / "home.png"))
