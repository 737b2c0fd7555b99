"""The admin panel's users page in Chromium, with its script.

An admin searches, sorts, pages, adds users, starts and stops several servers
at once and watches them change without a reload, renames a user, makes one an
admin and deletes one; changes made elsewhere (through the API) show up live,
failures included; one action done with the keyboard alone; axe-core's WCAG
2.1 AA rules at desktop and phone width; hostile names from the database stay
text. Screenshots go to test-artifacts/test_e2e_admin_users/.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.pages.admin_users_view import shown as visible
from tests.a11y import assert_accessible
from tests.browser import browser_page, watch_console
from tests.conftest import HubFactory, RunningHub
from tests.test_admin_users import (
    ADMIN_PASSWORD,
    HOSTILE,
    HOSTILE_GROUP,
    admin_hub,
    insert_hostile,
    insert_users,
    model,
)
from tests.waits import eventually

# a server that takes a moment to answer, so that "Starting" can be seen
SLOW_START = "c.ProcessSpawner.start_delay = 1.0\n"


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


async def log_in(page: Any, hub: RunningHub, next_path: str = "/hub/admin") -> None:
    await page.goto(f"{hub.url}login?next={next_path}")
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(hub.url[: -len("/hub/")] + next_path)


def row(page: Any, name: str) -> Any:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return page.locator(f'#users tr[data-user="{quoted}"]')


def state(page: Any, name: str, server: str = "") -> Any:
    return row(page, name).locator(f'li[data-server="{server}"] .state')


async def names_shown(page: Any) -> list[str]:
    return list(
        await page.locator("#users tbody tr[data-user]").evaluate_all(
            "rows => rows.map(r => r.dataset.user)"
        )
    )


async def mark(page: Any) -> None:
    """Leave a mark in the window: it is gone if the page reloads."""
    await page.evaluate("window.stayedPut = true")


async def stayed_put(page: Any) -> bool:
    return bool(await page.evaluate("window.stayedPut === true"))


async def test_an_admin_manages_users(hub_factory: HubFactory, shots: Path) -> None:
    hub = await admin_hub(hub_factory, "ann", "bo", "cy", config=SLOW_START)
    await insert_users(hub, [{"name": f"student{i:02}"} for i in range(1, 31)])
    async with browser_page() as page:
        errors = watch_console(page)
        await log_in(page, hub)
        await page.screenshot(path=str(shots / "01-list.png"), full_page=True)
        caption = page.locator("#users caption")
        assert await caption.inner_text() == "Users 1\u201334 of 34, sorted by name, A to Z"

        # search, sort and pages are plain links and forms
        await page.get_by_label("Search by name").fill("stu")
        await page.get_by_role("button", name="Search", exact=True).click()
        await page.wait_for_url("**/hub/admin?q=stu")
        assert len(await names_shown(page)) == 30
        await page.locator("#users thead").get_by_role("link", name="Name").click()
        await page.wait_for_url("**/hub/admin?q=stu&order=desc")
        header = page.locator("#users thead th", has_text="Name")
        assert await header.get_attribute("aria-sort") == "descending"
        assert (await names_shown(page))[0] == "student30"
        await page.get_by_label("Rows per page").select_option("25")
        await page.get_by_role("button", name="Show").click()
        await page.wait_for_url("**/hub/admin?per_page=25&q=stu&order=desc")
        await page.get_by_role("link", name="Next page").click()
        assert await names_shown(page) == [f"student{i:02}" for i in range(5, 0, -1)]
        await page.screenshot(path=str(shots / "02-searched-sorted-page-2.png"), full_page=True)
        await page.get_by_role("link", name="Clear search").click()
        await page.wait_for_url("**/hub/admin?order=desc&per_page=25")

        # add users in bulk: each line's outcome
        await page.goto(hub.url + "admin")
        await page.locator("summary", has_text="Add users").click()
        await page.get_by_label("Usernames, one per line").fill("dee\nEve\nbad name\nann\n")
        await page.get_by_role("button", name="Add users").click()
        alert = page.get_by_role("alert")
        await alert.wait_for()
        assert "Added 2 users; 1 already existed; 1 line not valid." in await alert.inner_text()
        assert "line 3: invalid username 'bad name'" in await alert.inner_text()
        await page.screenshot(path=str(shots / "03-added.png"), full_page=True)
        assert (await model(hub, "eve"))["name"] == "eve"

        # from here on, everything happens in place
        await mark(page)
        for name in ("ann", "bo", "cy"):
            await page.get_by_label(f"Select {visible(name)}", exact=True).check()
        assert await page.locator("#selected-count").inner_text() == "3 selected"
        await page.get_by_role("button", name="Start servers").click()
        for name in ("ann", "bo", "cy"):
            await (
                state(page, name)
                .filter(has_text="Starting")
                .or_(state(page, name).filter(has_text="Running"))
                .wait_for()
            )
        await page.screenshot(path=str(shots / "04-starting.png"), full_page=True)
        status = page.locator("#admin-status")
        # each user's outcome, listed; the live region says it in short
        await page.locator("#bulk-results li").nth(2).wait_for()
        assert await page.locator("#bulk-results li").all_inner_texts() == [
            "ann: starting",
            "bo: starting",
            "cy: starting",
        ]
        for name in ("ann", "bo", "cy"):
            await state(page, name).filter(has_text="Running").wait_for(timeout=20_000)
            assert (
                await row(page, name).get_by_role("link", name=f"Open {name}'s server").is_visible()
            )
        assert await stayed_put(page)
        await page.screenshot(path=str(shots / "05-running.png"), full_page=True)
        for name in ("ann", "bo", "cy"):
            assert (await model(hub, name))["servers"][""]["ready"]

        await page.get_by_role("button", name="Stop servers").click()
        for name in ("ann", "bo", "cy"):
            await state(page, name).filter(has_text="Stopped").wait_for(timeout=20_000)
        for name in ("ann", "bo", "cy"):
            assert (await model(hub, name))["servers"][""]["stopped"]
        assert await page.locator("#bulk-results li").all_inner_texts() == [
            "ann: stopping",
            "bo: stopping",
            "cy: stopping",
        ]

        # rename in the row itself
        dee = row(page, "dee")
        await dee.locator("a.rename-open").click()
        await page.get_by_label("New name for dee").fill("dora")
        await dee.get_by_role("button", name="Save").click()
        await row(page, "dora").wait_for()
        assert await row(page, "dora").locator("th .name").inner_text() == "dora"
        assert (await model(hub, "dora"))["name"] == "dora"
        assert "Renamed dee to dora." in await status.inner_text()
        # a name that is taken: the reason, next to the field
        await row(page, "dora").locator("a.rename-open").click()
        await page.get_by_label("New name for dora").fill("ann")
        await row(page, "dora").get_by_role("button", name="Save").click()
        error = row(page, "dora").locator(".field-error")
        await error.wait_for()
        assert await error.inner_text() == "User ann already exists"

        # admin rights
        await page.get_by_role("button", name="Make admin eve").click()
        await row(page, "eve").locator(".badge.admin").wait_for()
        assert await row(page, "eve").get_by_role("button", name="Remove admin eve").is_visible()
        assert (await model(hub, "eve"))["admin"] is True

        # blocking: the badge, and a start that is refused says why (not as a failure)
        await page.get_by_role("button", name="Block cy").click()
        await row(page, "cy").locator(".badge.blocked").wait_for()
        assert (await model(hub, "cy"))["blocked"] is True
        await page.get_by_role("button", name="Start cy's server").click()
        await status.filter(has_text="User cy is blocked").wait_for()
        assert await status.inner_text() == "Could not start cy's server: User cy is blocked"
        assert await row(page, "cy").locator(".failure").is_hidden()
        await page.get_by_role("button", name="Unblock cy").click()
        await row(page, "cy").locator(".badge.blocked").wait_for(state="hidden")

        # select all, and shift-click for a run of rows
        await page.get_by_label("Select all on this page").check()
        assert await page.locator("#selected-count").inner_text() == "36 selected"
        await page.get_by_label("Select all on this page").uncheck()
        await page.get_by_label("Select student01", exact=True).check()
        await page.get_by_label("Select student05", exact=True).click(modifiers=["Shift"])
        assert await page.locator("#selected-count").inner_text() == "5 selected"
        await page.get_by_label("Select all on this page").check()
        await page.get_by_label("Select all on this page").uncheck()
        assert await page.locator("#selected-count").inner_text() == "0 selected"

        # delete, after saying yes in a dialog
        await page.get_by_role("link", name="Delete bo").click()
        dialog = page.get_by_role("dialog")
        await dialog.wait_for()
        assert await dialog.get_by_role("heading").inner_text() == "Delete bo?"
        await page.screenshot(path=str(shots / "06-confirm-delete.png"))
        await dialog.get_by_role("button", name="Delete bo").click()
        await row(page, "bo").wait_for(state="detached")
        assert (await hub.api("GET", "/users/bo")).status == 404
        assert "Deleted bo." in await status.inner_text()
        assert await stayed_put(page)
        await page.screenshot(path=str(shots / "07-after-actions.png"), full_page=True)
        assert not errors, errors


async def test_search_as_you_type(hub_factory: HubFactory, shots: Path) -> None:
    hub = await admin_hub(hub_factory, "ann", "anna", "bo")
    await insert_users(hub, [{"name": f"student{i:02}"} for i in range(1, 31)])
    async with browser_page() as page:
        errors = watch_console(page)
        await log_in(page, hub)
        await mark(page)
        search = page.get_by_label("Search by name")
        await search.click()
        await page.keyboard.type("ann", delay=50)
        await page.wait_for_url("**/hub/admin?q=ann")
        assert await names_shown(page) == ["ann", "anna"]
        # the person goes on typing where they were; the new list is announced
        assert await page.evaluate("document.activeElement.id") == "q"
        assert await search.input_value() == "ann"
        status = page.locator("#admin-status")
        assert await status.inner_text() == (
            "Users 1\u20132 of 2 matching \u201cann\u201d, sorted by name, A to Z."
        )
        await page.screenshot(path=str(shots / "typed-ann.png"))
        # the new rows work as the first ones did
        await page.get_by_role("button", name="Start anna's server").click()
        await state(page, "anna").filter(has_text="Running").wait_for(timeout=20_000)
        await page.get_by_label("Select ann", exact=True).check()
        assert await page.locator("#selected-count").inner_text() == "1 selected"
        # Enter searches at once; an empty search lists everyone again
        await search.fill("bo")
        await search.press("Enter")
        await page.wait_for_url("**/hub/admin?q=bo")
        assert await names_shown(page) == ["bo"]
        await search.fill("")
        await page.wait_for_url("**/hub/admin")
        assert len(await names_shown(page)) == 34
        assert await stayed_put(page)
        assert not errors, errors


async def test_changes_made_elsewhere_show_up_live(hub_factory: HubFactory, shots: Path) -> None:
    # each server process runs for a few seconds and then exits with status 3
    exits_later = [sys.executable, "-c", "import time; time.sleep(7); raise SystemExit(3)"]
    hub = await admin_hub(
        hub_factory,
        "ann",
        "bo",
        config=f"c.ProcessSpawner.cmd = {exits_later!r}\nc.ProcessSpawner.start_timeout = 60\n",
    )
    async with browser_page() as page:
        errors = watch_console(page)
        await log_in(page, hub)
        await mark(page)
        assert await row(page, "ann").locator("time").count() == 0  # never active
        start = asyncio.create_task(hub.api("POST", "/users/ann/server"))
        await state(page, "ann").filter(has_text="Starting").wait_for(timeout=20_000)
        await page.screenshot(path=str(shots / "1-starting-elsewhere.png"), full_page=True)
        # the start fails: the page says so, and why, in the row
        await state(page, "ann").filter(has_text="Stopped").wait_for(timeout=30_000)
        failure = row(page, "ann").locator(".failure")
        await failure.wait_for()
        assert "exited with status 3" in await failure.inner_text()
        await page.screenshot(path=str(shots / "2-failed-elsewhere.png"), full_page=True)
        assert (await start).status == 500
        # activity and group changes too
        r = await hub.api("POST", "/users/bo/activity", {"last_activity": "2026-01-01T00:00:00Z"})
        assert r.status == 204
        assert (await hub.api("POST", "/groups/chem", {"users": ["bo"]})).status == 201
        await row(page, "bo").locator('time[datetime="2026-01-01T00:00:00.000000Z"]').wait_for()
        await row(page, "bo").locator("td.groups", has_text="chem").wait_for()
        # someone else added a user: the page offers to reload
        await hub.add_user("al")
        await page.locator("#list-changed").wait_for()
        assert await stayed_put(page)
        assert not errors, errors


async def test_keyboard_alone(hub_factory: HubFactory, shots: Path) -> None:
    hub = await admin_hub(hub_factory, "ann")
    async with browser_page() as page:
        await log_in(page, hub, "/hub/admin?q=ann")

        async def tab_to(name: str) -> None:
            for _ in range(60):
                await page.keyboard.press("Tab")
                label = await page.evaluate(
                    "(document.activeElement.innerText || document.activeElement.value || '')"
                    ".replace(/\\s+/g, ' ').trim()"
                )
                if label == name:
                    return
            raise AssertionError(f"{name!r} cannot be reached with Tab")

        async def focus_is_visible() -> None:
            style = await page.evaluate(
                "(() => { const s = getComputedStyle(document.activeElement); "
                "return [s.outlineStyle, s.outlineWidth]; })()"
            )
            assert style == ["solid", "3px"], style

        await tab_to("Start ann's server")
        await focus_is_visible()
        await page.keyboard.press("Enter")
        await state(page, "ann").filter(has_text="Running").wait_for(timeout=20_000)
        # the button pressed went away; the keyboard is on the one that took its place
        focused = await page.evaluate("document.activeElement.innerText.replace(/\\s+/g, ' ')")
        assert focused.strip() == "Stop ann's server"
        await focus_is_visible()
        await page.screenshot(path=str(shots / "keyboard-stop-focused.png"))
        await page.keyboard.press("Enter")
        await state(page, "ann").filter(has_text="Stopped").wait_for(timeout=20_000)

        # rename: open the box, type, Enter; the keyboard returns to the box's link
        await tab_to("Rename ann")
        await page.keyboard.press("Enter")
        # the box opens with the keyboard in its field
        assert await page.evaluate("document.activeElement.name") == "new_name"
        await page.keyboard.press("Control+A")
        await page.keyboard.type("annie")
        await page.keyboard.press("Enter")
        await row(page, "annie").wait_for()
        assert await page.evaluate("document.activeElement.className") == "rename-open"
        assert (await model(hub, "annie"))["name"] == "annie"


async def test_accessible_at_desktop_and_phone_width(hub_factory: HubFactory, shots: Path) -> None:
    hub = await admin_hub(hub_factory, "ann", "bo", allow_named_servers=True)
    assert (await hub.api("POST", "/groups/physics", {"users": ["ann"]})).status == 201
    assert (await hub.api("POST", "/users/bo/servers/lab")).status in (201, 202)
    async with browser_page() as page:
        await log_in(page, hub)
        await assert_accessible(page)
        # with a flash, an open rename box, a field error and a bulk report
        await page.locator("summary", has_text="Add users").click()
        await page.get_by_label("Usernames, one per line").fill("cy\nbad name")
        await page.get_by_role("button", name="Add users").click()
        await page.get_by_role("alert").wait_for()
        await row(page, "ann").locator("a.rename-open").click()
        await page.get_by_label("New name for ann").fill("bo")
        await row(page, "ann").get_by_role("button", name="Save").click()
        await row(page, "ann").locator(".field-error").wait_for()
        await page.get_by_label("Select cy", exact=True).check()
        await page.get_by_role("button", name="Add to group").click()
        await page.locator("#bulk-results li").first.wait_for()
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "desktop.png"), full_page=True)
        await page.get_by_role("link", name="Delete cy").click()
        await page.get_by_role("dialog").wait_for()
        await assert_accessible(page)
        await page.keyboard.press("Escape")
        await page.get_by_role("dialog").wait_for(state="hidden")

        await page.set_viewport_size({"width": 375, "height": 740})
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "phone.png"), full_page=True)
        # nothing sticks out sideways: the table's rows are cards at this width
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        box = await row(page, "bo").bounding_box()
        assert box is not None
        assert box["width"] <= 375


async def test_hostile_names_stay_text(hub_factory: HubFactory, shots: Path) -> None:
    hub = await admin_hub(hub_factory)
    await insert_hostile(hub)
    async with browser_page() as page:
        errors = watch_console(page)
        alerts: list[str] = []
        page.on("dialog", lambda dialog: alerts.append(dialog.message))
        polls: list[str] = []
        page.on(
            "requestfinished",
            lambda request: polls.append(request.url) if "/hub/api/users?" in request.url else None,
        )
        await log_in(page, hub)
        # the rows as the server wrote them, and after the script has refreshed them
        await eventually(lambda: _true_when(polls), timeout=20)
        shown = await page.locator("#users th .name").all_inner_texts()
        assert "[U+202E]gnp.exe" in shown
        assert shown == [visible(n) for n in sorted(["admin", *HOSTILE])]
        full_name = row(page, HOSTILE[0]).locator(".full-name")
        assert await full_name.inner_text() == '<i>Eve</i> & "friends"'
        assert (
            await row(page, HOSTILE[0]).locator(".failure-text").inner_text()
            == "<em>boom</em> & more"
        )
        # what the script writes itself: the groups cell and the delete dialog
        for name in HOSTILE:
            await page.get_by_label(f"Select {visible(name)}", exact=True).check()
        await page.get_by_label("Group", exact=True).select_option(HOSTILE_GROUP)
        await page.get_by_role("button", name="Add to group").click()
        for name in HOSTILE:
            await row(page, name).locator("td.groups bdi", has_text=HOSTILE_GROUP).wait_for()
        await page.get_by_role("link", name=f"Delete {visible(HOSTILE[2])}").click()
        dialog = page.get_by_role("dialog")
        await dialog.wait_for()
        assert await dialog.get_by_role("heading").inner_text() == "Delete [U+202E]gnp.exe?"
        await page.screenshot(path=str(shots / "hostile-names.png"), full_page=True)
        await dialog.get_by_role("button", name="Cancel").click()
        counts = await page.evaluate(
            "[document.querySelectorAll('img').length, document.scripts.length, "
            "document.querySelectorAll('b, i, em').length]"
        )
        assert counts == [0, 3, 0]  # no image, no markup; only the three scripts of the page
        assert alerts == []
        assert not errors, errors
    assert (await model(hub, HOSTILE[2]))["groups"] == [HOSTILE_GROUP]


async def _true_when(items: list[str]) -> bool:
    return bool(items)


async def test_a_view_costs_one_request_per_refresh(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory)
    await insert_users(hub, [{"name": f"student{i:02}"} for i in range(1, 60)])
    async with browser_page() as page:
        await log_in(page, hub)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        await page.reload()

        async def polled_twice() -> bool:
            return len([u for u in requests if "/hub/api/" in u]) >= 2

        await eventually(polled_twice, timeout=30)
        api_calls = [u.split("/hub/api", 1)[1] for u in requests if "/hub/api/" in u]
        # loading: the page and its three scripts; then one request per refresh, for the
        # same 50 users the page shows, never one per user
        pages = [
            u.split("/hub/", 1)[1].split("?v=")[0]
            for u in requests
            if "/hub/" in u and "/hub/api/" not in u
        ]
        # (the hub's icon too, when the browser has not kept it: the browser's own affair)
        pages = [p for p in pages if p != "static/favicon.svg"]
        assert pages == [
            "admin",
            "static/atrium.js",
            "static/admin-users-rows.js",
            "static/admin-users.js",
        ]
        assert set(api_calls) == {"/users?include_stopped_servers=1&sort=name&offset=0&limit=50"}


async def test_the_page_survives_requests_it_did_not_make(hub_factory: HubFactory) -> None:
    """The page's forms and script keep working after the browser asked for something
    else on the site (its icon, a page that is not there), which must not change the
    XSRF cookie the page's token belongs to."""
    hub = await admin_hub(hub_factory, "ann")
    async with browser_page() as page:
        await log_in(page, hub)
        # what a browser does by itself, or a person in another tab (cookies are shared)
        for path in ("favicon.ico", "no/such/page", "hub/no-such-page"):
            await page.request.get(hub.url[: -len("hub/")] + path)
        await page.get_by_role("button", name="Make admin ann").click()
        await row(page, "ann").locator(".badge.admin").wait_for(timeout=5_000)
