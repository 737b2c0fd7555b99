"""A student's whole visit, in Chromium, through the real proxy.

Ann sees the class's branded login page and its announcement, logs in, lands on
the page that starts her server, starts it and gets to it; back on her home
page she sees it running and stops it, and the page follows without reloading;
she creates a named server, renames and deletes it; she makes an API token
(shown once, it works, a reload does not show it again), revokes it (it stops
working) and logs out. Every page passes axe-core at desktop and phone width,
and no page breaks its own CSP. The server is the tests' fast process spawner:
`tests/test_e2e_lab.py` covers JupyterLab itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.a11y import assert_accessible
from tests.browser import browser_page
from tests.conftest import HubFactory, RunningHub, behind_atrium_proxy
from tests.test_pages import PASSWORD

LOAD = 30_000  # ms: a busy 2-core machine


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


async def accessible_at_both_widths(page: Any, shots: Path, name: str) -> None:
    await assert_accessible(page)
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.screenshot(path=str(shots / f"{name}-phone.png"), full_page=True)
    await assert_accessible(page)
    await page.set_viewport_size({"width": 1100, "height": 750})


def complaints(page: Any) -> list[str]:
    """Scripts or connections the pages' CSP blocked, and the pages' script errors (not
    the failed loads the visit causes on purpose, such as a 400 for a bad name)."""
    messages: list[str] = []

    def console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            messages.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: messages.append(str(error)))
    return messages


async def row_state(page: Any, server: str) -> str:
    return str(await page.locator(f'li.server[data-server="{server}"]').get_attribute("data-state"))


async def test_a_students_visit(hub_factory: HubFactory, tmp_path: Path, shots: Path) -> None:
    hub = await hub_factory(
        **behind_atrium_proxy(
            tmp_path,
            allow_named_servers=True,
            named_server_limit_per_user=3,
            spawn_page_wait=0,
            title="Physics 101",
            brand_colour="#1d4ed8",
            announcement="Lab 3 is due on Friday.",
        ),
        config="c.ProcessSpawner.start_delay = 0.5\n",
    )
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    await hub.add_user("ann", password=PASSWORD)
    async with browser_page() as page:
        console = complaints(page)
        await log_in_and_start(page, public, shots)
        await home_page(page, hub, public, shots)
        await named_server(page, public, shots)
        await token_page(page, hub, public, shots)
        # logging out: the login page again, and the pages ask for a login
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(f"{public}/hub/login?logged_out=1")
        assert await page.get_by_role("status").inner_text() == "You are logged out."
        await page.screenshot(path=str(shots / "9-logged-out.png"))
        await page.goto(f"{public}/hub/home")
        await page.wait_for_url(re.compile(r".*/hub/login\?next=%2Fhub%2Fhome|.*next=/hub/home"))
        assert not console, console


async def log_in_and_start(page: Any, public: str, shots: Path) -> None:
    await page.goto(f"{public}/hub/")
    await page.wait_for_url(f"{public}/hub/login")
    assert await page.title() == "Log in - Physics 101"
    banner = page.get_by_role("complementary", name="Announcement")
    assert await banner.inner_text() == "Lab 3 is due on Friday."
    await page.screenshot(path=str(shots / "1-login.png"))
    await accessible_at_both_widths(page, shots, "1-login")
    await page.get_by_label("Username").fill("ann")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    # her server is not running: the page that starts it in one click
    await page.wait_for_url(f"{public}/hub/spawn/ann")
    assert await page.locator("h1").inner_text() == "Start your server"
    await page.screenshot(path=str(shots / "2-spawn.png"))
    await accessible_at_both_widths(page, shots, "2-spawn")
    await page.get_by_role("button", name="Start my server").click()
    await page.wait_for_url(f"{public}/hub/spawn-pending/ann")
    await page.get_by_text("Server requested").wait_for()
    await page.screenshot(path=str(shots / "3-pending.png"))
    await page.wait_for_url(f"{public}/user/ann/", timeout=LOAD)
    landed = await page.request.get(f"{public}/user/ann/")
    assert landed.headers["server"].startswith("SimpleHTTP")  # her own server answered


async def home_page(page: Any, hub: RunningHub, public: str, shots: Path) -> None:
    await page.goto(f"{public}/hub/home")
    default = page.locator('li.server[data-server=""]')
    assert await default.locator(".state").inner_text() == "Running"
    assert await default.get_by_role("link", name="Open Default server").get_attribute("href") == (
        "/user/ann/"
    )
    await page.screenshot(path=str(shots / "4-home-running.png"))
    await accessible_at_both_widths(page, shots, "4-home-running")
    # stop: the row follows in place, the page is not reloaded
    await page.evaluate("window.stayedHere = true")
    await default.get_by_role("button", name="Stop Default server").click()
    await page.locator('li.server[data-server=""][data-state="stopped"]').wait_for(timeout=LOAD)
    assert await page.evaluate("window.stayedHere") is True
    await page.locator("#home-status", has_text="Default server: Stopped.").wait_for()
    await page.screenshot(path=str(shots / "5-home-stopped.png"))
    # started elsewhere (say, by a teacher): the page notices by itself
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    await page.locator('li.server[data-server=""][data-state="ready"]').wait_for(timeout=LOAD)
    assert await page.evaluate("window.stayedHere") is True
    assert await row_state(page, "") == "ready"
    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    await page.locator('li.server[data-server=""][data-state="stopped"]').wait_for(timeout=LOAD)


async def named_server(page: Any, public: str, shots: Path) -> None:
    # a bad name is refused beside the field
    await page.get_by_label("Name", exact=True).fill("my lab")
    await page.get_by_role("button", name="Create and start").click()
    error = page.locator("#new-server-error")
    await error.wait_for()
    assert "is not allowed" in await error.inner_text()
    await accessible_at_both_widths(page, shots, "6-bad-name")
    await page.get_by_label("Name", exact=True).fill("lab")
    await page.get_by_role("button", name="Create and start").click()
    await page.wait_for_url(f"{public}/user/ann/lab/", timeout=LOAD)
    await page.goto(f"{public}/hub/home")
    lab = page.locator('li.server[data-server="lab"]')
    assert await lab.locator(".state").inner_text() == "Running"
    await lab.get_by_role("button", name="Stop lab").click()
    await page.locator('li.server[data-server="lab"][data-state="stopped"]').wait_for()
    # rename it (only a stopped server can be)
    await lab.locator("summary", has_text="Rename").click()
    await page.get_by_label("New name for lab").fill("notes")
    await page.get_by_role("button", name="Rename", exact=True).click()
    notes = page.locator('li.server[data-server="notes"]')
    await notes.wait_for()
    assert await page.locator('li.server[data-server="lab"]').count() == 0
    await page.locator("#home-status", has_text="lab is now called notes.").wait_for()
    await page.wait_for_function("document.activeElement.textContent === 'notes'")
    await page.screenshot(path=str(shots / "7-renamed.png"))
    # delete it, after a confirmation
    await notes.get_by_role("button", name="Delete notes").click()
    dialog = page.get_by_role("dialog", name="Delete the server notes?")
    await dialog.wait_for()
    await page.screenshot(path=str(shots / "7b-confirm-delete.png"))
    await assert_accessible(page)
    await dialog.get_by_role("button", name="Cancel").click()
    assert await notes.count() == 1
    await notes.get_by_role("button", name="Delete notes").click()
    await dialog.get_by_role("button", name="Delete").click()
    await notes.wait_for(state="detached")
    await page.locator("#home-status", has_text="The server notes was deleted.").wait_for()
    await accessible_at_both_widths(page, shots, "7c-home")


async def token_page(page: Any, hub: RunningHub, public: str, shots: Path) -> None:
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.get_by_role("link", name="Token").click()
    await page.wait_for_url(f"{public}/hub/token")
    await accessible_at_both_widths(page, shots, "8-token")
    await page.get_by_label("Note").fill("homework script")
    await page.get_by_label("Expires after").select_option(label="30 days")
    await page.get_by_label("Use my servers").check()
    await page.get_by_role("button", name="Create token").click()
    field = page.get_by_label("The token")
    await field.wait_for()
    token = await field.input_value()
    assert len(token) > 30
    await page.wait_for_function("document.activeElement.id === 'new-token-heading'")
    await page.get_by_role("button", name="Copy").click()
    await page.get_by_text("Copied.").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == token
    item = page.locator("li.token", has_text="homework script")
    await item.wait_for()
    assert "servers!user=ann" in await item.inner_text()
    await page.screenshot(path=str(shots / "8b-token-created.png"), full_page=True)
    await accessible_at_both_widths(page, shots, "8b-token-created")
    me = await hub.api("GET", "/user", token=token)
    assert (me.status, me.json()["name"]) == (200, "ann")
    # never shown again
    await page.reload()
    assert await page.locator("#new-token").is_hidden()
    assert token not in await page.content()
    # revoke it: it stops working at once
    await item.get_by_role("button", name="Revoke homework script").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_role("button", name="Revoke").click()
    await item.wait_for(state="detached")
    assert await page.get_by_text("You have no tokens.").is_visible()
    assert (await hub.api("GET", "/user", token=token)).status == 403


async def test_the_other_pages_are_accessible(hub_factory: HubFactory, shots: Path) -> None:
    """The pages a visit may meet besides: a failed start's progress page, the
    confirmations shown without JavaScript, an error page; axe-core at both widths."""
    hub = await hub_factory(
        spawner_class="tests.spawner.ProcessSpawner",
        allow_named_servers=True,
        announcement="Lab 3 is due on Friday.",
    )
    await hub.add_user("ann", password=PASSWORD)
    r = await hub.api("POST", "/users/ann/servers/broken", {"failure": "exit"})
    assert r.status == 500
    await hub.token_for("ann", note="old script")
    async with browser_page() as page:
        await page.goto(hub.url + "login")
        await page.get_by_label("Username").fill("ann")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url("**/hub/spawn/ann")
        await page.goto(hub.url + "spawn-pending/ann/broken")
        assert "exited with status 3" in await page.get_by_role("alert").inner_text()
        await page.screenshot(path=str(shots / "pending-failed.png"))
        await accessible_at_both_widths(page, shots, "pending-failed")
        # the forms as a browser without JavaScript sends them (form.submit() skips the
        # page's script): a confirmation page each
        await page.goto(hub.url + "home")
        await page.locator('form[data-action="delete"]').evaluate("form => form.submit()")
        await page.get_by_role("heading", name="Delete the server broken?").wait_for()
        await page.screenshot(path=str(shots / "confirm-delete.png"))
        await accessible_at_both_widths(page, shots, "confirm-delete")
        await page.get_by_role("button", name="Delete").click()
        await page.wait_for_url("**/hub/home?done=deleted&server=broken")
        assert await page.get_by_role("status").inner_text() == "The server broken was deleted."
        await page.goto(hub.url + "token")
        await page.locator('form[data-action="revoke"]').evaluate("form => form.submit()")
        await page.get_by_role("heading", name="Revoke the token “old script”?").wait_for()
        await accessible_at_both_widths(page, shots, "confirm-revoke")
        await page.get_by_role("link", name="Cancel").click()
        await page.wait_for_url("**/hub/token")
        await page.goto(hub.url + "spawn/nobody")
        await page.screenshot(path=str(shots / "not-found.png"))
        await accessible_at_both_widths(page, shots, "not-found")
