"""The admin panel's users page over HTTP, as a browser without JavaScript uses it.

Who may open it; search, sort and pages (and what bad arguments get); every
form (start, stop, rename, admin, block, delete, bulk actions, adding users),
their XSRF check and their answers to bad input; failures and hostile names
from the database shown as text; and a database of 10,000 users.
"""

from __future__ import annotations

import html
import re
import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from markupsafe import escape
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session
from tornado.httpclient import HTTPResponse

from hub.db.models import Group, Role, Server, User, user_group_map, user_role_map
from hub.ops import queries
from hub.timeutil import utcnow
from tests.conftest import HubFactory, RunningHub, api_state
from tests.test_pages import PASSWORD, SPAWNER, Browser
from tests.waits import eventually

ADMIN_PASSWORD = "admin-password-for-tests"
# names no validation lets through, as a database migrated from elsewhere may hold them
HOSTILE = [
    "<script>alert('name')</script>",
    '"><img src=x onerror=alert(1)>',
    "\u202egnp.exe",
]
HOSTILE_GROUP = "<b onmouseover=alert(2)>grp</b>"
HOSTILE_FULL_NAME = '<i>Eve</i> & "friends"'


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


# --- helpers shared with the browser tests ----------------------------------------------


async def admin_hub(hub_factory: HubFactory, *users: str, **settings: Any) -> RunningHub:
    """A hub with the test spawner and these users (password PASSWORD)."""
    settings.setdefault("spawner_class", SPAWNER)
    hub = await hub_factory(**settings)
    for name in users:
        await hub.add_user(name, password=PASSWORD)
    return hub


async def logged_in(
    hub: RunningHub, name: str = "admin", password: str = ADMIN_PASSWORD
) -> Browser:
    browser = Browser(hub)
    r = await browser.login(name, password)
    assert r.code == 302, r.body
    return browser


def row_names(page: str) -> list[str]:
    """The users in the table, in order."""
    return [html.unescape(n) for n in re.findall(r'<tr data-user="([^"]*)">', page)]


def row_html(page: str, name: str) -> str:
    """The table row of user `name`."""
    return page.split(f'<tr data-user="{escape(name)}">')[1].split("</tr>")[0]


def flash(page: str) -> tuple[str, str, list[str]]:
    """(kind, text, items) of the page's flash, or ('', '', [])."""
    box = re.search(r'<div class="flash( error)?" role="(?:alert|status)">(.*?)</div>', page, re.S)
    if not box:
        return "", "", []
    text = re.search(r"<p>(.*?)</p>", box.group(2), re.S)
    items = re.findall(r"<li>(.*?)</li>", box.group(2), re.S)
    return (
        "error" if box.group(1) else "ok",
        html.unescape(text.group(1)) if text else "",
        [html.unescape(i) for i in items],
    )


async def get_page(browser: Browser, query: str = "") -> str:
    r = await browser.request("GET", f"/hub/admin{query}")
    assert r.code == 200, r.body[:500]
    return str(r.body.decode())


async def post_form(
    browser: Browser,
    path: str,
    fields: dict[str, Any] | list[tuple[str, str]],
    back: str = "/hub/admin",
) -> HTTPResponse:
    """POST a users-page form (with the XSRF field) and expect the redirect back."""
    items = list(fields.items()) if isinstance(fields, dict) else list(fields)
    body = urlencode([("_xsrf", await browser.xsrf()), ("back", back), *items]).encode()
    return await browser.request("POST", path, body=body)


async def act(
    browser: Browser,
    path: str,
    fields: dict[str, Any] | list[tuple[str, str]] | None = None,
    back: str = "/hub/admin",
) -> tuple[str, str, list[str]]:
    """Do a form action and return the flash the page shows afterwards."""
    r = await post_form(browser, path, fields or {}, back)
    assert r.code == 303, (r.code, r.body[:500])
    location = r.headers["Location"]
    assert location == back or location == "/hub/admin", location
    return flash(await get_page(browser, location[len("/hub/admin") :]))


