"""The pages' own files: versioned URLs cached for a year, bare ones revalidated, and
responses compressed for browsers that ask."""

from __future__ import annotations

import gzip
import re

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.conftest import HubFactory
from tests.test_pages import PASSWORD, SPAWNER, Browser


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


async def test_versioned_static_files(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    page = (await browser.request("GET", "/hub/home")).body.decode()
    scripts = re.findall(r'src="(/hub/static/[^"]+)"', page)
    assert scripts, page[:500]
    for src in scripts:
        assert re.search(r"\?v=[0-9a-f]{16}$", src), src
        r = await browser.request("GET", src)
        assert r.code == 200
        assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        # the same file without its version, or with another one: revalidated each time
        bare = src.split("?")[0]
        for other in (bare, bare + "?v=0000000000000000"):
            r = await browser.request("GET", other)
            assert r.code == 200
            assert r.headers["Cache-Control"] == "no-cache"
    r = await browser.request("GET", "/hub/static/../pages/base.py")
    assert r.code in (403, 404)
    r = await browser.request("GET", "/hub/static/nothing-here.js")
    assert r.code == 404


async def test_pages_are_compressed_for_browsers_that_ask(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    r = await AsyncHTTPClient().fetch(
        hub.url + "login", headers={"Accept-Encoding": "gzip"}, decompress_response=False
    )
    assert r.headers["Content-Encoding"] == "gzip"
    assert b"<form" in gzip.decompress(r.body)
    r = await AsyncHTTPClient().fetch(hub.url + "login", decompress_response=False)
    assert "Content-Encoding" not in r.headers
    assert b"<form" in r.body


async def test_event_streams_are_never_compressed(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    r = await AsyncHTTPClient().fetch(
        hub.url + "api/users/ann/server/progress",
        headers={"Accept-Encoding": "gzip", "Authorization": f"token {hub.admin_token}"},
        decompress_response=False,
        raise_error=False,
    )
    assert r.headers["Content-Type"].startswith("text/event-stream"), r.code
    assert "Content-Encoding" not in r.headers
    assert r.body.startswith(b"data:") or r.body.startswith(b":"), r.body[:80]
