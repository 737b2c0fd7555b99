"""Addresses outside the hub's pages and API: the base URL, users' server addresses that
reach the hub (the proxy has no route for them), and unknown paths."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from tests.conftest import HubFactory, behind_atrium_proxy
from tests.test_pages import PASSWORD, SPAWNER, Browser


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


async def test_the_base_url_leads_to_the_hub(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    r = await Browser(hub).request("GET", "/")
    assert r.code == 302
    assert r.headers["Location"] == "/hub/"


async def test_the_icon(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    browser = Browser(hub)
    r = await browser.request("GET", "/favicon.ico")
    assert r.code == 301
    assert r.headers["Location"] == "/hub/static/favicon.svg"
    r = await browser.request("GET", "/hub/static/favicon.svg")
    assert r.code == 200
    assert r.headers["Content-Type"] == "image/svg+xml"
    assert b"<svg" in r.body


async def test_a_page_without_a_form_sets_no_xsrf_cookie(hub_factory: HubFactory) -> None:
    """A browser's first visit: the login page's form and the XSRF cookie must stay a
    pair even when another page (a 404 for an icon, say) loads at the same moment."""
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    first = Browser(hub)
    login_page = (await first.request("GET", "/hub/login")).body.decode()
    form_token = re.search(r'name="_xsrf" value="([^"]+)"', login_page)
    assert form_token is not None
    # the same browser's parallel request, sent before the cookie came back
    other = Browser(hub)
    for path in ["/hub/nowhere", "/elsewhere", "/user/ann/"]:
        r = await other.request("GET", path, headers={"Accept": "text/html"})
        assert "_xsrf" not in r.headers.get("Set-Cookie", ""), path
    assert "_xsrf" not in other.cookies
    # so the login that follows works
    r = await first.request(
        "POST",
        "/hub/login",
        {"username": "ann", "password": PASSWORD, "_xsrf": form_token.group(1)},
    )
    assert r.code == 302, r.body[:300]


async def test_unknown_paths_get_a_404_page_and_api_paths_json(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    browser = Browser(hub)
    for path in ["/hub/nowhere", "/elsewhere/<script>x", "/hub/admin/nowhere/at/all"]:
        r = await browser.request("GET", path, headers={"Accept": "text/html"})
        assert r.code == 404, path
        assert r.headers["Content-Type"].startswith("text/html")
        page = r.body.decode()
        assert "Not found" in page
        assert "<script>x" not in page
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    for path in ["/hub/api/nowhere", "/elsewhere/api/users"]:
        r = await browser.request("GET", path)
        assert r.code == 404, path
        assert orjson.loads(r.body)["message"].startswith("No such API endpoint")
    # a JSON client on a wrong path is told in JSON too
    r = await browser.request("GET", "/elsewhere", headers={"Accept": "application/json"})
    assert r.code == 404
    assert orjson.loads(r.body)["status"] == 404


async def test_a_stopped_servers_address_offers_to_start_it(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    # not logged in: log in first, then back here
    r = await browser.request("GET", "/user/ann/lab/tree/a.ipynb")
    assert r.code == 302
    assert r.headers["Location"].startswith("/hub/login?next=")
    await browser.login("ann")
    r = await browser.request("GET", "/user/ann/lab/tree/a.ipynb")
    assert r.code == 503
    page = r.body.decode()
    assert "Your server is not running" in page
    assert 'action="/hub/spawn/ann"' in page or "/hub/spawn/ann" in page
    assert "/user/ann/lab/tree/a.ipynb" in page  # where to go once it runs
    # an API client writing to it gets JSON, and nothing starts
    r = await browser.request("POST", "/user/ann/api/contents", body=b"{}")
    assert r.code == 503
    assert orjson.loads(r.body)["message"] == "This server is not running"
    assert (await hub.api("GET", "/users/ann")).json()["servers"] == {}


async def test_a_lost_route_is_put_back(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = await hub_factory(**behind_atrium_proxy(tmp_path))
    await hub.add_user("ann", password=PASSWORD)
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    proxy = hub.state.proxy
    assert proxy is not None
    assert proxy.client is not None
    await proxy.client.delete_route("/user/ann")
    assert "/user/ann" not in await proxy.client.get_routes()
    browser = Browser(hub)  # straight to the hub, as the proxy's default route sends it
    await browser.login("ann")
    r = await browser.request("GET", "/user/ann/tree?x=1")
    assert r.code == 302
    assert r.headers["Location"] == "/user/ann/tree?x=1&_atrium_retry=1"
    assert "/user/ann" in await proxy.client.get_routes()
    # if the route still does not take, the second visit ends on the page, not in a loop
    r = await browser.request("GET", "/user/ann/tree?x=1&_atrium_retry=1")
    assert r.code == 503
    assert "Your server is not running" in r.body.decode()