def user_path(name: str) -> str:
    return f"/hub/admin/users/{quote(name, safe='@')}"


async def model(hub: RunningHub, name: str) -> dict[str, Any]:
    r = await hub.api("GET", f"/users/{quote(name, safe='')}?include_stopped_servers=1")
    assert r.status == 200, r.body
    return dict(r.json())


def _insert_users(session: Session, rows: list[dict[str, Any]]) -> None:
    now = utcnow()
    session.execute(
        insert(queries.users),
        [
            {
                "admin": False,
                "blocked": False,
                "created": now,
                "full_name": "",
                "email": "",
                "cookie_id": f"cookie-{i}-{row['name'][:20]}",
                **row,
            }
            for i, row in enumerate(rows)
        ],
    )


async def insert_users(hub: RunningHub, rows: list[dict[str, Any]]) -> None:
    """Users written straight to the database (as a migration from elsewhere would)."""
    await hub.db.run(_insert_users, rows)


def _hostile_rows(session: Session) -> None:
    _insert_users(session, [{"name": n} for n in HOSTILE])
    first = session.scalar(select(User).where(User.name == HOSTILE[0]))
    assert first is not None
    first.full_name = HOSTILE_FULL_NAME
    group = Group(name=HOSTILE_GROUP, properties={})
    session.add(group)
    session.flush()
    session.execute(insert(user_group_map).values(user_id=first.id, group_id=group.id))
    session.add(
        Server(user_id=first.id, name="", state={}, user_options={}, failure="<em>boom</em> & more")
    )


async def insert_hostile(hub: RunningHub) -> None:
    await hub.db.run(_hostile_rows)


# --- who may open it -------------------------------------------------------------------


def _give_role(session: Session, user: str, role: str) -> None:
    user_id = session.scalar(select(User.id).where(User.name == user))
    role_id = session.scalar(select(Role.id).where(Role.name == role))
    session.execute(insert(user_role_map).values(user_id=user_id, role_id=role_id))


async def test_who_may_open_the_page(hub_factory: HubFactory) -> None:
    hub = await admin_hub(
        hub_factory,
        "ann",
        "panel",
        "viewer",
        load_roles=[
            {"name": "panel-only", "scopes": ["admin-ui"]},
            {
                "name": "panel-viewer",
                "scopes": ["admin-ui", "list:users", "read:users", "read:servers"],
            },
        ],
    )
    await hub.db.run(_give_role, "panel", "panel-only")
    await hub.db.run(_give_role, "viewer", "panel-viewer")
    anonymous = Browser(hub)
    r = await anonymous.request("GET", "/hub/admin?q=an&page=2")
    assert r.code == 302
    assert r.headers["Location"] == "/hub/login?next=" + quote("/hub/admin?q=an&page=2", safe="/")
    # the login form sends the person back there
    r = await anonymous.login("admin", ADMIN_PASSWORD, next_url=quote("/hub/admin?q=an", safe="/"))
    assert r.headers["Location"] == "/hub/admin?q=an"

    ann = await logged_in(hub, "ann", PASSWORD)
    r = await ann.request("GET", "/hub/admin")
    assert r.code == 403
    assert "admin panel" in r.body.decode()
    assert 'href="/hub/admin"' not in r.body.decode()  # no Admin link in her nav either
    # her forms are refused too, and change nothing
    before = await api_state(hub)
    r = await post_form(ann, user_path("ann") + "/start", {"server": ""})
    assert r.code == 403
    r = await post_form(ann, "/hub/admin/users/add", {"usernames": "mallory"})
    assert r.code == 403
    assert await api_state(hub) == before

    # admin-ui alone opens the panel, which then has nothing to list
    panel = await logged_in(hub, "panel", PASSWORD)
    text = await get_page(panel)
    assert "may open the admin panel but not list users" in text
    assert "<table" not in text
    assert "admin-users.js" not in text

    # listing without the right to change anything: rows, no forms
    viewer = await logged_in(hub, "viewer", PASSWORD)
    text = await get_page(viewer)
    assert row_names(text) == ["admin", "ann", "panel", "viewer"]
    for name in ("admin", "ann", "panel"):
        assert "<form" not in row_html(text, name)
        assert 'type="checkbox"' not in row_html(text, name)
    # (a person may start and stop their own server, there as anywhere)
    assert 'data-act="start"' in row_html(text, "viewer")
    for control in ('data-act="rename"', 'data-act="admin"', 'data-act="delete"', "Add users"):
        assert control not in text
    r = await post_form(viewer, "/hub/admin/users/add", {"usernames": "mallory"})
    assert r.code == 403
    assert "admin:users" in r.body.decode()
    r = await post_form(viewer, user_path("ann") + "/rename", {"new_name": "anna"})
    assert r.code == 403
    assert (await hub.api("GET", "/users/anna")).status == 404

    admin = await logged_in(hub)
    text = await get_page(admin)
    assert 'id="bulk"' in text
    assert text.count('data-act="start"') == 4


