"""The admin panel's Groups pages: `/hub/admin/groups[/<name>[/delete|/servers]]`.

Over HTTP with a cookie jar (what works without JavaScript): who may see the
pages, search and pages of groups, creating and deleting groups, members with a
report per name, properties as JSON and as rows, bad input and missing XSRF
tokens changing nothing, hostile names from another database shown as text, and
a class's servers started and stopped. In Chromium: the same pages pass the
accessibility checks, also at phone width, and the group page updates in place.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from hub.db.models import Group, User, user_group_map
from tests.a11y import assert_accessible
from tests.browser import browser_page
from tests.conftest import HubFactory, RunningHub, api_state
from tests.test_pages import PASSWORD, SPAWNER, Browser
from tests.waits import eventually

ADMIN_PASSWORD = "admin-password-for-tests"
HOSTILE = ["<script>alert(1)</script>", "quo\"te'<b>", "\u202eevil.exe"]


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


async def admin_browser(hub: RunningHub) -> Browser:
    browser = Browser(hub)
    r = await browser.login("admin", ADMIN_PASSWORD)
    assert r.code == 302
    return browser


async def post(browser: Browser, path: str, **form: str) -> Any:
    return await browser.request("POST", path, {"_xsrf": await browser.xsrf(), **form})


async def follow(browser: Browser, r: Any) -> str:
    """The page a 303 after a form leads to (showing the flash once)."""
    assert r.code == 303, (r.code, r.body[:500])
    page = await browser.request("GET", r.headers["Location"])
    assert page.code == 200
    return str(page.body.decode())


async def make_groups(hub: RunningHub, names: list[str], users: list[str] | None = None) -> None:
    r = await hub.api("POST", "/groups", {"groups": names, "users": users or []})
    assert r.status == 201, r.body


def insert_hostile(session: Session) -> None:
    """Names the API refuses but a database migrated from elsewhere may hold."""
    ids = []
    for i, name in enumerate(HOSTILE):
        row = session.execute(
            insert(User).values(
                name=name,
                admin=False,
                blocked=False,
                cookie_id=f"hostile{i}",
                full_name=f"<img src=x onerror=alert({i})>",
                email=f'"a"@<b{i}>',
            )
        ).inserted_primary_key
        assert row is not None
        ids.append(row[0])
    gid = session.execute(insert(Group).values(name=HOSTILE[0], properties={"<k>": "<v>"}))
    group_id = gid.inserted_primary_key
    assert group_id is not None
    session.execute(insert(user_group_map), [{"user_id": u, "group_id": group_id[0]} for u in ids])


# --- access -----------------------------------------------------------------------------


async def test_who_may_use_the_groups_pages(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann", password=PASSWORD)
    await make_groups(hub, ["physics"], ["ann"])
    anonymous = Browser(hub)
    paths = [
        "/hub/admin/groups",
        "/hub/admin/groups/physics",
        "/hub/admin/groups/physics/delete",
        "/hub/admin/groups/physics/servers",
    ]
    for path in paths:
        r = await anonymous.request("GET", path + "?page=1")
        assert r.code == 302, path
        # back to the same page after logging in
        assert r.headers["Location"] == f"/hub/login?next={path}%3Fpage%3D1"
    student = Browser(hub)
    await student.login("ann")
    before = await api_state(hub)
    for path in paths:
        r = await student.request("GET", path)
        assert r.code == 403, path
        assert r.headers["Content-Type"].startswith("text/html")
        assert "admin panel" in r.body.decode()
    for path, form in [
        ("/hub/admin/groups", {"name": "chemistry"}),
        ("/hub/admin/groups/physics", {"action": "remove_member", "username": "ann"}),
        ("/hub/admin/groups/physics/delete", {}),
        ("/hub/admin/groups/physics/servers", {"action": "start"}),
    ]:
        r = await post(student, path, **form)
        assert r.code == 403, path
    assert await api_state(hub) == before
    # the site nav offers the admin panel to admins only
    home = (await student.request("GET", "/hub/spawn/ann")).body.decode()
    assert "/hub/admin" not in home
    admin = await admin_browser(hub)
    page = await admin.request("GET", "/hub/admin/groups")
    assert page.code == 200
    assert 'href="/hub/admin/groups" aria-current="page"' in page.body.decode()


async def test_forms_without_the_xsrf_token_change_nothing(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    await make_groups(hub, ["physics"], ["ann"])
    admin = await admin_browser(hub)
    before = await api_state(hub)
    cases = [
        ("/hub/admin/groups", {"name": "chemistry"}),
        ("/hub/admin/groups/physics", {"action": "remove_member", "username": "ann"}),
        ("/hub/admin/groups/physics", {"action": "properties_json", "properties": '{"a": 1}'}),
        ("/hub/admin/groups/physics/delete", {}),
        ("/hub/admin/groups/physics/servers", {"action": "start"}),
    ]
    for path, form in cases:
        for token in (None, "not-the-token"):
            fields = dict(form) if token is None else {**form, "_xsrf": token}
            r = await admin.request("POST", path, fields)
            assert r.code == 403, (path, token)
    assert await api_state(hub) == before
    assert (await hub.api("GET", "/users/ann")).json()["servers"] == {}


# --- the list ---------------------------------------------------------------------------


def listed_names(page: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="[^"]+"><bdi class="name">([^<]*)</bdi>', page)


async def test_search_and_pages_of_groups(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("ann")
    names = [f"class-{i:03d}" for i in range(60)] + ["lab_a", "labxa"]
    await make_groups(hub, names)
    await hub.api("POST", "/groups/class-007/users", {"users": ["ann"]})
    await hub.api("PUT", "/groups/class-007/properties", {"term": "fall", "size": 30})
    admin = await admin_browser(hub)
    first = (await admin.request("GET", "/hub/admin/groups")).body.decode()
    assert listed_names(first) == names[:50]
    assert "Showing 1\u201350 of 62 (page 1 of 2)" in first
    assert 'href="/hub/admin/groups?page=2" rel="next"' in first
    assert "Previous page" not in first
    # member count and a summary of the properties
    row = re.search(r"class-007</bdi></a></th>\s*<td[^>]*>(\d+)</td>\s*<td>(.*?)</td>", first)
    assert row is not None
    assert row.group(1) == "1"
    assert "size: 30, term: fall" in row.group(2)
    second = (await admin.request("GET", "/hub/admin/groups?page=2")).body.decode()
    assert listed_names(second) == names[50:]
    assert 'href="/hub/admin/groups" rel="prev"' in second
    # a page past the end shows the last one; a page that is not a number is a 400
    late = (await admin.request("GET", "/hub/admin/groups?page=9")).body.decode()
    assert listed_names(late) == names[50:]
    for bad in ("0", "-1", "x", "1.5", "9" * 30):
        r = await admin.request("GET", f"/hub/admin/groups?page={bad}")
        assert r.code == 400, bad
        assert "page number" in r.body.decode()
    # the search runs on the server, literally (`_` is not a wildcard), and keeps to pages
    found = (await admin.request("GET", "/hub/admin/groups?q=LAB_")).body.decode()
    assert listed_names(found) == ["lab_a"]
    found = (await admin.request("GET", "/hub/admin/groups?q=class-05")).body.decode()
    assert listed_names(found) == [f"class-05{i}" for i in range(10)]
    assert "Showing 1\u201310 of 10" in found
    none = (await admin.request("GET", "/hub/admin/groups?q=%3Cscript%3E")).body.decode()
    assert listed_names(none) == []
    assert "No group\u2019s name contains \u201c&lt;script&gt;\u201d." in none
    many = (await admin.request("GET", "/hub/admin/groups?q=class")).body.decode()
    assert 'href="/hub/admin/groups?q=class&amp;page=2"' in many
    r = await admin.request("GET", "/hub/admin/groups?q=" + "x" * 300)
    assert r.code == 400


async def test_create_and_delete_a_group(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("ann")
    admin = await admin_browser(hub)
    r = await post(admin, "/hub/admin/groups", name="Physics-101")
    assert r.headers["Location"] == "/hub/admin/groups/Physics-101"
    page = await follow(admin, r)
    assert "Group Physics-101 created." in page
    # the flash shows once
    again = (await admin.request("GET", "/hub/admin/groups/Physics-101")).body.decode()
    assert "created." not in again
    groups = (await hub.api("GET", "/groups")).json()
    assert [g["name"] for g in groups] == ["Physics-101"]
    # bad names and a name taken: the form again, with the reason and the name typed
    for name, status, reason in [
        ("bad name!", 400, "is not allowed"),
        ("", 400, "must not be empty"),
        ("-x", 400, "must start with a letter or digit"),
        ("Physics-101", 409, "already exists"),
        ("x" * 200, 400, "too long"),
    ]:
        r = await post(admin, "/hub/admin/groups", name=name)
        assert r.code == status, name
        text = r.body.decode()
        assert reason in text, name
        assert 'role="alert"' in text
        assert 'aria-invalid="true"' in text
    assert len((await hub.api("GET", "/groups")).json()) == 1
    # delete: a confirmation page first, then the POST
    await hub.api("POST", "/groups/Physics-101/users", {"users": ["ann"]})
    confirm = await admin.request("GET", "/hub/admin/groups/Physics-101/delete")
    assert confirm.code == 200
    text = confirm.body.decode()
    assert 'Delete group <bdi class="name">Physics-101</bdi>?' in text
    assert "Its 1 member keeps their accounts and servers." in text
    assert (await hub.api("GET", "/groups")).json() != []
    r = await post(admin, "/hub/admin/groups/Physics-101/delete")
    assert r.headers["Location"] == "/hub/admin/groups"
    page = await follow(admin, r)
    assert "Group Physics-101 deleted. Its members were not." in page
    assert (await hub.api("GET", "/groups")).json() == []
    assert (await hub.api("GET", "/users/ann")).status == 200
    for method in ("GET", "POST"):
        if method == "GET":
            r = await admin.request("GET", "/hub/admin/groups/Physics-101")
        else:
            r = await post(admin, "/hub/admin/groups/Physics-101/delete")
        assert r.code == 404
        assert "No such group" in r.body.decode()
    events = (await hub.api("GET", "/audit?actor=admin")).json()
    assert [e["action"] for e in events][:3] == ["group.delete", "group.add_users", "group.create"]


# --- members and properties -------------------------------------------------------------


async def test_add_and_remove_members(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    for name in ("ann", "bo", "cy"):
        await hub.add_user(name)
    await make_groups(hub, ["physics"], ["cy"])
    admin = await admin_browser(hub)
    names = "Ann, bo\nnobody\n\n  bad name! ,cy\r\nann"
    r = await post(admin, "/hub/admin/groups/physics", action="add_members", names=names)
    page = await follow(admin, r)
    assert "Added 2 of 5 names to physics." in page
    items = re.findall(r"<li>([^<]*)</li>", page)
    assert items[:3] == ["ann: added", "bo: added", "nobody: no such user"]
    assert items[3].startswith("bad name!: invalid username")
    assert "is not allowed" in items[3]
    assert items[4] == "cy: already a member"
    group = (await hub.api("GET", "/groups/physics")).json()
    assert group["users"] == ["ann", "bo", "cy"]
    # one change, one audit event, for the names that were added
    events = (await hub.api("GET", "/audit?action=group.add_users")).json()
    assert [e["details"]["users"] for e in events] == [["ann", "bo"]]
    for text in ("", " , \n", ",".join(f"u{i}" for i in range(1001))):
        r = await post(admin, "/hub/admin/groups/physics", action="add_members", names=text)
        assert r.code == 400
        assert 'id="names-error"' in r.body.decode()
    r = await post(admin, "/hub/admin/groups/physics", action="remove_member", username="bo")
    page = await follow(admin, r)
    assert "Removed bo from physics." in page
    assert (await hub.api("GET", "/groups/physics")).json()["users"] == ["ann", "cy"]
    r = await post(admin, "/hub/admin/groups/physics", action="remove_member", username="zed")
    assert r.code == 400
    assert "No such user" in r.body.decode()
    r = await post(admin, "/hub/admin/groups/physics", action="explode")
    assert r.code == 400
    assert (await hub.api("GET", "/groups/physics")).json()["users"] == ["ann", "cy"]


async def test_properties_as_json_and_as_rows(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await make_groups(hub, ["physics"])
    admin = await admin_browser(hub)
    path = "/hub/admin/groups/physics"
    text = '{"term": "fall", "size": 30, "tags": ["a", "b"], "open": true}'
    page = await follow(admin, await post(admin, path, action="properties_json", properties=text))
    assert "Properties of physics saved." in page
    saved = {"term": "fall", "size": 30, "tags": ["a", "b"], "open": True}
    assert (await hub.api("GET", "/groups/physics")).json()["properties"] == saved
    # the rows show strings as text and the rest as JSON
    assert 'name="value" value="fall"' in page
    assert 'name="value" value="[&#34;a&#34;,&#34;b&#34;]"' in page
    # bad JSON: the reason (with where), the text kept, nothing changed
    for bad, reason in [
        ('{"term": "fall",}', "not valid JSON"),
        ('{"term": ', "line 1, column"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ('{"big": "' + "x" * 70_000 + '"}', "at most 64 KiB"),
    ]:
        r = await post(admin, path, action="properties_json", properties=bad)
        assert r.code == 400, bad
        body = r.body.decode()
        assert reason in body, (bad, body[-2000:])
        assert 'aria-invalid="true"' in body
        if len(bad) < 100:
            assert bad.replace('"', "&#34;") in body
    assert (await hub.api("GET", "/groups/physics")).json()["properties"] == saved
    # rows: text values stay text, JSON values are read as JSON, an empty name drops a row
    rows = [("term", "spring", "text"), ("size", "31", "json"), ("tags", "", "text")]
    rows += [("open", "true", "text"), ("", "ignored", "text")]
    form = [("_xsrf", await admin.xsrf()), ("action", "properties_rows")]
    for key, value, kind in rows:
        form += [("key", key), ("value", value), ("kind", kind)]
    r = await admin.request(
        "POST",
        path,
        body="&".join(f"{k}={v}" for k, v in form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "Properties of physics saved." in await follow(admin, r)
    props = (await hub.api("GET", "/groups/physics")).json()["properties"]
    assert props == {"term": "spring", "size": 31, "tags": "", "open": "true"}
    for rows, reason in [
        ([("a", "1", "text"), ("a", "2", "text")], "given twice"),
        ([("a", "{nope", "json")], "not valid JSON"),
        ([("a", "1", "yaml")], "Text or JSON"),
    ]:
        form = [("_xsrf", await admin.xsrf()), ("action", "properties_rows")]
        for key, value, kind in rows:
            form += [("key", key), ("value", value), ("kind", kind)]
        r = await admin.request(
            "POST",
            path,
            body="&".join(f"{k}={v}" for k, v in form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.code == 400
        assert reason in r.body.decode()
    assert (await hub.api("GET", "/groups/physics")).json()["properties"] == props
    events = (await hub.api("GET", "/audit?action=group.set_properties")).json()
    assert len(events) == 2


async def test_hostile_names_are_shown_as_text(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.db.run(insert_hostile)
    admin = await admin_browser(hub)
    listing = (await admin.request("GET", "/hub/admin/groups")).body.decode()
    assert "<script>alert" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "/hub/admin/groups/%3Cscript%3Ealert%281%29%3C%2Fscript%3E" in listing
    assert "&lt;k&gt;: &lt;v&gt;" in listing
    r = await admin.request("GET", "/hub/admin/groups/%3Cscript%3Ealert%281%29%3C%2Fscript%3E")
    assert r.code == 200
    page = r.body.decode()
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "<b>" not in page
    assert "&lt;img src=x onerror=alert(0)&gt;" in page
    assert "quo&#34;te&#39;&lt;b&gt;" in page
    # the right-to-left override stays inside its own element, isolated by <bdi>
    assert '<bdi class="name">\u202eevil.exe</bdi>' in page
    assert 'value="quo&#34;te&#39;&lt;b&gt;"' in page
    status = await admin.request(
        "GET",
        "/hub/admin/groups/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/servers",
        headers={"Accept": "application/json"},
    )
    data = orjson.loads(status.body)
    assert [m["name"] for m in data["members"]] == sorted(HOSTILE)
    assert status.headers["Content-Type"].startswith("application/json")


# --- a class's servers ------------------------------------------------------------------


async def server_states(browser: Browser, group: str) -> dict[str, tuple[str, str]]:
    r = await browser.request(
        "GET", f"/hub/admin/groups/{group}/servers", headers={"Accept": "application/json"}
    )
    assert r.code == 200
    return {m["name"]: (m["state"], m["message"]) for m in orjson.loads(r.body)["members"]}


async def test_start_and_stop_the_servers_of_a_class(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, config="c.ProcessSpawner.start_delay = 0.5\n")
    members = ["ann", "bo", "cy", "di"]
    for name in members:
        await hub.add_user(name)
    await make_groups(hub, ["physics"], members)
    assert (await hub.api("POST", "/users/di/server")).status == 201
    admin = await admin_browser(hub)
    r = await post(admin, "/hub/admin/groups/physics/servers", action="start")
    page = await follow(admin, r)
    assert "Starting the servers of 3 of 4 members of physics." in page
    assert "<li>di: already running</li>" in page
    assert "<li>ann: starting</li>" in page

    async def all_ready() -> bool:
        states = await server_states(admin, "physics")
        return all(s == "ready" for s, _m in states.values())

    await eventually(all_ready, timeout=60)
    page = (await admin.request("GET", "/hub/admin/groups/physics")).body.decode()
    assert "4 ready, 0 starting, 0 stopping, 0 stopped, 0 failed." in page
    # the JSON answer, as the page's script asks for it
    r = await admin.request(
        "POST",
        "/hub/admin/groups/physics/servers",
        {"_xsrf": await admin.xsrf(), "action": "stop"},
        headers={"Accept": "application/json"},
    )
    assert r.code == 200
    answer = orjson.loads(r.body)
    assert answer["summary"] == "Stopping the servers of 4 of 4 members of physics."
    assert {o["name"]: o["ok"] for o in answer["outcomes"]} == dict.fromkeys(members, True)
    states = await server_states(admin, "physics")
    assert all(s in ("stopped", "stopping") for s, _m in states.values())
    events = (await hub.api("GET", "/audit?target=physics")).json()
    actions = [(e["action"], e["details"].get("users")) for e in events[:2]]
    assert actions == [
        ("group.stop_servers", members),
        ("group.start_servers", ["ann", "bo", "cy"]),
    ]


async def test_a_failed_start_says_why(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, config="c.ProcessSpawner.failure = 'exit'\n")
    await hub.add_user("ann")
    await make_groups(hub, ["physics"], ["ann"])
    admin = await admin_browser(hub)
    await follow(admin, await post(admin, "/hub/admin/groups/physics/servers", action="start"))

    async def failed() -> bool:
        return (await server_states(admin, "physics"))["ann"][0] == "failed"

    await eventually(failed, timeout=60)
    message = (await server_states(admin, "physics"))["ann"][1]
    assert "failed to start" in message
    page = (await admin.request("GET", "/hub/admin/groups/physics")).body.decode()
    assert '<span class="state state-failed">Failed</span>' in page
    assert message.replace("'", "&#39;") in page
    # stopping a class with nothing running: said so, nothing to do
    r = await post(admin, "/hub/admin/groups/physics/servers", action="stop")
    assert "<li>ann: not running</li>" in await follow(admin, r)
    r = await post(admin, "/hub/admin/groups/physics/servers", action="reboot")
    assert r.code == 400
    # the page's script gets its errors as JSON, also once its login is gone
    json = {"Accept": "application/json"}
    r = await admin.request("GET", "/hub/admin/groups/nope/servers", headers=json)
    assert (r.code, orjson.loads(r.body)["message"]) == (404, "No such group: nope")
    r = await Browser(hub).request("GET", "/hub/admin/groups/physics/servers", headers=json)
    assert r.code == 403
    assert "no longer logged in" in orjson.loads(r.body)["message"]


# --- in a browser -----------------------------------------------------------------------


async def log_in_as_admin(page: Any, hub: RunningHub) -> None:
    await page.goto(hub.url + "login?next=/hub/admin/groups")
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(hub.url + "admin/groups")


async def test_groups_pages_in_a_browser(hub_factory: HubFactory, shots: Path) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, config="c.ProcessSpawner.start_delay = 1\n")
    for name in ("ann", "bo"):
        await hub.add_user(name)
    await make_groups(hub, ["physics", "chemistry"], ["ann", "bo"])
    await hub.api("PUT", "/groups/physics/properties", {"term": "fall"})
    await hub.db.run(insert_hostile)
    async with browser_page() as page:
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if "Security" in m.text else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await log_in_as_admin(page, hub)
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "1-groups.png"), full_page=True)
        # create a group with a bad name: the reason, announced
        await page.get_by_label("Group name", exact=True).fill("bad name!")
        await page.get_by_role("button", name="Create group").click()
        await page.get_by_role("alert").wait_for()
        await assert_accessible(page)
        await page.get_by_label("Group name", exact=True).fill("biology")
        await page.get_by_role("button", name="Create group").click()
        await page.wait_for_url(hub.url + "admin/groups/biology")
        assert "Group biology created." in await page.get_by_role("status").first.inner_text()

        await page.goto(hub.url + "admin/groups/physics")
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "2-group.png"), full_page=True)
        # bad JSON is caught before it is sent
        await page.get_by_label("Properties as JSON").fill('{"term": ')
        await page.get_by_role("button", name="Save JSON").click()
        error = page.locator("#properties-error")
        await error.wait_for()
        assert "not valid JSON" in await error.inner_text()
        assert await page.get_by_label("Properties as JSON").get_attribute("aria-invalid") == "true"
        await assert_accessible(page)
        # remove a member in place
        await page.get_by_role("button", name="Remove bo from the group").click()
        await page.locator('tr[data-user="bo"]').wait_for(state="detached")
        status = page.locator("#admin-status")
        assert await status.inner_text() == "Removed bo from physics."
        assert await page.locator("#member-count").inner_text() == "1 member"
        assert (await hub.api("GET", "/groups/physics")).json()["users"] == ["ann"]
        # start the class's servers and watch them become ready, without a reload
        await page.evaluate("window.notReloaded = true")
        await page.get_by_role("button", name="Start servers of all members").click()
        ann = page.locator('tr[data-user="ann"] .state')
        await page.locator('tr[data-user="ann"] .state', has_text="Starting").wait_for()
        await page.screenshot(path=str(shots / "3-starting.png"), full_page=True)
        await page.locator('tr[data-user="ann"] .state', has_text="Ready").wait_for(timeout=60_000)
        assert await page.evaluate("window.notReloaded") is True
        assert "1 ready, 0 starting" in await page.locator("#servers-summary").inner_text()
        await page.get_by_role("button", name="Stop servers of all members").click()
        await page.locator('tr[data-user="ann"] .state', has_text="Stopped").wait_for()
        assert await ann.inner_text() == "Stopped"
        assert await page.evaluate("window.notReloaded") is True
        await assert_accessible(page)
        # a hostile group's page, at phone width
        await page.set_viewport_size({"width": 375, "height": 740})
        await page.goto(hub.url + "admin/groups/%3Cscript%3Ealert%281%29%3C%2Fscript%3E")
        assert await page.locator("h1").inner_text() == "Group <script>alert(1)</script>"
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "4-hostile-phone.png"), full_page=True)
        await page.goto(hub.url + "admin/groups")
        await assert_accessible(page)
        await page.screenshot(path=str(shots / "5-groups-phone.png"), full_page=True)
        # keyboard: the search field, then its button, are reachable with Tab
        await page.get_by_label("Search group names").focus()
        await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.textContent")
        assert focused == "Search"
        assert not problems, problems


async def test_pages_of_members(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    names = [f"s{i:03d}" for i in range(105)]
    r = await hub.api("POST", "/users", {"usernames": names})
    assert r.status == 201
    await make_groups(hub, ["big"], names)
    admin = await admin_browser(hub)
    first = (await admin.request("GET", "/hub/admin/groups/big")).body.decode()
    assert re.findall(r'<tr data-user="([^"]+)">', first) == names[:100]
    assert "Showing 1\u2013100 of 105 (page 1 of 2)" in first
    assert 'href="/hub/admin/groups/big?page=2" rel="next"' in first
    # the page's script follows the members shown
    assert 'data-status-url="/hub/admin/groups/big/servers?page=1"' in first
    assert "(on this page)" in first
    second = (await admin.request("GET", "/hub/admin/groups/big?page=2")).body.decode()
    assert re.findall(r'<tr data-user="([^"]+)">', second) == names[100:]
    r = await admin.request(
        "GET", "/hub/admin/groups/big/servers?page=2", headers={"Accept": "application/json"}
    )
    assert [m["name"] for m in orjson.loads(r.body)["members"]] == names[100:]
    everyone = await server_states(admin, "big")
    assert list(everyone) == names
