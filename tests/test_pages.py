"""Login, logout, the spawn page and cookie-authenticated API calls.

Over HTTP with a small cookie jar, and the whole path in Chromium: a stopped
server's error page -> "Start my server" -> log in -> start -> the browser
lands on the user's running server, through the real proxy.
"""

from __future__ import annotations

import dataclasses
import re
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from hub.pages.base import LOGIN_COOKIE, safe_next
from tests.browser import browser_page
from tests.conftest import HubFactory, RunningHub, behind_atrium_proxy
from tests.pg import free_port
from tests.waits import eventually

PASSWORD = "correct horse battery staple"
SPAWNER = "tests.spawner.ProcessSpawner"


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


class Browser:
    """Cookies kept across requests, as a browser does (no redirects followed)."""

    def __init__(self, hub: RunningHub) -> None:
        self.root = hub.url[: -len("hub/")]
        self.cookies: dict[str, str] = {}

    async def request(
        self, method: str, path: str, form: dict[str, str] | None = None, **kw: Any
    ) -> HTTPResponse:
        headers = dict(kw.pop("headers", {}))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = urlencode(form).encode() if form is not None else kw.pop("body", None)
        if body is None and method == "POST":
            body = b""
        r = await AsyncHTTPClient().fetch(
            self.root + path.lstrip("/"),
            method=method,
            body=body,
            headers=headers,
            follow_redirects=False,
            raise_error=False,
            **kw,
        )
        for header in r.headers.get_list("Set-Cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if (morsel["expires"] and "1970" in morsel["expires"]) or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return r

    async def xsrf(self) -> str:
        """The XSRF token: set as a cookie by any page, and valid as the form field."""
        if "_xsrf" not in self.cookies:
            page = (await self.request("GET", "/hub/login")).body.decode()
            assert re.search(r'name="_xsrf" value="[^"]+"', page)
        return self.cookies["_xsrf"]

    async def login(
        self, name: str, password: str = PASSWORD, next_url: str = "", **fields: str
    ) -> HTTPResponse:
        """Post the login form; `fields` adds more (e.g. authenticator="shared")."""
        token = await self.xsrf()
        query = f"?next={next_url}" if next_url else ""
        return await self.request(
            "POST",
            f"/hub/login{query}",
            {"username": name, "password": password, "_xsrf": token, **fields},
        )


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "///evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "https:///evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/user/ann/\r\nSet-Cookie: x=1",
        "/hub/ x",
        "",
    ],
)
def test_unsafe_next_targets_are_refused(target: str) -> None:
    assert safe_next(target, "/", "/hub/spawn/ann") == "/hub/spawn/ann"


def test_safe_next_targets_are_kept() -> None:
    assert safe_next("/user/ann/lab?x=1", "/", "/d") == "/user/ann/lab?x=1"
    assert safe_next("/jupyter/user/ann/", "/jupyter/", "/d") == "/jupyter/user/ann/"
    assert safe_next("/user/ann/", "/jupyter/", "/d") == "/d"  # off the hub's base URL