# --- search, sort, pages ---------------------------------------------------------------


def _set_activity(session: Session, activity: dict[str, Any]) -> None:
    for name, when in activity.items():
        session.execute(update(User).where(User.name == name).values(last_activity=when))


async def test_search_sort_and_pages(hub_factory: HubFactory) -> None:
    import datetime

    hub = await admin_hub(hub_factory, "ann", "anna", "bo", "cy")
    await insert_users(hub, [{"name": f"student{i:02}"} for i in range(1, 31)])
    now = utcnow()
    await hub.db.run(
        _set_activity,
        {
            "bo": now - datetime.timedelta(minutes=5),
            "ann": now - datetime.timedelta(days=2),
            "cy": now - datetime.timedelta(seconds=5),
        },
    )
    assert (await hub.api("POST", "/users/anna/server")).status in (201, 202)
    browser = await logged_in(hub)

    text = await get_page(browser)
    names = row_names(text)
    assert names[:6] == ["admin", "ann", "anna", "bo", "cy", "student01"]
    assert len(names) == 35
    assert 'Users 1&ndash;<span id="users-last">35</span> of <span id="users-total">35<' in text
    assert (
        '<th scope="col" aria-sort="ascending"><a href="/hub/admin?order=desc">Name</a></th>'
        in text
    )
    assert 'aria-sort="none"><a href="/hub/admin?sort=last_activity">Last activity</a>' in text
    assert "pages of users" not in text.lower()  # one page: no page links

    # search: by part of the name, any case; the listing's other arguments are kept
    text = await get_page(browser, "?q=AN&order=desc")
    assert row_names(text) == ["anna", "ann"]
    assert "matching &ldquo;AN&rdquo;" in text
    assert '<input type="hidden" name="order" value="desc">' in text
    text = await get_page(browser, "?q=nobody")
    assert row_names(text) == []
    assert "No users match &ldquo;nobody&rdquo;." in text
    text = await get_page(browser, "?q=" + quote("100%_"))  # LIKE wildcards are text
    assert row_names(text) == []

    # sort: last activity (most recent first, never last), server state (running first)
    text = await get_page(browser, "?sort=last_activity")
    assert row_names(text)[:4] == ["anna", "cy", "bo", "ann"]  # anna's start is activity
    assert '<time datetime="' in text
    for shown in ("5 minutes ago", "2 days ago", "Never"):
        assert shown in text
    assert 'aria-sort="descending"><a href="/hub/admin?sort=last_activity&amp;order=asc">' in text
    text = await get_page(browser, "?sort=last_activity&order=asc")
    assert row_names(text)[-4:] == ["ann", "bo", "cy", "anna"]
    text = await get_page(browser, "?sort=server")
    assert row_names(text)[0] == "anna"
    text = await get_page(browser, "?sort=server&order=desc")
    assert row_names(text)[-1] == "anna"
    text = await get_page(browser, "?sort=name&order=desc")
    assert row_names(text)[:2] == ["student30", "student29"]

    # pages: 25 a page, links that keep the listing, a page past the end shows the last
    text = await get_page(browser, "?per_page=25&q=student")
    assert row_names(text) == [f"student{i:02}" for i in range(1, 26)]
    assert "Page 1 of 2" in text
    assert 'href="/hub/admin?q=student&amp;per_page=25&amp;page=2" rel="next"' in text
    text = await get_page(browser, "?per_page=25&q=student&page=2")
    assert row_names(text) == [f"student{i:02}" for i in range(26, 31)]
    assert '26&ndash;<span id="users-last">30</span> of' in text
    assert 'href="/hub/admin?q=student&amp;per_page=25" rel="prev"' in text
    text = await get_page(browser, "?per_page=25&q=student&page=9")
    assert row_names(text) == [f"student{i:02}" for i in range(26, 31)]
    assert "Page 2 of 2" in text
    # the script reads the same page of the same listing from the REST API
    assert 'data-q="student" data-sort="name" data-offset="25" data-limit="25"' in text


