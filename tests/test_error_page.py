"""The hub's error page, the proxy's error target (`/hub/error/<code>?url=`).

Through a real `atrium proxy`: a user's server that stopped answering gets
browsers a 503 page saying so, with a button to start it, and API clients a
JSON 503. Directly: hostile URLs are escaped, odd codes are refused.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from hub.proxy.supervisor import pid_alive
from tests.browser import browser_page
from tests.conftest import HubFactory, RunningHub, behind_atrium_proxy
from tests.spawner import started_pids
from tests.waits import eventually

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


async def fetch(url: str, **kw: object) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(
        url, raise_error=False, request_timeout=10, follow_redirects=False, **kw
    )


def root(hub: RunningHub) -> str:
    return hub.url[: -len("hub/")]


async def test_a_server_that_stopped_answering(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = await hub_factory(**behind_atrium_proxy(tmp_path, allow_named_servers=True))
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/servers/gpu")).status == 201
    pid = started_pids[-1]
    os.kill(pid, signal.SIGKILL)  # the server dies; its route is still there

    async def dead() -> bool:
        return not pid_alive(pid)

    await eventually(dead)

    page = await fetch(f"{public}/user/ann/gpu/lab?x=<b>", headers=HTML)
    assert page.code == 503
    assert page.headers["Content-Type"].startswith("text/html")
    text = page.body.decode()
    assert "Your server is not running" in text
    assert "ann&#39;s server gpu" in text
    assert "<code>/user/ann/gpu/</code>" in text
    assert 'action="/hub/spawn/ann/gpu"' in text
    assert 'value="/user/ann/gpu/lab?x=&lt;b&gt;"' in text  # the page to return to, escaped
    assert "<b>" not in text

    # what a person sees: the page in a real browser, with its button
    async with browser_page() as page:
        response = await page.goto(f"{public}/user/ann/gpu/lab")
        assert response.status == 503
        await page.screenshot(path=str(tmp_path / "server-not-running.png"))
        assert await page.locator("h1").inner_text() == "Your server is not running"
        button = page.get_by_role("button", name="Start my server")
        assert await button.is_visible()
        form_action = await page.locator("form").get_attribute("action")
        assert form_action == "/hub/spawn/ann/gpu"
        assert await page.get_by_role("link", name="Go to the hub").get_attribute("href") == "/hub/"

    api = await fetch(f"{public}/user/ann/gpu/api/status")
    assert api.code == 503
    assert orjson.loads(api.body) == {
        "status": 503,
        "message": "The server at this address is not running",
    }


@pytest.mark.parametrize(
    ("path", "status", "contains"),
    [
        # the same page whether or not the user exists
        ("error/503?url=/user/nobody/", 503, "Your server is not running"),
        ("error/503?url=/hub/api/", 503, "could not be reached"),
        ("error/503", 503, "Something went wrong between the proxy"),
        ("error/502?url=/services/x/", 502, "<code>/services/x/</code>"),
        ("error/999?url=/user/a/", 400, "Something went wrong between the proxy"),
        ("error/12", 400, "Something went wrong"),
        (
            "error/503?url=/user/%3Cscript%3Ealert(1)%3C/script%3E/",
            503,
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ),
    ],
)
async def test_error_page_input(
    hub_factory: HubFactory, path: str, status: int, contains: str
) -> None:
    hub = await hub_factory()
    r = await fetch(hub.url + path, headers=HTML)
    assert r.code == status
    text = r.body.decode()
    assert contains in text
    assert "<script>" not in text
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_start_a_named_server_from_its_error_page(hub_factory: HubFactory) -> None:
    """The button on a stopped named server's page leads to that server's spawn page,
    keeping the page asked for, and starting it lands there."""
    from tests.test_pages import PASSWORD, Browser

    hub = await hub_factory(
        spawner_class="tests.spawner.ProcessSpawner", allow_named_servers=True, spawn_page_wait=30
    )
    await hub.add_user("ann", password=PASSWORD)
    assert (await hub.api("POST", "/users/ann/servers/gpu")).status == 201
    assert (await hub.api("DELETE", "/users/ann/servers/gpu")).status == 204
    page = await fetch(hub.url + "error/503?url=/user/ann/gpu/lab/tree", headers=HTML)
    text = page.body.decode()
    assert '<form method="get" action="/hub/spawn/ann/gpu">' in text
    assert 'name="next" value="/user/ann/gpu/lab/tree"' in text
    browser = Browser(hub)
    await browser.login("ann")
    spawn = await browser.request("GET", "/hub/spawn/ann/gpu?next=/user/ann/gpu/lab/tree")
    assert spawn.code == 200
    assert 'name="next" value="/user/ann/gpu/lab/tree"' in spawn.body.decode()
    r = await browser.request(
        "POST",
        "/hub/spawn/ann/gpu",
        {"_xsrf": await browser.xsrf(), "next": "/user/ann/gpu/lab/tree"},
    )
    assert (r.code, r.headers["Location"]) == (302, "/user/ann/gpu/lab/tree")
    assert (await hub.api("GET", "/users/ann")).json()["servers"]["gpu"]["ready"] is True


@pytest.mark.parametrize(
    ("path", "status", "hint"),
    [
        ("spawn/nobody", 404, "Check the address, or start again from your home page."),
        ("spawn/ann/x", 404, "Check the address"),  # named servers are off
        ("spawn/ann/-x", 404, "Check the address"),
    ],
)
async def test_the_hubs_own_error_pages(
    hub_factory: HubFactory, path: str, status: int, hint: str
) -> None:
    from tests.test_pages import PASSWORD, Browser

    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    r = await browser.request("GET", "/hub/" + path)
    assert r.code == status
    text = r.body.decode()
    assert r.headers["Content-Type"].startswith("text/html")
    assert hint in text
    assert "<h1>Not found</h1>" in text
    assert 'href="/hub/">Go to the hub</a>' in text
    assert "Traceback" not in text