async def test_login_logout_and_the_cookie(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    r = await browser.request("GET", "/hub/")
    assert r.headers["Location"] == "/hub/login"
    page = await browser.request("GET", "/hub/login?next=/user/ann/lab")
    assert page.code == 200
    assert 'name="username"' in page.body.decode()
    # a post without the XSRF token is refused before the password is looked at
    r = await browser.request("POST", "/hub/login", {"username": "ann", "password": PASSWORD})
    assert r.code == 403
    assert LOGIN_COOKIE not in browser.cookies
    # wrong password and unknown user: the same answer
    for name, password in (("ann", "wrong"), ("nobody", PASSWORD), ("<script>", "x")):
        r = await browser.login(name, password)
        assert r.code == 403
        text = r.body.decode()
        assert "The username or password is not right." in text
        assert "<script>" not in text
        assert LOGIN_COOKIE not in browser.cookies
    # right: the cookie, and on to `next` (when it is safe) or the spawn page
    r = await browser.login("Ann", next_url="/user/ann/lab")
    assert r.code == 302
    assert r.headers["Location"] == "/user/ann/lab"
    cookie = next(h for h in r.headers.get_list("Set-Cookie") if h.startswith(LOGIN_COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/hub/" in cookie
    r = await browser.login("ann", next_url="//evil.example/")
    assert r.headers["Location"] == "/hub/spawn/ann"
    assert (await browser.request("GET", "/hub/")).headers["Location"] == "/hub/spawn/ann"
    # the cookie is a login for the API too: reads freely, writes only with XSRF
    who = await browser.request("GET", "/hub/api/user")
    assert who.code == 200
    assert orjson.loads(who.body)["name"] == "ann"
    r = await browser.request("POST", "/hub/api/users/ann/tokens", body=b"{}")
    assert r.code == 403
    r = await browser.request(
        "POST",
        "/hub/api/users/ann/tokens",
        body=b"{}",
        headers={"X-XSRFToken": browser.cookies["_xsrf"]},
    )
    assert r.code == 201
    # logout
    r = await browser.request("POST", "/hub/logout", {"_xsrf": await browser.xsrf()})
    assert r.code == 302
    assert LOGIN_COOKIE not in browser.cookies
    assert (await browser.request("GET", "/hub/api/user")).code == 403


async def test_a_blocked_user_is_logged_out(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    assert (await browser.login("ann")).code == 302
    from sqlalchemy import update

    from hub.db.models import User

    def block(session: Any) -> None:
        session.execute(update(User).where(User.name == "ann").values(blocked=True))

    await hub.db.run(block)
    assert (await browser.request("GET", "/hub/api/user")).code == 403
    r = await browser.request("GET", "/hub/spawn/ann")
    assert r.code == 302
    assert r.headers["Location"].startswith("/hub/login?next=")


async def test_spawn_page(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("bo", password=PASSWORD)
    browser = Browser(hub)
    r = await browser.request("GET", "/hub/spawn/ann")
    assert r.code == 302  # not logged in: to the login page, and back here after
    assert r.headers["Location"] == "/hub/login?next=/hub/spawn/ann"
    await browser.login("ann")
    page = await browser.request("GET", "/hub/spawn/ann")
    assert page.code == 200
    assert "Start your server" in page.body.decode()
    # someone else's server, or no such user: nothing to see
    assert (await browser.request("GET", "/hub/spawn/bo")).code == 404
    for odd in ("nobody", "%3Cscript%3E", "ann/%2E%2E", "x" * 300):
        r = await browser.request("GET", f"/hub/spawn/{odd}")
        assert r.code in (400, 404), odd
        assert "<script>" not in r.body.decode()
        assert "Traceback" not in r.body.decode()
    r = await browser.request("POST", "/hub/spawn/bo", {"_xsrf": await browser.xsrf()})
    assert r.code == 404
    # start without the XSRF token: refused, nothing started
    r = await browser.request("POST", "/hub/spawn/ann", {})
    assert r.code == 403
    model = (await hub.api("GET", "/users/ann")).json()
    assert model["servers"] == {}
    # start: on to the server once it is ready (the page waits a while for it)
    hub.state.orchestrator.timeouts = dataclasses.replace(
        hub.state.orchestrator.timeouts, page_spawn=30
    )
    r = await browser.request(
        "POST", "/hub/spawn/ann", {"_xsrf": await browser.xsrf(), "next": "/user/ann/tree"}
    )
    assert r.code == 302
    assert r.headers["Location"] == "/user/ann/tree"
    assert (await hub.api("GET", "/users/ann")).json()["servers"][""]["ready"] is True
    page = await browser.request("GET", "/hub/spawn/ann")
    assert "Your server is running" in page.body.decode()
    assert 'href="/user/ann/"' in page.body.decode()


async def test_from_a_stopped_server_to_a_running_one_in_a_browser(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = await hub_factory(**behind_atrium_proxy(tmp_path))
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    await hub.add_user("ann", password=PASSWORD)
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    # a route left behind by a server that died (the proxy still has it)
    assert hub.state.proxy is not None
    assert hub.state.proxy.client is not None
    await hub.state.proxy.client.add_route("/user/ann", f"http://127.0.0.1:{free_port()}")

    shots = tmp_path / "shots"
    shots.mkdir()
    async with browser_page() as page:
        response = await page.goto(f"{public}/user/ann/")
        assert response.status == 503
        await page.screenshot(path=str(shots / "1-not-running.png"))
        await page.get_by_role("button", name="Start my server").click()
        await page.wait_for_url(re.compile(r".*/hub/login\?next=.*"))
        await page.screenshot(path=str(shots / "2-login.png"))
        await page.get_by_label("Username").fill("ann")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(re.compile(r".*/hub/spawn/ann\?next=.*"))
        await page.screenshot(path=str(shots / "3-spawn.png"))
        assert await page.locator("h1").inner_text() == "Start your server"
        await hub.state.proxy.client.delete_route("/user/ann")  # the hub adds it again
        await page.get_by_role("button", name="Start my server").click()
        await page.wait_for_url(f"{public}/user/ann/")
        await page.screenshot(path=str(shots / "4-running.png"))
        # ann's own server answered (the test spawner runs Python's http.server)
        landed = await page.request.get(f"{public}/user/ann/")
        assert landed.headers["server"].startswith("SimpleHTTP")
    assert (await hub.api("GET", "/users/ann")).json()["servers"][""]["ready"] is True


async def test_spawn_page_for_a_slow_start(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        slow_spawn_timeout=0.2,
        config="c.ProcessSpawner.start_delay = 1.5\n",
    )
    await hub.add_user("ann", password=PASSWORD)
    orchestrator = hub.state.orchestrator
    orchestrator.timeouts = dataclasses.replace(orchestrator.timeouts, page_spawn=0)
    browser = Browser(hub)
    await browser.login("ann")
    r = await browser.request("POST", "/hub/spawn/ann", {"_xsrf": await browser.xsrf()})
    assert r.code == 302  # still starting: on to the page that follows the start
    assert r.headers["Location"] == "/hub/spawn-pending/ann"
    page = await browser.request("GET", "/hub/spawn-pending/ann")
    text = page.body.decode()
    assert "Your server is starting" in text
    assert "Start my server" not in text  # no second start while one runs
    # the spawn page sends people who open it meanwhile to the progress too
    r = await browser.request("GET", "/hub/spawn/ann?next=/user/ann/lab")
    assert r.headers["Location"] == "/hub/spawn-pending/ann?next=/user/ann/lab"

    async def running() -> bool:
        page = await browser.request("GET", "/hub/spawn/ann")
        return "Your server is running" in page.body.decode()

    await eventually(running)
    r = await browser.request("GET", "/hub/spawn-pending/ann")
    assert (r.code, r.headers["Location"]) == (302, "/user/ann/")


async def test_spawn_page_when_the_start_fails(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, config="c.ProcessSpawner.failure = 'exit'\n")
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    r = await browser.request("POST", "/hub/spawn/ann", {"_xsrf": await browser.xsrf()})
    # the page that follows starts says what happened, and offers to try again
    assert (r.code, r.headers["Location"]) == (302, "/hub/spawn-pending/ann")
    r = await browser.request("GET", "/hub/spawn-pending/ann")
    text = r.body.decode()
    assert r.headers["Content-Type"].startswith("text/html")
    assert "Your server could not start" in text
    assert "failed to start" in text  # what happened, in words a student can act on
    assert "Try again" in text
    assert "Traceback" not in text
    page = await browser.request("GET", "/hub/spawn/ann")
    assert "Start my server" in page.body.decode()  # it can be tried again


OPTIONS_FORM = (
    '<label for="delay">Start delay</label><input id="delay" name="start_delay" value="0">'
    '<label><input type="checkbox" name="extras" value="a" checked> a</label>'
    '<label><input type="checkbox" name="extras" value="b" checked> b</label>'
)


async def test_the_spawn_page_shows_the_options_form(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class="tests.spawner.ProcessSpawner",
        config=f"c.ProcessSpawner.options_form = {OPTIONS_FORM!r}\n",
    )
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    page = (await browser.request("GET", "/hub/spawn/ann")).body.decode()
    assert "<legend>Server options</legend>" in page
    assert 'name="start_delay"' in page  # the admin's HTML, as written
    xsrf = await browser.xsrf()
    form = f"_xsrf={xsrf}&next=&start_delay=0.2&extras=a&extras=b"
    r = await browser.request(
        "POST",
        "/hub/spawn/ann",
        body=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.code == 302
    model = (await hub.api("GET", "/users/ann")).json()
    options = model["servers"][""]["user_options"]
    # the page's own fields are not options; repeated fields become lists
    assert options == {"start_delay": "0.2", "extras": ["a", "b"]}


async def test_bad_options_are_refused_and_nothing_starts(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class="tests.spawner.ProcessSpawner",
        config=f"c.ProcessSpawner.options_form = {OPTIONS_FORM!r}\n",
    )
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    xsrf = await browser.xsrf()
    too_many = "&".join(f"field{i}=x" for i in range(101))  # 100 options at most
    r = await browser.request(
        "POST",
        "/hub/spawn/ann",
        body=f"_xsrf={xsrf}&{too_many}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.code == 400
    assert "at most 100 user options" in r.body.decode()
    model = (await hub.api("GET", "/users/ann")).json()
    assert model["servers"] == {}


OFF_SITE = [
    "//evil.example/x",
    "///evil.example/x",
    "\\\\evil.example",
    "/\\evil.example",
    "https:///evil.example",
    "javascript:alert(1)",
    "http://evil.example/",
    "https://evil.example",
    "/\t/evil.example",
    " //evil.example",
    "HTTP://evil.example",
]


async def test_next_never_leads_off_site(hub_factory: HubFactory) -> None:
    """Login, the login page when logged in, the spawn page and the spawn-pending page:
    each refuses every `next` a browser would take off this site."""
    hub = await hub_factory(spawner_class=SPAWNER, spawn_page_wait=30)
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    for target in OFF_SITE:
        encoded = quote(target, safe="")
        r = await Browser(hub).login("ann", next_url=encoded)
        assert (r.code, r.headers["Location"]) == (302, "/hub/spawn/ann"), target
    await browser.login("ann")
    for target in OFF_SITE:
        encoded = quote(target, safe="")
        r = await browser.request("GET", f"/hub/login?next={encoded}")
        assert r.headers["Location"] == "/hub/spawn/ann", target
        page = (await browser.request("GET", f"/hub/spawn/ann?next={encoded}")).body.decode()
        assert 'name="next" value=""' in page, target  # not carried into the Start form
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    for target in OFF_SITE:
        r = await browser.request(
            "POST", "/hub/spawn/ann", {"_xsrf": await browser.xsrf(), "next": target}
        )
        assert r.headers["Location"] == "/user/ann/", target
        r = await browser.request("GET", f"/hub/spawn-pending/ann?next={quote(target, safe='')}")
        assert r.headers["Location"] == "/user/ann/", target
    # a path on this site is kept
    r = await browser.request("GET", "/hub/spawn-pending/ann?next=/user/ann/lab/tree")
    assert r.headers["Location"] == "/user/ann/lab/tree"


def set_cookies(r: HTTPResponse) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in r.headers.get_list("Set-Cookie")}


async def test_cookies_are_secure_over_https(hub_factory: HubFactory) -> None:
    """Behind a TLS proxy (the hub trusts X-Forwarded-Proto) every cookie a page sets is
    secure; both are httponly."""
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    for proto, secure in (("https", True), ("http", False)):
        browser = Browser(hub)
        headers = {"X-Forwarded-Proto": proto}
        r = await browser.request("GET", "/hub/login", headers=headers)
        xsrf = set_cookies(r)["_xsrf"]
        r = await browser.request(
            "POST",
            "/hub/login",
            {"username": "ann", "password": PASSWORD, "_xsrf": browser.cookies["_xsrf"]},
            headers=headers,
        )
        assert r.code == 302
        login = set_cookies(r)[LOGIN_COOKIE]
        for cookie in (xsrf, login):
            assert ("; Secure" in cookie) is secure, cookie
            assert "; HttpOnly" in cookie
            assert "; SameSite=Lax" in cookie
        r = await browser.request(
            "POST", "/hub/logout", {"_xsrf": browser.cookies["_xsrf"]}, headers=headers
        )
        assert ("; Secure" in set_cookies(r)[LOGIN_COOKIE]) is secure


async def test_every_page_sends_the_security_headers(hub_factory: HubFactory) -> None:
    ancestors = "'self' https://lms.example.edu"
    hub = await hub_factory(
        spawner_class=SPAWNER, allow_named_servers=True, csp_frame_ancestors=ancestors
    )
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    xsrf = await browser.xsrf()
    pages: list[tuple[str, str, dict[str, str] | None, int]] = [
        ("GET", "/hub/login?next=/hub/home", None, 302),
        ("GET", "/hub/home", None, 200),
        ("GET", "/hub/token", None, 200),
        ("GET", "/hub/spawn/ann", None, 200),
        ("GET", "/hub/spawn/nobody", None, 404),
        ("GET", "/hub/error/503?url=/user/ann/", None, 503),
        ("POST", "/hub/home", {"_xsrf": xsrf, "action": "nope"}, 400),
        ("POST", "/hub/home", {"action": "stop"}, 403),
        ("POST", "/hub/token", {"_xsrf": xsrf, "action": "revoke", "token_id": "a1"}, 404),
    ]
    for method, path, form, status in pages:
        r = await browser.request(method, path, form)
        assert r.code == status, path
        csp = r.headers["Content-Security-Policy"]
        assert f"frame-ancestors {ancestors}" in csp, path
        assert "default-src 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        assert r.headers["Cache-Control"] == "no-store", path
        if status != 302:
            text = r.body.decode()
            assert r.headers["Content-Type"].startswith("text/html"), path
            assert "Traceback" not in text
            assert '<html lang="en">' in text
    login = await Browser(hub).request("GET", "/hub/login")
    assert f"frame-ancestors {ancestors}" in login.headers["Content-Security-Policy"]