async def test_pages_follow_the_hubs_page_limit(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory, api_page_max_limit=30)
    await insert_users(hub, [{"name": f"student{i:02}"} for i in range(1, 31)])
    browser = await logged_in(hub)
    text = await get_page(browser)
    assert len(row_names(text)) == 25  # the largest page size offered within the limit
    assert '<option value="25" selected>25</option></select>' in text
    assert 'data-limit="25"' in text
    r = await browser.request("GET", "/hub/admin?per_page=50")
    assert r.code == 400
    assert "Rows per page can be 25." in r.body.decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?sort=password", "sorted by name, last_activity or server"),
        ("?sort=name&order=sideways", "asc or desc"),
        ("?per_page=7", "Rows per page can be 25, 50, 100, 200"),
        ("?per_page=-1", "Rows per page"),
        ("?page=0", "page number"),
        ("?page=two", "page number"),
        ("?page=99999999999999999999", "page number"),
        ("?q=" + "x" * 257, "search is too long"),
    ],
)
async def test_bad_list_arguments(hub_factory: HubFactory, query: str, message: str) -> None:
    hub = await admin_hub(hub_factory)
    browser = await logged_in(hub)
    r = await browser.request("GET", "/hub/admin" + query)
    assert r.code == 400
    text = r.body.decode()
    assert message in text
    assert "Traceback" not in text


# --- forms without JavaScript ----------------------------------------------------------


async def test_server_forms(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory, "ann", "bo", allow_named_servers=True)
    browser = await logged_in(hub)
    kind, text, _ = await act(browser, user_path("ann") + "/start", {"server": ""})
    assert kind == "ok"
    assert text in ("Started ann's server.", "ann's server is starting.")

    async def ready() -> bool:
        return bool((await model(hub, "ann"))["servers"][""]["ready"])

    await eventually(ready)
    page = await get_page(browser)
    row = row_html(page, "ann")
    assert '<span class="state state-ready">Running</span>' in row
    assert '<a class="open" href="/user/ann/">' in row

    # a named server: started and stopped by name
    kind, text, _ = await act(browser, user_path("bo") + "/start", {"server": "lab"})
    assert kind == "ok", text

    async def lab_ready() -> bool:
        return bool((await model(hub, "bo"))["servers"].get("lab", {}).get("ready"))

    await eventually(lab_ready)
    page = await get_page(browser)
    row = row_html(page, "bo")
    assert '<li data-server="lab" data-state="ready">' in row
    assert 'href="/user/bo/lab/"' in row
    kind, text, _ = await act(browser, user_path("bo") + "/stop", {"server": "lab"})
    assert (kind, text) == ("ok", "Stopped bo's server lab.")
    assert (await model(hub, "bo"))["servers"]["lab"]["stopped"]

    # starting what runs, a server name that cannot be, a user who is not there
    kind, text, _ = await act(browser, user_path("ann") + "/start", {"server": ""})
    assert (kind, text) == ("error", "Could not start ann's server: ann is already running")
    r = await post_form(browser, user_path("ann") + "/start", {"server": "../x"})
    assert r.code == 400
    assert "invalid server name" in r.body.decode()
    kind, text, _ = await act(browser, user_path("nobody") + "/start", {"server": ""})
    assert (kind, text) == ("error", "Could not start nobody's server: No such user: nobody")

    # stopping
    kind, text, _ = await act(browser, user_path("ann") + "/stop", {"server": ""})
    assert (kind, text) == ("ok", "Stopped ann's server.")
    assert (await model(hub, "ann"))["servers"][""]["stopped"]


