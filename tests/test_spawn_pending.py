"""The spawn-pending page: `/hub/spawn-pending/<user>[/<server>]`.

In Chromium through the real proxy: a slow start shows its progress as it goes
and the browser ends up on the server; a start that fails shows why, with a
button to try again. Over HTTP: what works without JavaScript, the page's
script nonce, `next`, and who may see which page.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser_page
from tests.conftest import HubFactory, RunningHub, behind_atrium_proxy
from tests.test_pages import PASSWORD, SPAWNER, Browser
from tests.waits import eventually

# a server process that exits with status 3 after a while (no braces: the spawner
# formats each part of the command with the port)
EXITS_LATER = [sys.executable, "-c", "import time; time.sleep(2); raise SystemExit(3)"]


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


async def log_in_and_start(page: Any, public: str, shots: Path) -> None:
    await page.goto(f"{public}/hub/login?next=/hub/spawn/ann")
    await page.get_by_label("Username").fill("ann")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{public}/hub/spawn/ann")
    await page.get_by_role("button", name="Start my server").click()
    await page.wait_for_url(f"{public}/hub/spawn-pending/ann")


def csp_complaints(page: Any) -> list[str]:
    """Console messages the page logs (a blocked script or connection shows here)."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    page.on("pageerror", lambda error: messages.append(str(error)))
    return messages


