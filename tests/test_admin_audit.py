"""The admin panel's Audit log page: `/hub/admin/audit`.

Over HTTP: who may read it (admin-ui and read:audit), events newest first with
relative times and the exact time in `<time>`, pages, the filters (actor, action
or a noun's actions, target) kept across pages, bad arguments refused, and
hostile names from another database shown as text. In Chromium: accessible, also
at phone width.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from hub.db.models import AuditEvent, Role, User, user_role_map
from tests.a11y import assert_accessible
from tests.browser import browser_page
from tests.conftest import HubFactory, RunningHub
from tests.test_admin_groups import ADMIN_PASSWORD, admin_browser
from tests.test_pages import PASSWORD, Browser


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


def give_role(session: Session, user: str, role: str) -> None:
    user_id = session.scalar(select(User.id).where(User.name == user))
    role_id = session.scalar(select(Role.id).where(Role.name == role))
    session.execute(insert(user_role_map).values(user_id=user_id, role_id=role_id))


def add_events(session: Session, events: list[dict[str, Any]]) -> None:
    session.execute(insert(AuditEvent), events)


def event(
    actor: str, action: str, target: str, minutes_ago: float, **details: Any
) -> dict[str, Any]:
    at = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return {
        "at": at - datetime.timedelta(minutes=minutes_ago),
        "actor": actor,
        "action": action,
        "target": target,
        "details": details,
    }


def rows(page: str) -> list[tuple[str, str, str]]:
    """(actor, action, target) of each row of the events table."""
    found = re.findall(
        r'<bdi class="name">([^<]*)</bdi><span class="visually-hidden">: show what[^<]*</span>'
        r"</a></td>\s*<th scope=\"row\"><code>([^<]*)</code></th>\s*<td>(?:<a [^>]*>"
        r'<bdi class="name">([^<]*)</bdi>)?',
        page,
    )
    return [(a, b, c) for a, b, c in found]


async def test_who_may_read_the_audit_log(hub_factory: HubFactory) -> None:
    hub = await hub_factory(load_roles=[{"name": "panel-only", "scopes": ["admin-ui"]}])
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("panel", password=PASSWORD)
    await hub.db.run(give_role, "panel", "panel-only")
    anonymous = Browser(hub)
    r = await anonymous.request("GET", "/hub/admin/audit?actor=admin")
    assert r.code == 302
    assert r.headers["Location"] == "/hub/login?next=" + quote("/hub/admin/audit?actor=admin")
    for name in ("ann", "panel"):
        browser = Browser(hub)
        await browser.login(name)
        r = await browser.request("GET", "/hub/admin/audit")
        assert r.code == 403, name
        assert "user.create" not in r.body.decode()
    # the panel alone is not enough: the log needs read:audit too
    panel = Browser(hub)
    await panel.login("panel")
    text = (await panel.request("GET", "/hub/admin/audit")).body.decode()
    assert "read:audit" in text
    admin = await admin_browser(hub)
    r = await admin.request("GET", "/hub/admin/audit")
    assert r.code == 200
    assert 'href="/hub/admin/audit" aria-current="page"' in r.body.decode()


async def test_events_newest_first_with_times(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.db.run(add_events, [event("admin", "group.set_properties", "physics", 60 * 26)])
    await hub.api("POST", "/users", {"usernames": ["ann", "bo"]})
    await hub.api("POST", "/groups/physics", {"users": ["ann", "bo"]})
    admin = await admin_browser(hub)
    page = (await admin.request("GET", "/hub/admin/audit")).body.decode()
    assert rows(page)[:4] == [
        ("admin", "group.create", "physics"),
        ("admin", "user.create", "bo"),
        ("admin", "user.create", "ann"),
        ("admin", "group.set_properties", "physics"),
    ]
    times = re.findall(r'<time datetime="([^"]+)" title="[^"]+">([^<]+)</time>', page)
    assert [t[1] for t in times[:4]] == ["just now", "just now", "just now", "1 day ago"]
    for iso, _text in times:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", iso)
    assert "<li><bdi>users: ann, bo</bdi></li>" in page
    assert "<li><bdi>admin: false</bdi></li>" in page
    # a name links to its own events
    assert 'href="/hub/admin/audit?target=physics"' in page
    assert 'href="/hub/admin/audit?actor=admin"' in page


async def test_pages_and_filters(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    events = [event("admin", "user.create", f"u{i:03d}", 200 - i) for i in range(70)]
    events += [event("tess", "group.add_users", "physics", 5, users=[f"u{i}" for i in range(14)])]
    events += [event("tess", "user.update", "u001", 4, full_name="Ann")]
    events += [event("admin", "server.start", "u001/lab", 3)]
    await hub.db.run(add_events, events)
    admin = await admin_browser(hub)
    first = (await admin.request("GET", "/hub/admin/audit")).body.decode()
    shown = rows(first)
    assert len(shown) == 50
    # newest first (the oldest two: the hub made its first admin, the test its token)
    assert shown[:3] == [
        ("admin", "server.start", "u001/lab"),
        ("tess", "user.update", "u001"),
        ("tess", "group.add_users", "physics"),
    ]
    assert "Showing 1\u201350 of 75 (page 1 of 2)" in first
    assert "<li><bdi>users: u0, u1, u2, u3, u4, u5, u6, u7, u8, u9 and 4 more</bdi></li>" in first
    second = (await admin.request("GET", "/hub/admin/audit?page=2")).body.decode()
    assert rows(second)[:23] == [("admin", "user.create", f"u{i:03d}") for i in range(22, -1, -1)]
    assert rows(second)[23:] == [
        ("admin", "token.create", "admin"),
        ("atrium", "user.create", "admin"),
    ]
    late = (await admin.request("GET", "/hub/admin/audit?page=7")).body.decode()
    assert rows(late) == rows(second)
    # filters: exact actor, exact target, one action or a noun's actions
    tess = (await admin.request("GET", "/hub/admin/audit?actor=tess")).body.decode()
    assert [r[1] for r in rows(tess)] == ["user.update", "group.add_users"]
    target = (await admin.request("GET", "/hub/admin/audit?target=u001")).body.decode()
    assert [r[1] for r in rows(target)] == ["user.update", "user.create"]
    nouns = (await admin.request("GET", "/hub/admin/audit?action=user.")).body.decode()
    assert "Showing 1\u201350 of 72" in nouns
    assert {r[1] for r in rows(nouns)} == {"user.create", "user.update"}
    both = (await admin.request("GET", "/hub/admin/audit?action=user.&actor=tess")).body.decode()
    assert rows(both) == [("tess", "user.update", "u001")]
    assert '<option value="user." selected>every user action</option>' in both
    assert 'value="tess"' in both
    # filters are kept in the links to other pages
    assert 'href="/hub/admin/audit?action=user.&amp;page=2" rel="next"' in nouns
    none = (await admin.request("GET", "/hub/admin/audit?actor=nobody")).body.decode()
    assert rows(none) == []
    assert "No event matches the filter." in none
    # the menu offers each action in the log, and each noun's together
    assert '<option value="server.">every server action</option>' in first
    assert '<option value="group.add_users">group.add_users</option>' in first
    for bad in ("page=0", "page=x", "actor=" + "x" * 301, "target=" + "y" * 400):
        r = await admin.request("GET", f"/hub/admin/audit?{bad}")
        assert r.code == 400, bad
        assert "Traceback" not in r.body.decode()


async def test_hostile_names_in_the_log_are_text(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.db.run(
        add_events,
        [
            event(
                "<script>alert(1)</script>",
                "user.update",
                "\u202eevil\"'",
                1,
                full_name="<img src=x onerror=alert(2)>",
            )
        ],
    )
    admin = await admin_browser(hub)
    page = (await admin.request("GET", "/hub/admin/audit")).body.decode()
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "full_name: &lt;img src=x onerror=alert(2)&gt;" in page
    assert '<bdi class="name">\u202eevil&#34;&#39;</bdi>' in page
    assert "?actor=%3Cscript%3Ealert%281%29%3C/script%3E" in page
    filtered = await admin.request(
        "GET", "/hub/admin/audit?actor=" + quote("<script>alert(1)</script>")
    )
    assert len(rows(filtered.body.decode())) == 1


async def test_the_audit_log_in_a_browser(hub_factory: HubFactory, shots: Path) -> None:
    hub: RunningHub = await hub_factory()
    await hub.api("POST", "/users", {"usernames": ["ann", "bo"]})
    await hub.api("POST", "/groups/physics", {"users": ["ann", "bo"]})
    await hub.db.run(
        add_events, [event("<script>x</script>", "user.update", "\u202eevil", 90, a=[1, 2])]
    )
    async with browser_page() as page:
        await page.goto(hub.url + "login?next=/hub/admin/audit")
        await page.get_by_label("Username").fill("admin")
        await page.get_by_label("Password").fill(ADMIN_PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(hub.url + "admin/audit")
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "1-audit.png"), full_page=True)
        await page.get_by_label("What").select_option("user.")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_url(re.compile(r".*action=user\..*"))
        assert await page.locator("#events tbody tr").count() == 4  # with the first admin
        await assert_accessible(page)
        await page.set_viewport_size({"width": 375, "height": 740})
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "2-audit-phone.png"), full_page=True)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375