async def test_a_failed_start_shows_why(hub_factory: HubFactory) -> None:
    hub = await admin_hub(
        hub_factory, "ann", "bo", spawn_page_wait=30, config="c.ProcessSpawner.failure = 'exit'\n"
    )
    browser = await logged_in(hub)
    kind, text, _ = await act(browser, user_path("ann") + "/start", {"server": ""})
    assert kind == "error"
    assert text.startswith("Could not start ann's server: The server failed to start")
    page = await get_page(browser)
    row = row_html(page, "ann")
    failure = '<p class="failure">Last start failed: <span class="failure-text">'
    assert re.search(re.escape(failure) + "[^<]*exited with status 3", row)
    # bo never started: no failure shown
    row = row_html(page, "bo")
    assert '<p class="failure" hidden>' in row


async def test_user_forms(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory, "ann", "bo", "cy")
    browser = await logged_in(hub)

    # rename: to a free name; to a taken one, an invalid one, or while a server runs
    kind, text, _ = await act(browser, user_path("ann") + "/rename", {"new_name": " Anna "})
    assert (kind, text) == ("ok", "Renamed ann to anna.")
    assert (await hub.api("GET", "/users/ann")).status == 404
    assert (await model(hub, "anna"))["name"] == "anna"
    before = await api_state(hub)
    for new_name, message in (
        ("bo", "User bo already exists"),
        ("b o", "invalid username"),
        ("", "must not be empty"),
    ):
        kind, text, _ = await act(browser, user_path("anna") + "/rename", {"new_name": new_name})
        assert kind == "error"
        assert text.startswith("Could not rename anna: ")
        assert message in text
    kind, text, _ = await act(browser, user_path("nobody") + "/rename", {"new_name": "x"})
    assert (kind, text) == ("error", "Could not rename nobody: No such user: nobody")
    assert await api_state(hub) == before
    assert (await hub.api("POST", "/users/cy/server")).status in (201, 202)
    kind, text, _ = await act(browser, user_path("cy") + "/rename", {"new_name": "cyd"})
    assert kind == "error"
    assert "stop it before renaming" in text

    # admin: grant, remove; never one's own
    kind, text, _ = await act(browser, user_path("bo") + "/admin", {"admin": "1"})
    assert (kind, text) == ("ok", "bo is now an admin.")
    assert (await model(hub, "bo"))["admin"] is True
    page = await get_page(browser)
    row = row_html(page, "bo")
    assert '<span class="badge admin">admin</span>' in row
    assert '<span class="label">Remove admin</span>' in row
    kind, text, _ = await act(browser, user_path("bo") + "/admin", {"admin": "0"})
    assert (kind, text) == ("ok", "bo is no longer an admin.")
    assert (await model(hub, "bo"))["admin"] is False
    kind, text, _ = await act(browser, user_path("admin") + "/admin", {"admin": "0"})
    assert (kind, text) == (
        "error",
        "Could not change admin: You cannot remove your own admin rights",
    )
    r = await post_form(browser, user_path("bo") + "/admin", {"admin": "yes"})
    assert r.code == 400

    # block: their servers stop and they cannot start one; unblock
    kind, text, _ = await act(browser, user_path("cy") + "/block", {"blocked": "1"})
    assert (kind, text) == ("ok", "Blocked cy: their logins ended and their servers were stopped.")
    cy = await model(hub, "cy")
    assert cy["blocked"] is True
    assert cy["servers"][""]["stopped"]
    page = await get_page(browser)
    row = row_html(page, "cy")
    assert '<span class="badge blocked">blocked</span>' in row
    kind, text, _ = await act(browser, user_path("cy") + "/start", {"server": ""})
    assert (kind, text) == ("error", "Could not start cy's server: User cy is blocked")
    kind, text, _ = await act(browser, user_path("cy") + "/block", {"blocked": "0"})
    assert (kind, text) == ("ok", "Unblocked cy.")
    assert (await model(hub, "cy"))["blocked"] is False

    # delete: a page asks first; a running server is stopped first; never oneself
    assert (await hub.api("POST", "/users/bo/server")).status in (201, 202)
    r = await browser.request("GET", user_path("bo") + "/delete?back=" + quote("/hub/admin?q=b"))
    assert r.code == 200
    confirm = r.body.decode()
    assert "<h1>Delete bo?</h1>" in confirm
    assert "1 server running: stopped first" in confirm
    assert f'<form method="post" action="{user_path("bo")}/delete">' in confirm
    assert '<a href="/hub/admin?q=b">Cancel</a>' in confirm
    assert (await hub.api("GET", "/users/bo")).status == 200  # asking changed nothing
    kind, text, _ = await act(browser, user_path("bo") + "/delete", back="/hub/admin?q=b")
    assert (kind, text) == ("ok", "Deleted bo.")
    assert (await hub.api("GET", "/users/bo")).status == 404
    kind, text, _ = await act(browser, user_path("bo") + "/delete")
    assert (kind, text) == ("error", "Could not delete bo: No such user: bo")
    kind, text, _ = await act(browser, user_path("admin") + "/delete")
    assert (kind, text) == ("error", "Could not delete admin: You cannot delete yourself")
    r = await browser.request("GET", user_path("nobody") + "/delete")
    assert r.code == 404


