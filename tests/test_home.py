"""The home page, `/hub/home`, over HTTP without JavaScript (forms, post/redirect/get).

A person's default server and named servers with their states; start, stop,
create, rename and delete through the page's forms; the named-server limit and
bad names with messages next to the field; the last failed start with what to
do; where `/hub/` and a login lead. Writes without the XSRF token change
nothing, and server names from the database are escaped whatever they are.
The same page with JavaScript, in Chromium: `tests/test_e2e_student.py`.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import select

from hub.db.models import Server, User
from tests.conftest import HubFactory, RunningHub
from tests.test_pages import PASSWORD, SPAWNER, Browser


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


async def named_hub(hub_factory: HubFactory, **settings: Any) -> tuple[RunningHub, Browser]:
    settings.setdefault("spawn_page_wait", 30)  # the Start buttons wait for the server
    hub = await hub_factory(spawner_class=SPAWNER, allow_named_servers=True, **settings)
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    return hub, browser


async def home(browser: Browser, query: str = "") -> str:
    r = await browser.request("GET", "/hub/home" + query)
    assert r.code == 200, r.body[:300]
    return str(r.body.decode())


def row(page: str, name: str) -> str:
    """The HTML of one server's row on the home page."""
    rows = re.findall(r'<li class="server".*?</li>', page, re.S)
    found = [r for r in rows if f'data-server="{escape(name)}"' in r]
    assert len(found) == 1, f"no row for {name!r}"
    return found[0]


async def post(browser: Browser, **form: str) -> Any:
    return await browser.request("POST", "/hub/home", {"_xsrf": await browser.xsrf(), **form})


async def servers(hub: RunningHub) -> dict[str, Any]:
    r = await hub.api("GET", "/users/ann?include_stopped_servers=1")
    return r.json()["servers"]  # type: ignore[no-any-return]


