"""Native accounts in Chromium: a person asks for an account on the login page, is told
to wait, an admin approves them on the admin panel, and they log in; a user turns on
two-step login by scanning the QR code (read here from the page's key, codes made with
pyotp), changes their password, and logs in with password and code. Every new page
passes axe-core at desktop and phone width, and no page breaks its own CSP.
Screenshots are kept in test-artifacts/test_e2e_native/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.browser import browser_page
from tests.conftest import HubFactory, RunningHub
from tests.test_e2e_student import accessible_at_both_widths, complaints

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a new and longer passphrase"
ADMIN_PASSWORD = "admin-password-for-tests"


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


async def log_in(page: Any, hub: RunningHub, name: str, password: str) -> None:
    await page.goto(hub.url + "login")
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()


async def log_out(page: Any, hub: RunningHub) -> None:
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(hub.url + "login?logged_out=1")


async def test_sign_up_approval_and_login(hub_factory: HubFactory, shots: Path) -> None:
    hub = await hub_factory(config="c.NativeAuthenticator.enable_signup = True\n")
    async with browser_page() as page:
        console = complaints(page)
        await page.goto(hub.url + "login")
        await page.get_by_role("link", name="Create an account").click()
        await page.wait_for_url(hub.url + "signup")
        assert await page.locator("h1").inner_text() == "Create an account"
        await page.screenshot(path=str(shots / "1-signup.png"), full_page=True)
        await accessible_at_both_widths(page, shots, "1-signup")

        # a common password is refused on the form, with what was typed kept
        await page.get_by_label("Username").fill("Zed")
        await page.get_by_label("Password", exact=True).fill("password123")
        await page.get_by_label("Password again").fill("password123")
        await page.get_by_label("Full name (optional)").fill("Zed Zhang")
        await page.get_by_label("Email (optional)").fill("zed@example.org")
        await page.get_by_role("button", name="Request the account").click()
        error = page.get_by_role("alert")
        assert "one of the most common" in await error.inner_text()
        assert await page.get_by_label("Username").input_value() == "Zed"
        assert await page.get_by_label("Password", exact=True).input_value() == ""
        await page.screenshot(path=str(shots / "2-signup-error.png"), full_page=True)
        await accessible_at_both_widths(page, shots, "2-signup-error")

        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await page.get_by_label("Password again").fill(PASSWORD)
        await page.get_by_role("button", name="Request the account").click()
        status = page.get_by_role("status")
        assert "waiting for approval" in await status.inner_text()
        await page.screenshot(path=str(shots / "3-requested.png"))
        await accessible_at_both_widths(page, shots, "3-requested")

        # the right password, before approval: told to wait
        await log_in(page, hub, "zed", PASSWORD)
        assert "waiting for approval" in await page.get_by_role("alert").inner_text()
        await page.screenshot(path=str(shots / "4-waiting.png"))

        # an admin approves the request on the admin panel
        await log_in(page, hub, "admin", ADMIN_PASSWORD)
        await page.goto(hub.url + "admin")
        await (
            page.get_by_role("navigation", name="Admin sections")
            .get_by_role("link", name="Sign-ups")
            .click()
        )
        await page.wait_for_url(hub.url + "admin/signups")
        row = page.get_by_role("row", name="zed")
        assert "Zed Zhang" in await row.inner_text()
        await page.screenshot(path=str(shots / "5-admin-signups.png"), full_page=True)
        await accessible_at_both_widths(page, shots, "5-admin-signups")
        await page.get_by_role("button", name="Approve zed").click()
        await page.wait_for_url(hub.url + "admin/signups")
        flash = page.get_by_role("status").filter(has_text="Approved")
        assert await flash.inner_text() == "Approved zed: the account is ready and they can log in."
        assert "No sign-up request is waiting." in await page.locator("main").inner_text()
        await page.screenshot(path=str(shots / "6-approved.png"), full_page=True)
        await accessible_at_both_widths(page, shots, "6-approved")
        await log_out(page, hub)

        await log_in(page, hub, "zed", PASSWORD)
        await page.wait_for_url(hub.url + "spawn/zed")
        await page.screenshot(path=str(shots / "7-zed-logged-in.png"))
        assert not console, console


async def test_two_step_login(hub_factory: HubFactory, shots: Path) -> None:
    hub = await hub_factory(title="Physics 101")
    await hub.add_user("ann", password=PASSWORD)
    async with browser_page() as page:
        console = complaints(page)
        await log_in(page, hub, "ann", PASSWORD)
        await page.goto(hub.url + "home")
        account = page.get_by_role("region", name="Your account")
        await account.get_by_role("link", name="Two-step login").click()
        await page.wait_for_url(hub.url + "totp")
        qr = page.get_by_role("img", name="QR code for setting up two-step login for ann")
        # the QR code is drawn (an SVG data: URI the page's CSP allows), at its size
        assert await qr.evaluate("img => img.complete && img.naturalWidth > 100")
        await page.screenshot(path=str(shots / "1-enrol.png"), full_page=True)
        await accessible_at_both_widths(page, shots, "1-enrol")
        await page.get_by_text("Set-up link").click()
        uri = await page.locator("details code").inner_text()
        parsed = pyotp.parse_uri(uri)
        assert parsed.issuer == "Physics 101"
        secret = parsed.secret
        shown = await page.locator(".secret").inner_text()
        assert shown.replace(" ", "") == secret
        totp = pyotp.TOTP(secret)

        await page.get_by_label("Code from your app").fill(
            "000000" if totp.now() != "000000" else "111111"
        )
        await page.get_by_role("button", name="Turn two-step login on").click()
        assert "That code is not right" in await page.get_by_role("alert").inner_text()
        step = totp.timecode(time.time())  # type: ignore[arg-type]
        await page.get_by_label("Code from your app").fill(totp.generate_otp(step))
        await page.get_by_role("button", name="Turn two-step login on").click()
        assert "Two-step login is on" in await page.get_by_role("status").inner_text()
        await page.screenshot(path=str(shots / "2-enrolled.png"), full_page=True)
        await accessible_at_both_widths(page, shots, "2-enrolled")

        # the password page, from the same place
        await page.get_by_role("link", name="Change your password").click()
        await page.wait_for_url(hub.url + "password")
        await accessible_at_both_widths(page, shots, "3-password")
        await page.get_by_label("Current password").fill(PASSWORD)
        await page.get_by_label("New password", exact=True).fill("ann-in-the-lab-2024")
        await page.get_by_label("New password again").fill("ann-in-the-lab-2024")
        await page.get_by_role("button", name="Change the password").click()
        assert "must not contain the username" in await page.get_by_role("alert").inner_text()
        await page.get_by_label("Current password").fill(PASSWORD)
        await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        await page.get_by_label("New password again").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Change the password").click()
        assert "logged out everywhere else" in await page.get_by_role("status").inner_text()
        await page.screenshot(path=str(shots / "3-password-changed.png"))
        await log_out(page, hub)

        # logging in: the password, then the code form
        await log_in(page, hub, "ann", NEW_PASSWORD)
        assert await page.locator("h1").inner_text() == "Two-step login"
        await page.screenshot(path=str(shots / "4-code-form.png"))
        await accessible_at_both_widths(page, shots, "4-code-form")
        # the step used for enrolment is spent: the next one (the hub takes one either side)
        now = totp.timecode(time.time())  # type: ignore[arg-type]
        await page.get_by_label("Code").fill(totp.generate_otp(max(now, step + 1)))
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(hub.url + "spawn/ann")
        await page.screenshot(path=str(shots / "5-logged-in.png"))
        assert not console, console


async def test_admin_sets_up_two_step_login_at_login(hub_factory: HubFactory, shots: Path) -> None:
    hub = await hub_factory(config="c.NativeAuthenticator.require_totp_for_admins = True\n")
    async with browser_page() as page:
        console = complaints(page)
        await log_in(page, hub, "admin", ADMIN_PASSWORD)
        assert "must use two-step login" in await page.locator("main").inner_text()
        qr = page.get_by_role("img", name="QR code for setting up two-step login for admin")
        assert await qr.evaluate("img => img.complete && img.naturalWidth > 100")
        await page.screenshot(path=str(shots / "1-admin-enrol.png"), full_page=True)
        await accessible_at_both_widths(page, shots, "1-admin-enrol")
        secret = (await page.locator(".secret").inner_text()).replace(" ", "")
        await page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(hub.url + "spawn/admin")
        assert not console, console