async def test_forms_need_the_xsrf_token(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory, "ann", "bo")
    browser = await logged_in(hub)
    before = await api_state(hub)
    forms: list[tuple[str, list[tuple[str, str]]]] = [
        (user_path("ann") + "/start", [("server", "")]),
        (user_path("ann") + "/rename", [("new_name", "anna")]),
        (user_path("ann") + "/admin", [("admin", "1")]),
        (user_path("ann") + "/block", [("blocked", "1")]),
        (user_path("ann") + "/delete", []),
        ("/hub/admin/users/bulk", [("action", "delete"), ("confirm", "yes"), ("user", "bo")]),
        ("/hub/admin/users/add", [("usernames", "mallory")]),
    ]
    for path, fields in forms:
        for token in (None, "2|00000000|00000000000000000000000000000000|1700000000"):
            body = [("back", "/hub/admin"), *fields]
            if token is not None:
                body.insert(0, ("_xsrf", token))
            r = await browser.request("POST", path, body=urlencode(body).encode())
            assert r.code == 403, (path, token, r.code)
            assert "Location" not in r.headers
    assert await api_state(hub) == before
    assert (await model(hub, "ann"))["servers"] == {}  # never started


async def test_back_only_leads_to_the_users_list(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory, "ann")
    browser = await logged_in(hub)
    for back, expected in (
        ("/hub/admin?q=an&page=2", "/hub/admin?q=an&page=2"),
        ("//evil.example/hub/admin", "/hub/admin"),
        ("https://evil.example/", "/hub/admin"),
        ("/hub/admin/../../user/x", "/hub/admin"),
        ("/hub/token", "/hub/admin"),
        ("/hub/adminx", "/hub/admin"),
    ):
        r = await post_form(browser, user_path("ann") + "/admin", {"admin": "0"}, back=back)
        assert (r.code, r.headers["Location"]) == (303, expected)