async def test_a_slow_start_in_a_browser(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = await hub_factory(
        **behind_atrium_proxy(tmp_path, spawn_page_wait=0),
        config="c.ProcessSpawner.start_delay = 2\nc.ProcessSpawner.progress_interval = 0.3\n",
    )
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    await hub.add_user("ann", password=PASSWORD)
    shots = tmp_path / "shots"
    shots.mkdir()
    async with browser_page() as page:
        console = csp_complaints(page)
        await log_in_and_start(page, public, shots)
        events = page.locator("#events li")
        # the spawner's own messages appear as they come, under a moving bar
        await events.filter(has_text="Waiting for the server to answer").first.wait_for()
        await page.screenshot(path=str(shots / "1-pending.png"))
        assert await page.locator("h1").inner_text() == "Your server is starting"
        texts = await events.all_inner_texts()
        assert texts[:2] == ["Server requested", "Spawning server..."]
        assert texts[2].startswith("Server process ")
        assert int(await page.locator("#bar").get_attribute("aria-valuenow")) >= 30
        assert await page.locator("#retry").is_hidden()
        # ready: on to the server, through the proxy
        await page.wait_for_url(f"{public}/user/ann/")
        await page.screenshot(path=str(shots / "2-running.png"))
        landed = await page.request.get(f"{public}/user/ann/")
        assert landed.headers["server"].startswith("SimpleHTTP")
        assert not [m for m in console if "Content Security Policy" in m], console
    assert hub.state.orchestrator.progress == {}


async def test_a_failed_start_in_a_browser(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = await hub_factory(
        **behind_atrium_proxy(tmp_path, spawn_page_wait=0),
        config=f"c.ProcessSpawner.cmd = {EXITS_LATER!r}\n",
    )
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    await hub.add_user("ann", password=PASSWORD)
    shots = tmp_path / "shots"
    shots.mkdir()
    async with browser_page() as page:
        console = csp_complaints(page)
        await log_in_and_start(page, public, shots)
        await page.locator("#events li", has_text="Server requested").wait_for()
        # the start fails while the page follows it: it says why, and offers to try again
        failure = page.get_by_role("alert")
        await failure.wait_for()
        await page.screenshot(path=str(shots / "3-failed.png"))
        assert await failure.inner_text() == (
            "The server failed to start: the server process exited with status 3"
        )
        assert await page.locator("h1").inner_text() == "Your server could not start"
        retry = page.get_by_role("button", name="Try again")
        assert await retry.is_visible()
        async with page.expect_navigation(url=f"{public}/hub/spawn-pending/ann"):
            await retry.click()
        await page.locator("#events li", has_text="Server requested").wait_for()
        assert await page.locator("h1").inner_text() == "Your server is starting"
        assert not [m for m in console if "Content Security Policy" in m], console


async def test_an_immediate_failure_in_a_browser(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = await hub_factory(
        **behind_atrium_proxy(tmp_path), config="c.ProcessSpawner.failure = 'exit'\n"
    )
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    await hub.add_user("ann", password=PASSWORD)
    shots = tmp_path / "shots"
    shots.mkdir()
    async with browser_page() as page:
        await log_in_and_start(page, public, shots)
        failure = page.get_by_role("alert")
        await failure.wait_for()
        await page.screenshot(path=str(shots / "4-failed-at-once.png"))
        assert "exited with status 3" in await failure.inner_text()
        assert await page.get_by_role("button", name="Try again").is_visible()


async def start_slowly(hub: RunningHub, browser: Browser, path: str, **form: str) -> str:
    """POST the spawn page's form; returns where the browser is sent."""
    r = await browser.request("POST", path, {"_xsrf": await browser.xsrf(), **form})
    assert r.code == 302, r.body
    return str(r.headers["Location"])


async def test_without_javascript(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        allow_named_servers=True,
        spawn_page_wait=0,
        config="c.ProcessSpawner.start_delay = 1.5\nc.ProcessSpawner.default_url = '/tree'\n",
    )
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    assert await start_slowly(hub, browser, "/hub/spawn/ann/lab") == "/hub/spawn-pending/ann/lab"
    r = await browser.request("GET", "/hub/spawn-pending/ann/lab")
    assert r.code == 200
    text = r.body.decode()
    # the page reloads itself without JavaScript, and shows what happened so far
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in text
    assert "<li>Server requested</li>" in text
    assert "Your server lab is starting" in text
    assert 'data-progress-url="/hub/api/users/ann/servers/lab/progress"' in text
    # its one script runs by nonce; it may connect back to the hub, nothing else
    csp = r.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce, csp
    assert f'<script nonce="{nonce.group(1)}">' in text
    assert text.count("<script") == 1
    assert "connect-src 'self'" in csp
    again = await browser.request("GET", "/hub/spawn-pending/ann/lab")
    assert nonce.group(1) not in again.headers["Content-Security-Policy"]  # new every time
    spawn = await browser.request("GET", "/hub/login")
    assert "script-src" not in spawn.headers["Content-Security-Policy"]

    async def ready() -> bool:
        r = await browser.request("GET", "/hub/spawn-pending/ann/lab")
        return r.code == 302

    await eventually(ready)
    # ready: to the server at the spawner's default_url, or to a safe `next`
    r = await browser.request("GET", "/hub/spawn-pending/ann/lab")
    assert r.headers["Location"] == "/user/ann/lab/tree"
    r = await browser.request("GET", "/hub/spawn-pending/ann/lab?next=/user/ann/lab/lab")
    assert r.headers["Location"] == "/user/ann/lab/lab"
    r = await browser.request("GET", "/hub/spawn-pending/ann/lab?next=//evil.example/")
    assert r.headers["Location"] == "/user/ann/lab/tree"
    # a server that answers at once: straight there
    hub.state.orchestrator.timeouts = dataclasses.replace(
        hub.state.orchestrator.timeouts, page_spawn=30
    )
    assert await start_slowly(hub, browser, "/hub/spawn/ann") == "/user/ann/tree"


async def test_who_sees_which_page(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, config="c.ProcessSpawner.start_delay = 30\n")
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("bo", password=PASSWORD)
    browser = Browser(hub)
    r = await browser.request("GET", "/hub/spawn-pending/ann")
    assert (r.code, r.headers["Location"]) == (302, "/hub/login?next=/hub/spawn-pending/ann")
    await browser.login("ann")
    # not starting, never failed: to the spawn page, where it can be started
    r = await browser.request("GET", "/hub/spawn-pending/ann?next=/user/ann/x")
    assert (r.code, r.headers["Location"]) == (302, "/hub/spawn/ann?next=/user/ann/x")
    assert (await hub.api("POST", "/users/bo/server")).status == 202
    for path in ("/hub/spawn-pending/bo", "/hub/spawn-pending/nobody"):
        r = await browser.request("GET", path)
        assert r.code == 404, path
    r = await browser.request("GET", "/hub/spawn-pending/ann/lab")
    assert r.code == 404  # named servers are not enabled here
    r = await browser.request("POST", "/hub/spawn-pending/ann", {"_xsrf": await browser.xsrf()})
    assert r.code == 405
    r = await browser.request("GET", "/hub/spawn-pending/%3Cscript%3E")
    assert r.code == 404
    assert "<script>" not in r.body.decode()
    # an admin follows bo's start
    admin = Browser(hub)
    await hub.add_user("root", admin=True, password=PASSWORD)
    await admin.login("root")
    r = await admin.request("GET", "/hub/spawn-pending/bo")
    assert r.code == 200
    assert "bo&#39;s server is starting" in r.body.decode()
    assert (await hub.api("DELETE", "/users/bo/server")).status == 204
