"""The login page passes axe-core's WCAG 2.1 A/AA rules in Chromium, also with an error shown
and at phone width; the checker itself finds a violation when there is one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.a11y import assert_accessible, axe_violations
from tests.browser import browser_page
from tests.conftest import HubFactory


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


async def test_login_page_is_accessible(hub_factory: HubFactory, shots: Path) -> None:
    hub = await hub_factory()
    async with browser_page() as page:
        await page.goto(hub.url + "login")
        await assert_accessible(page)
        await page.get_by_label("Username").fill("nobody")
        await page.get_by_label("Password").fill("wrong")
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_role("alert").wait_for()
        await assert_accessible(page)
        await page.set_viewport_size({"width": 375, "height": 740})
        await page.screenshot(path=str(shots / "login-error-phone.png"))
        await assert_accessible(page)
        # the checker is live: an unlabelled field is a violation
        await page.evaluate("document.querySelector('label[for=password]').remove()")
        found = {v["id"] for v in await axe_violations(page)}
        assert "label" in found