async def test_bulk_actions(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory, "ann", "bo", "cy", "dee")
    assert (await hub.api("POST", "/groups/physics")).status == 201
    assert (await hub.api("PATCH", "/users/cy", {"blocked": True})).status == 200
    browser = await logged_in(hub)
    bulk = "/hub/admin/users/bulk"

    def ticked(*names: str) -> list[tuple[str, str]]:
        return [("user", n) for n in names]

    kind, text, items = await act(browser, bulk, [("action", "start"), *ticked("ann", "bo", "cy")])
    assert kind == "error"  # one of three could not
    assert text == "Started servers for 2 of 3. 1 could not start."
    assert items[0] == "cy: User cy is blocked"
    assert sorted(items[1:]) in (
        ["ann: running", "bo: running"],
        ["ann: running", "bo: starting"],
        ["ann: starting", "bo: running"],
        ["ann: starting", "bo: starting"],
    )

    async def running() -> bool:
        return all([(await model(hub, n))["servers"][""]["ready"] for n in ("ann", "bo")])

    await eventually(running)
    kind, text, items = await act(browser, bulk, [("action", "stop"), *ticked("ann", "bo", "dee")])
    assert (kind, text) == ("ok", "Stopped servers for 3 of 3.")
    assert sorted(items) == ["ann: stopped", "bo: stopped", "dee: stopped"]
    assert (await model(hub, "ann"))["servers"][""]["stopped"]

    kind, text, items = await act(
        browser, bulk, [("action", "group"), ("group", "physics"), *ticked("ann", "dee")]
    )
    assert (kind, text, items) == ("ok", "Added 2 users to physics.", ["ann", "dee"])
    assert (await model(hub, "dee"))["groups"] == ["physics"]
    page = await get_page(browser)
    assert '<option value="physics">physics</option>' in page
    kind, text, _ = await act(
        browser, bulk, [("action", "group"), ("group", "nope"), *ticked("ann")]
    )
    assert (kind, text) == ("error", "Could not add users to nope: No such group: nope")
    kind, text, _ = await act(browser, bulk, [("action", "start")])
    assert (kind, text) == ("error", "Select at least one user first.")
    r = await post_form(browser, bulk, [("action", "explode"), *ticked("ann")])
    assert r.code == 400
    r = await post_form(
        browser, bulk, [("action", "stop"), *ticked(*(f"u{i}" for i in range(201)))]
    )
    assert r.code == 400

    # delete asks first (a page listing who goes), then deletes each, reporting each
    r = await post_form(browser, bulk, [("action", "delete"), *ticked("bo", "dee", "admin")])
    assert r.code == 200
    confirm = r.body.decode()
    assert "<h1>Delete 2 users?</h1>" in confirm  # not oneself
    assert '<input type="hidden" name="user" value="bo">' in confirm
    assert '<input type="hidden" name="confirm" value="yes">' in confirm
    assert "Delete 2 users</button>" in confirm
    assert (await hub.api("GET", "/users/bo")).status == 200
    kind, text, items = await act(
        browser, bulk, [("action", "delete"), ("confirm", "yes"), *ticked("bo", "dee", "admin")]
    )
    assert (kind, text) == ("error", "Deleted 2 of 3. 1 could not be deleted.")
    assert items == ["admin: You cannot delete yourself", "bo: deleted", "dee: deleted"]
    assert (await hub.api("GET", "/users/dee")).status == 404


async def test_add_users(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory, "ann")
    browser = await logged_in(hub)
    lines = "\n".join(["Zed", "", "  yan  ", "ann", "bad name", "zed", "<script>", "x" * 200])
    kind, text, items = await act(browser, "/hub/admin/users/add", {"usernames": lines})
    assert kind == "error"
    assert text == "Added 2 users; 1 already existed; 3 lines not valid."
    assert items[:3] == [
        "line 5: invalid username 'bad name': character ' ' is not allowed (use letters, "
        "digits and + - . @ _)",
        "line 7: invalid username '<script>': must start with a letter or digit",
        "line 8: username is too long (200 characters, at most 128)",
    ]
    assert items[3:] == ["ann: already existed", "zed: added", "yan: added"]
    assert (await model(hub, "zed"))["admin"] is False
    assert (await model(hub, "yan"))["name"] == "yan"

    kind, text, items = await act(
        browser, "/hub/admin/users/add", {"usernames": "boss", "admin": "1"}
    )
    assert (kind, text, items) == ("ok", "Added 1 user.", ["boss: added"])
    assert (await model(hub, "boss"))["admin"] is True
    kind, text, _ = await act(browser, "/hub/admin/users/add", {"usernames": "ann\nzed"})
    assert (kind, text) == ("ok", "Added 0 users; 2 already existed.")
    kind, text, _ = await act(browser, "/hub/admin/users/add", {"usernames": "\n \n"})
    assert (kind, text) == ("error", "Type at least one username, one per line.")
    r = await post_form(browser, "/hub/admin/users/add", {"usernames": "a\n" * 10_001})
    assert r.code == 400
    assert (await hub.api("GET", "/users/a")).status == 404