async def test_home_needs_a_login(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    r = await Browser(hub).request("GET", "/hub/home")
    assert (r.code, r.headers["Location"]) == (302, "/hub/login?next=/hub/home")


async def test_servers_through_the_forms(hub_factory: HubFactory) -> None:
    hub, browser = await named_hub(hub_factory)
    page = await home(browser)
    default = row(page, "")
    assert "Default server" in default
    assert "Stopped" in default
    assert 'action="/hub/spawn/ann"' in default  # Start: the spawn page's own start
    assert 'aria-current="page">Home</a>' in page
    # a named server is created by starting it; the browser goes on to it
    r = await post(browser, action="create", name="lab")
    assert (r.code, r.headers["Location"]) == (302, "/user/ann/lab/")
    lab = row(await home(browser), "lab")
    assert 'data-state="ready"' in lab
    assert 'href="/user/ann/lab/"' in lab
    assert 'value="stop"' in lab
    assert 'value="rename"' not in lab  # only a stopped server is renamed or deleted
    # stop, rename, delete: each answers with a redirect back, and says what it did
    r = await post(browser, action="stop", server="lab")
    assert (r.code, r.headers["Location"]) == (302, "/hub/home?done=stopped&server=lab")
    page = await home(browser, "?done=stopped&server=lab")
    assert "lab was stopped." in page
    lab = row(page, "lab")
    assert 'data-state="stopped"' in lab
    assert 'value="rename"' in lab
    assert 'value="delete"' in lab
    r = await post(browser, action="rename", server="lab", new_name="notes")
    assert r.headers["Location"] == "/hub/home?done=renamed&server=notes&old=lab"
    assert "lab is now called notes." in await home(browser, "?done=renamed&server=notes&old=lab")
    assert sorted(await servers(hub)) == ["notes"]
    # deleting asks first, on a page of its own
    r = await post(browser, action="delete", server="notes")
    assert r.code == 200
    text = r.body.decode()
    assert "Delete the server notes?" in text
    assert 'name="confirm" value="yes"' in text
    assert sorted(await servers(hub)) == ["notes"]
    r = await post(browser, action="delete", server="notes", confirm="yes")
    assert r.headers["Location"] == "/hub/home?done=deleted&server=notes"
    assert await servers(hub) == {}
    # the default server: started from here, stopped from here
    r = await browser.request("POST", "/hub/spawn/ann", {"_xsrf": await browser.xsrf()})
    assert (r.code, r.headers["Location"]) == (302, "/user/ann/")
    assert 'data-state="ready"' in row(await home(browser), "")
    r = await post(browser, action="stop", server="")
    assert r.headers["Location"] == "/hub/home?done=stopped&server="
    assert "Default server was stopped." in await home(browser, "?done=stopped&server=")
    assert (await servers(hub))[""]["stopped"] is True


async def test_a_starting_server(hub_factory: HubFactory) -> None:
    hub, browser = await named_hub(hub_factory, slow_spawn_timeout=0.1)
    assert (await hub.api("POST", "/users/ann/servers/lab", {"start_delay": 30})).status == 202
    lab = row(await home(browser), "lab")
    assert "Starting" in lab
    assert 'href="/hub/spawn-pending/ann/lab"' in lab  # its progress
    assert 'value="stop"' in lab  # a start can be cancelled
    r = await post(browser, action="stop", server="lab")
    assert r.headers["Location"] == "/hub/home?done=stopped&server=lab"
    assert (await servers(hub))["lab"]["stopped"] is True


async def test_bad_names_and_the_limit(hub_factory: HubFactory) -> None:
    hub, browser = await named_hub(hub_factory, named_server_limit_per_user=2)
    page = await home(browser)
    assert "You have 0 of the 2 named servers this hub allows." in page
    for name, status, message in (
        ("a b", 400, "is not allowed"),
        ("-lab", 400, "must start with a letter or digit"),
        ("", 400, "Give the new server a name"),
        ("x" * 65, 400, "too long"),
    ):
        r = await post(browser, action="create", name=name)
        assert r.code == status, name
        text = r.body.decode()
        # next to the field, announced, with what was typed kept
        error = re.search(
            r'<p class="field-error" id="new-server-error" role="alert">(.*?)</p>', text
        )
        assert error, text[-2000:]
        assert message in html.unescape(error.group(1))
        assert f'value="{escape(name)}"' in text
    assert await servers(hub) == {}
    for name in ("one", "two"):
        assert (await post(browser, action="create", name=name)).code == 302
    r = await post(browser, action="create", name="one")
    assert r.code == 409
    assert "You already have a server named one" in r.body.decode()
    page = await home(browser)
    assert "You have the most named servers this hub allows (2)." in page
    assert 'id="new-server-name"' not in page
    r = await post(browser, action="create", name="three")
    assert r.code == 400
    assert "the most named servers this hub allows (2)" in html.unescape(r.body.decode())
    assert sorted(await servers(hub)) == ["one", "two"]
    # renaming: a running server keeps its name; a taken name is refused, beside its form
    r = await post(browser, action="rename", server="one", new_name="uno")
    assert r.code == 409
    assert "stop it before renaming it" in html.unescape(r.body.decode())
    await post(browser, action="stop", server="one")
    r = await post(browser, action="rename", server="one", new_name="two")
    assert r.code == 409
    one = row(r.body.decode(), "one")
    assert '<details class="rename" open>' in one
    assert "already has a server named two" in one
    assert 'role="alert"' in one
    # deleting a running server is refused (stop it first)
    r = await post(browser, action="delete", server="two", confirm="yes")
    assert r.code == 409
    assert "Stop two before deleting it" in r.body.decode()
    r = await post(browser, action="delete", server="", confirm="yes")
    assert r.code == 400
    r = await post(browser, action="frobnicate")
    assert r.code == 400
    assert sorted(await servers(hub)) == ["one", "two"]


async def test_without_named_servers(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    page = await home(browser)
    assert "New named server" not in page
    assert len(re.findall(r'<li class="server"', page)) == 1
    r = await post(browser, action="create", name="lab")
    assert r.code == 400
    assert "Named servers are not enabled" in r.body.decode()
    r = await post(browser, action="stop", server="lab")
    assert r.code == 400
    assert await servers(hub) == {}


async def test_the_last_failure_is_shown(hub_factory: HubFactory) -> None:
    hub, browser = await named_hub(hub_factory, config="c.ProcessSpawner.failure = 'exit'\n")
    r = await hub.api("POST", "/users/ann/server")
    assert r.status == 500
    default = row(await home(browser), "")
    assert "Its last start failed:" in default
    assert "exited with status 3" in default
    assert "Start it again. If it keeps failing, tell the people who run this hub" in default
    # the spawn page says so too
    spawn = (await browser.request("GET", "/hub/spawn/ann")).body.decode()
    assert "The last start failed:" in spawn
    assert "exited with status 3" in spawn


async def test_writes_without_the_xsrf_token_change_nothing(hub_factory: HubFactory) -> None:
    hub, browser = await named_hub(hub_factory)
    assert (await hub.api("POST", "/users/ann/servers/run")).status == 201
    await hub.api("POST", "/users/ann/servers/idle")
    await hub.api("DELETE", "/users/ann/servers/idle")
    before = await servers(hub)
    forms = [
        {"action": "stop", "server": "run"},
        {"action": "create", "name": "new"},
        {"action": "rename", "server": "idle", "new_name": "renamed"},
        {"action": "delete", "server": "idle", "confirm": "yes"},
    ]
    for form in forms:
        for xsrf in ({}, {"_xsrf": "2|00000000|" + "0" * 32 + "|1700000000"}, {"_xsrf": ""}):
            r = await browser.request("POST", "/hub/home", {**form, **xsrf})
            assert r.code == 403, (form, xsrf)
            assert "XSRF" in r.body.decode() or "Forbidden" in r.body.decode()
    # the API with the login cookie: the same
    for method, path in (
        ("DELETE", "/hub/api/users/ann/servers/run"),
        ("PATCH", "/hub/api/users/ann/servers/idle"),
    ):
        r = await browser.request(
            method, path, body=b'{"name": "x"}', allow_nonstandard_methods=True
        )
        assert r.code == 403, path
    assert await servers(hub) == before


HOSTILE = [
    '<img src=x onerror="alert(1)">',
    "quote\"and'apostrophe",
    "\u202eevil.exe",
    "&amp;lt;",
]


async def test_hostile_names_from_the_database_are_escaped(hub_factory: HubFactory) -> None:
    """Server names are validated on the way in, so hostile ones can only come from the
    database itself; the page escapes them anyway, and keeps their text isolated."""
    hub, browser = await named_hub(hub_factory)

    def insert(session: Any) -> None:
        user_id = session.scalar(select(User.id).where(User.name == "ann"))
        for name in HOSTILE:
            session.add(Server(user_id=user_id, name=name, state={}, user_options={}))

    await hub.db.run(insert)
    page = await home(browser)
    assert "<img" not in page
    assert 'onerror="' not in page
    for name in HOSTILE:
        escaped = str(escape(name))
        assert f'data-server="{escaped}"' in page
        assert f"<bdi>{escaped}</bdi>" in page
    assert "&amp;amp;lt;" in page
    assert 'value="quote&#34;and&#39;apostrophe"' in page
    # and in URLs, quoted
    assert 'href="/user/ann/%3Cimg%20src%3Dx' not in page  # stopped: no Open link
    assert 'action="/hub/spawn/ann/%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E"' in page


async def test_where_the_hub_and_a_login_lead(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, config="c.ProcessSpawner.default_url = '/lab'\n")
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    # not running: the page that starts it in one click
    r = await browser.login("ann")
    assert r.headers["Location"] == "/hub/spawn/ann"
    assert (await browser.request("GET", "/hub/")).headers["Location"] == "/hub/spawn/ann"
    # running: straight there, at the spawner's default URL
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    assert (await browser.request("GET", "/hub/")).headers["Location"] == "/user/ann/lab"
    r = await browser.request("GET", "/hub/login")
    assert r.headers["Location"] == "/user/ann/lab"
    again = Browser(hub)
    assert (await again.login("ann")).headers["Location"] == "/user/ann/lab"
    # a `next` that is safe still wins
    r = await Browser(hub).login("ann", next_url="/hub/token")
    assert r.headers["Location"] == "/hub/token"


async def test_the_home_page_first(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, redirect_to_server=False)
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    assert (await browser.login("ann")).headers["Location"] == "/hub/home"
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    assert (await browser.request("GET", "/hub/")).headers["Location"] == "/hub/home"


async def test_the_pages_script(hub_factory: HubFactory) -> None:
    """The page's scripts run by nonce, may call back to the hub and nothing else."""
    _hub, browser = await named_hub(hub_factory)
    r = await browser.request("GET", "/hub/home")
    csp = r.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce, csp
    text = r.body.decode()
    for script in ("atrium.js", "confirm.js", "home.js"):
        assert re.search(
            f'<script nonce="{nonce.group(1)}" src="/hub/static/{re.escape(script)}'
            r'\?v=[0-9a-f]{16}"></script>',
            text,
        ), script
    assert "connect-src 'self'" in csp
    for script in ("home.js", "confirm.js"):
        js = await browser.request("GET", f"/hub/static/{script}")
        assert js.code == 200
        assert js.headers["Content-Type"].startswith(("application/javascript", "text/javascript"))


PROFILES = (
    "<fieldset><legend>Profile</legend>"
    '<label><input type="radio" name="profile" value="small" checked> Small: 1 CPU</label>'
    '<label><input type="radio" name="profile" value="gpu"> GPU</label></fieldset>'
)


async def test_servers_with_options_start_on_the_spawn_page(hub_factory: HubFactory) -> None:
    """With an options form (profiles, say) Start and Create lead to the spawn page, where
    the person chooses before the server starts."""
    hub, browser = await named_hub(
        hub_factory, config=f"c.ProcessSpawner.options_form = {PROFILES!r}\n"
    )
    default = row(await home(browser), "")
    assert '<a class="button" href="/hub/spawn/ann">Start' in default
    r = await post(browser, action="create", name="lab")
    assert (r.code, r.headers["Location"]) == (302, "/hub/spawn/ann/lab")
    assert await servers(hub) == {}  # nothing starts before the options are chosen
    page = (await browser.request("GET", "/hub/spawn/ann/lab")).body.decode()
    assert 'value="gpu"' in page
    r = await browser.request(
        "POST", "/hub/spawn/ann/lab", {"_xsrf": await browser.xsrf(), "profile": "gpu"}
    )
    assert (r.code, r.headers["Location"]) == (302, "/user/ann/lab/")
    assert (await servers(hub))["lab"]["user_options"] == {"profile": "gpu"}
