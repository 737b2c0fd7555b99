"""A teacher's class, set up and run from the admin panel in Chromium, through the proxy.

An admin imports the class roster (a preview first, then apply), opens the
class's group, starts the servers of all its members and watches them become
ready without reloading the page (each one answers through the proxy), stops
them, deletes one student on the Users page, and finds all of it in the audit
log. Every page passes axe-core's WCAG 2.1 A/AA rules. The servers are the test
spawner's small HTTP servers, which start in about a second. Screenshots go to
test-artifacts/test_e2e_admin_class/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.a11y import assert_accessible
from tests.browser import browser_page, watch_console
from tests.conftest import HubFactory, behind_atrium_proxy
from tests.test_admin_groups import ADMIN_PASSWORD

CLASS = "physics-101"
ROSTER = (
    "username,full_name,email,groups\n"
    "ann,Ann Lee,ann@example.org,physics-101\n"
    "bo,<script>alert('bo')</script>,bo@example.org,physics-101;lab-a\n"
    "cy,Cy Diaz,,physics-101\n"
)
STUDENTS = ["ann", "bo", "cy"]


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


def state_of(page: Any, name: str, label: str) -> Any:
    return page.locator(f'#members tr[data-user="{name}"] .state', has_text=label)


async def test_a_class_from_roster_to_audit_log(
    hub_factory: HubFactory, tmp_path: Path, shots: Path
) -> None:
    hub = await hub_factory(
        **behind_atrium_proxy(tmp_path), config="c.ProcessSpawner.start_delay = 1\n"
    )
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    roster_file = tmp_path / "physics-101.csv"
    roster_file.write_text(ROSTER)
    async with browser_page() as page:
        errors = watch_console(page)
        await page.goto(f"{public}/hub/login?next=/hub/admin/import")
        await page.get_by_label("Username").fill("admin")
        await page.get_by_label("Password").fill(ADMIN_PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(f"{public}/hub/admin/import")
        await assert_accessible(page)

        # 1. the roster: a preview that changes nothing, then apply it
        await page.get_by_label("CSV file").set_input_files(str(roster_file))
        await page.get_by_role("button", name="Preview the import").click()
        await page.locator("#preview").wait_for()
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "01-preview.png"), full_page=True)
        actions = await page.locator("#preview tbody tr .state").all_inner_texts()
        assert actions == ["Create user"] * 3
        summary = await page.locator("#preview-summary").inner_text()
        assert "would create 3 users" in summary
        assert (await hub.api("GET", "/users/ann")).status == 404  # nothing yet
        # the full name is free text: shown as text, never run
        assert "<script>alert('bo')</script>" in await page.locator("#preview").inner_text()
        await page.get_by_role("button", name="Apply this roster").click()
        await page.wait_for_url(f"{public}/hub/admin/import")
        imported = page.get_by_role("status").filter(has_text="Roster imported")
        assert "3 users created" in await imported.inner_text()
        await page.screenshot(path=str(shots / "02-imported.png"), full_page=True)

        # 2. the class's group
        await (
            page.get_by_role("navigation", name="Admin sections")
            .get_by_role("link", name="Groups")
            .click()
        )
        await page.wait_for_url(f"{public}/hub/admin/groups")
        await assert_accessible(page)
        await page.get_by_role("link", name=CLASS, exact=True).click()
        await page.wait_for_url(f"{public}/hub/admin/groups/{CLASS}")
        assert await page.locator("h1").inner_text() == f"Group {CLASS}"
        shown = await page.locator("#members tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.user)"
        )
        assert shown == STUDENTS
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "03-group.png"), full_page=True)

        # 3. start the servers of the class; they become ready with no reload
        await page.evaluate("window.stayedOnThePage = true")
        await page.get_by_role("button", name="Start servers of all members").click()
        await state_of(page, "ann", "Starting").wait_for()
        await page.screenshot(path=str(shots / "04-starting.png"), full_page=True)
        await assert_accessible(page)
        for name in STUDENTS:
            await state_of(page, name, "Ready").wait_for(timeout=60_000)
        summary_line = page.locator("#servers-summary")
        await page.get_by_text("3 ready, 0 starting").wait_for()
        assert await summary_line.get_attribute("aria-live") == "polite"
        assert await page.evaluate("window.stayedOnThePage") is True
        await page.screenshot(path=str(shots / "05-ready.png"), full_page=True)
        for name in STUDENTS:  # each answers through the proxy
            answer = await page.request.get(f"{public}/user/{name}/")
            assert answer.headers["server"].startswith("SimpleHTTP"), name

        # 4. stop them
        await page.get_by_role("button", name="Stop servers of all members").click()
        for name in STUDENTS:
            await state_of(page, name, "Stopped").wait_for(timeout=60_000)
        assert await page.evaluate("window.stayedOnThePage") is True
        assert (
            "Stopping the servers of 3 of 3 members"
            in await page.locator("#admin-status").inner_text()
        )
        await page.screenshot(path=str(shots / "06-stopped.png"), full_page=True)
        users = (await hub.api("GET", "/users")).json()
        assert all(not u["servers"] for u in users if u["name"] in STUDENTS)

        # 5. delete a student on the Users page
        await (
            page.get_by_role("navigation", name="Admin sections")
            .get_by_role("link", name="Users")
            .click()
        )
        await page.wait_for_url(f"{public}/hub/admin")
        await page.get_by_role("link", name="Delete cy").click()
        dialog = page.get_by_role("dialog")
        await dialog.wait_for()
        await dialog.get_by_role("button", name="Delete cy").click()
        await page.locator('#users tr[data-user="cy"]').wait_for(state="detached")
        assert (await hub.api("GET", "/users/cy")).status == 404

        # 6. the audit log has it all, newest first
        await page.goto(f"{public}/hub/admin/audit")
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "07-audit.png"), full_page=True)
        rows = await page.locator("#events tbody tr").evaluate_all(
            """rows => rows.map(r => [...r.cells].slice(1, 4).map(
                c => (c.querySelector("bdi.name, code") || c).textContent.trim()))"""
        )
        events = [tuple(r) for r in rows]
        expected = [
            ("admin", "user.delete", "cy"),
            ("admin", "group.stop_servers", CLASS),
            *[("admin", "server.stop", name) for name in STUDENTS],
            *[("admin", "server.start", name) for name in STUDENTS],
            ("admin", "group.start_servers", CLASS),
            *[("admin", "roster.import", name) for name in STUDENTS],
            ("admin", "group.create", "lab-a"),
            ("admin", "group.create", CLASS),
        ]
        assert sorted(events[: len(expected)]) == sorted(expected)
        assert events[0] == ("admin", "user.delete", "cy")
        order = [e[1] for e in events[: len(expected)]]
        assert order.index("group.stop_servers") < order.index("server.start")
        assert order.index("group.start_servers") < order.index("roster.import")
        stop_row = order.index("group.stop_servers")
        details = (
            await page.locator("#events tbody tr").nth(stop_row).locator(".details").inner_text()
        )
        assert details == "users: ann, bo, cy"
        # the class's own events, by its name
        await page.get_by_label("Target (user, group or user/server)").fill(CLASS)
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url(re.compile(r".*target=physics-101.*"))
        actions = await page.locator("#events tbody th").all_inner_texts()
        assert actions == ["group.stop_servers", "group.start_servers", "group.create"]
        await page.set_viewport_size({"width": 375, "height": 740})
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "08-audit-class-phone.png"), full_page=True)
        assert not errors, errors