# --- what the page shows ----------------------------------------------------------------


async def test_hostile_names_are_text(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory)
    await insert_hostile(hub)
    browser = await logged_in(hub)
    page = await get_page(browser)
    assert row_names(page) == sorted(["admin", *HOSTILE])
    for raw in (*HOSTILE, HOSTILE_GROUP, HOSTILE_FULL_NAME, "<em>boom</em>"):
        if raw.startswith("\u202e"):
            continue
        assert raw not in page
        assert str(escape(raw)) in page
    assert "<img" not in page
    assert page.count("<script") == 3  # the page's own three scripts, by nonce
    # names are isolated from the text around them, and a right-to-left override shows
    # as what it is; the name itself stays only where the page's forms need it
    assert '<bdi class="name js-name">[U+202E]gnp.exe</bdi>' in page
    assert set(re.findall('([a-z-]+)="\u202e', page)) == {"data-user", "value"}
    assert len(re.findall('([a-z-]+)="\u202e', page)) == page.count("\u202e")
    # in URLs they are encoded
    assert f'action="{user_path(HOSTILE[0])}/start"' in page
    assert "/hub/admin/users/%3Cscript%3Ealert%28%27name%27%29%3C%2Fscript%3E/start" in page
    # and the forms work on them
    kind, text, _ = await act(browser, user_path(HOSTILE[1]) + "/rename", {"new_name": "eve"})
    assert (kind, text) == ("ok", f"Renamed {HOSTILE[1]} to eve.")
    kind, text, _ = await act(browser, user_path(HOSTILE[0]) + "/delete")
    assert (kind, text) == ("ok", f"Deleted {HOSTILE[0]}.")


def _seed(session: Session, count: int) -> None:
    import datetime

    now = utcnow()
    _insert_users(
        session,
        [
            {
                "name": f"user{i:05}",
                "last_activity": now - datetime.timedelta(minutes=i) if i % 3 else None,
            }
            for i in range(count)
        ],
    )


@pytest.mark.slow
async def test_ten_thousand_users(hub_factory: HubFactory) -> None:
    hub = await admin_hub(hub_factory)
    await hub.db.run(_seed, 10_000)
    browser = await logged_in(hub)
    timings = {}
    for query in (
        "",
        "?page=200",
        "?sort=last_activity",
        "?sort=server",
        "?q=user0999",
        "?per_page=200&page=51",
    ):
        start = time.perf_counter()
        text = await get_page(browser, query)
        timings[query or "(first page)"] = (time.perf_counter() - start) * 1000
        if query == "":
            assert row_names(text)[:3] == ["admin", "user00000", "user00001"]
            assert len(row_names(text)) == 50
            assert (
                '1&ndash;<span id="users-last">50</span> of <span id="users-total">10,001' in text
            )
            assert "Page 1 of 201" in text
            assert 'href="/hub/admin?page=201">Last page</a>' in text
        elif query == "?page=200":
            assert row_names(text) == [f"user{i:05}" for i in range(9949, 9999)]
        elif query == "?sort=last_activity":
            assert row_names(text)[:2] == ["user00001", "user00002"]
        elif query == "?q=user0999":
            assert row_names(text) == [f"user0999{i}" for i in range(10)]
            assert '1&ndash;<span id="users-last">10</span> of' in text
        elif query == "?per_page=200&page=51":
            assert row_names(text) == ["user09999"]
            assert "Page 51 of 51" in text
    print("render times (ms):", {k: round(v, 1) for k, v in timings.items()})
