"""The token page, `/hub/token`, over HTTP without JavaScript.

Create a token with a note, an expiry from the offered list (bounded by
`c.Hub.token_expires_in_max_seconds`) and scopes (a named choice, or scopes
written out and checked); it is shown once and works; revoke it after a
confirmation and it stops working at once. Tokens issued to servers show
their OAuth client, and logging out revokes those of that login. Writes
without the XSRF token change nothing; notes are escaped, and formatting
characters in them are shown, not obeyed. In Chromium: `tests/test_e2e_student.py`.
"""

from __future__ import annotations

import datetime
import html
import re
from typing import Any

import pytest

from hub.timeutil import utcnow
from tests.conftest import HubFactory, RunningHub
from tests.test_oauth import code_for, exchange, pkce
from tests.test_oauth import setup as oauth_setup
from tests.test_pages import PASSWORD, Browser

DAY = 86400


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


async def logged_in(hub_factory: HubFactory, **settings: Any) -> tuple[RunningHub, Browser]:
    hub = await hub_factory(**settings)
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    await browser.login("ann")
    return hub, browser


async def create(browser: Browser, **form: str) -> Any:
    fields = {"action": "create", "note": "", "expires_in": str(7 * DAY), "access": "self"}
    return await browser.request(
        "POST", "/hub/token", {"_xsrf": await browser.xsrf(), **fields, **form}
    )


def shown_token(page: str) -> str:
    found = re.search(r'id="new-token-value" value="([^"]*)"', page)
    assert found, "no token field on the page"
    return found.group(1)


def create_error(page: str) -> str:
    found = re.search(
        r'<p class="field-error" id="create-error" role="alert">(.*?)</p>', page, re.S
    )
    assert found, "no error beside the form"
    return html.unescape(found.group(1))


async def tokens(hub: RunningHub) -> list[dict[str, Any]]:
    r = await hub.api("GET", "/users/ann/tokens")
    return r.json()["api_tokens"]  # type: ignore[no-any-return]


async def whoami(hub: RunningHub, token: str) -> Any:
    return await hub.api("GET", "/user", token=token)


async def test_the_page_needs_a_login(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    r = await Browser(hub).request("GET", "/hub/token")
    assert (r.code, r.headers["Location"]) == (302, "/hub/login?next=/hub/token")


async def test_create_use_and_revoke(hub_factory: HubFactory) -> None:
    hub, browser = await logged_in(hub_factory)
    page = (await browser.request("GET", "/hub/token")).body.decode()
    assert 'aria-current="page">Token</a>' in page
    assert shown_token(page) == ""  # nothing to show yet
    assert re.search(r'<option value="604800" selected>7 days</option>', page)
    assert '<option value="">Never</option>' in page
    r = await create(browser, note="laptop script")
    assert r.code == 201
    page = r.body.decode()
    token = shown_token(page)
    assert len(token) > 30
    assert "this is the only time it is shown" in page
    me = await whoami(hub, token)
    assert me.status == 200
    assert me.json()["name"] == "ann"
    [model] = await tokens(hub)
    assert model["note"] == "laptop script"
    assert model["scopes"] == ["self"]
    expires = datetime.datetime.fromisoformat(model["expires_at"].removesuffix("Z"))
    assert datetime.timedelta(days=6, hours=23) < expires - utcnow() <= datetime.timedelta(days=7)
    # never shown again
    page = (await browser.request("GET", "/hub/token")).body.decode()
    assert token not in page
    assert "<bdi>laptop script</bdi>" in page
    assert f'data-token="{model["id"]}"' in page
    # revoking asks first, then the token stops working at once (however recently used)
    form = {"_xsrf": await browser.xsrf(), "action": "revoke", "token_id": model["id"]}
    r = await browser.request("POST", "/hub/token", form)
    assert r.code == 200
    assert "Revoke the token “laptop script”?" in r.body.decode()
    assert (await whoami(hub, token)).status == 200
    r = await browser.request("POST", "/hub/token", {**form, "confirm": "yes"})
    assert (r.code, r.headers["Location"]) == (302, "/hub/token?revoked=1")
    assert (await whoami(hub, token)).status == 403
    assert await tokens(hub) == []
    page = (await browser.request("GET", "/hub/token?revoked=1")).body.decode()
    assert "The token was revoked." in page
    assert "You have no tokens." in page
    # no such token, or someone else's: not found
    await hub.add_user("bo")
    bo = await hub.token_for("bo")
    [bo_model] = (await hub.api("GET", "/users/bo/tokens", token=bo)).json()["api_tokens"]
    for token_id in (bo_model["id"], "a999999", "x", ""):
        r = await browser.request("POST", "/hub/token", {**form, "token_id": token_id})
        assert r.code == 404, token_id
    assert (await whoami(hub, bo)).status == 200


@pytest.mark.parametrize(
    ("access", "scopes", "allowed", "refused"),
    [
        ("self", ["self"], "/users/ann/tokens", "/users"),
        (
            "servers",
            ["access:servers!user=ann", "servers!user=ann"],
            "/users/ann/server/progress",
            "/users/ann/tokens",
        ),
        (
            "read",
            ["read:servers!user=ann", "read:users!user=ann"],
            "/users/ann",
            "/users/ann/tokens",
        ),
        ("identify", ["(no_scope)"], "/user", "/users/ann/tokens"),
        ("inherit", ["inherit"], "/users/ann/tokens", "/users"),
    ],
)
async def test_the_named_choices(
    hub_factory: HubFactory, access: str, scopes: list[str], allowed: str, refused: str
) -> None:
    hub, browser = await logged_in(hub_factory)
    r = await create(browser, access=access)
    assert r.code == 201
    token = shown_token(r.body.decode())
    [model] = await tokens(hub)
    assert model["scopes"] == scopes
    assert model["note"] == "Created on the token page"
    # what it may do, and what not
    assert (await hub.api("GET", allowed, token=token)).status in (200, 400)
    assert (await hub.api("GET", refused, token=token)).status in (403, 404)


async def test_scopes_written_out(hub_factory: HubFactory) -> None:
    hub, browser = await logged_in(hub_factory)
    r = await create(
        browser, access="custom", custom_scopes="read:users!user=ann,\nread:servers!user=ann"
    )
    assert r.code == 201
    assert [t["scopes"] for t in await tokens(hub)] == [
        ["read:servers!user=ann", "read:users!user=ann"]
    ]
    for custom, status, message in (
        ("no:such:scope", 400, "unknown scope"),
        ("read:users!nobody=x", 400, "bad filter"),
        ("", 400, "Write at least one scope"),
        ("admin:users", 403, "Not allowed to grant scopes"),
        ("read:users!user=bo", 403, "Not allowed to grant scopes"),
        (" ".join(["read:users"] * 51), 400, "At most 50 scopes"),
    ):
        r = await create(browser, access="custom", custom_scopes=custom, note="kept")
        assert r.code == status, custom
        page = r.body.decode()
        assert message in create_error(page)
        # the form as it was sent, and no token
        assert 'value="kept"' in page
        assert 'id="access-custom" name="access" value="custom" checked' in page
        assert shown_token(page) == ""
    for form, message in (
        ({"access": "admin"}, "Choose what the token may do"),
        ({"expires_in": "123"}, "Choose when the token expires"),
        ({"action": "frobnicate"}, "Unknown action"),
    ):
        r = await create(browser, **form)
        assert r.code == 400
        assert message in html.unescape(r.body.decode())
    assert len(await tokens(hub)) == 1


async def test_expiry_bounded_by_the_hub(hub_factory: HubFactory) -> None:
    hub, browser = await logged_in(hub_factory, token_expires_in_max_seconds=3 * DAY)
    page = (await browser.request("GET", "/hub/token")).body.decode()
    options = re.findall(r'<option value="(\d*)"[^>]*>([^<]*)</option>', page)
    assert options == [(str(DAY), "1 day"), (str(3 * DAY), "3 days (the longest allowed)")]
    for too_long in ("", str(7 * DAY)):
        r = await create(browser, expires_in=too_long)
        assert r.code == 400
        assert "Choose when the token expires" in create_error(r.body.decode())
    assert (await create(browser, expires_in=str(3 * DAY))).code == 201
    [model] = await tokens(hub)
    expires = datetime.datetime.fromisoformat(model["expires_at"].removesuffix("Z"))
    assert expires - utcnow() <= datetime.timedelta(days=3)


async def test_a_bound_under_a_day(hub_factory: HubFactory) -> None:
    _hub, browser = await logged_in(hub_factory, token_expires_in_max_seconds=5400)
    page = (await browser.request("GET", "/hub/token")).body.decode()
    options = re.findall(r'<option value="(\d*)"[^>]*>([^<]*)</option>', page)
    assert options == [("5400", "90 minutes (the longest allowed)")]


async def test_writes_without_the_xsrf_token_change_nothing(hub_factory: HubFactory) -> None:
    hub, browser = await logged_in(hub_factory)
    kept = await hub.token_for("ann", note="kept")
    [model] = await tokens(hub)
    for form in (
        {"action": "create", "note": "x", "expires_in": str(DAY), "access": "self"},
        {"action": "revoke", "token_id": model["id"], "confirm": "yes"},
    ):
        for xsrf in ({}, {"_xsrf": "2|00000000|" + "0" * 32 + "|1700000000"}):
            r = await browser.request("POST", "/hub/token", {**form, **xsrf})
            assert r.code == 403, (form, xsrf)
    for method, path, body in (
        ("POST", "/hub/api/users/ann/tokens", b"{}"),
        ("DELETE", f"/hub/api/users/ann/tokens/{model['id']}", None),
    ):
        r = await browser.request(method, path, body=body, allow_nonstandard_methods=True)
        assert r.code == 403, path
    assert [t["id"] for t in await tokens(hub)] == [model["id"]]
    assert (await whoami(hub, kept)).status == 200


async def test_notes_are_escaped_and_shown_as_they_are(hub_factory: HubFactory) -> None:
    hub, browser = await logged_in(hub_factory)
    notes = [
        "<script>alert(1)</script>",
        "say \"hi\" & 'bye'",
        "report\u202egpj.exe",
        "zero\u200bwidth",
    ]
    for note in notes:
        assert (await create(browser, note=note)).code == 201
    page = (await browser.request("GET", "/hub/token")).body.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "say &#34;hi&#34; &amp; &#39;bye&#39;" in page
    # formatting characters cannot reorder or hide what follows: they are shown as codes
    assert "\u202e" not in page
    assert "\u200b" not in page
    assert "<bdi>report&lt;U+202E&gt;gpj.exe</bdi>" in page
    assert "zero&lt;U+200B&gt;width" in page
    assert sorted(t["note"] for t in await tokens(hub)) == sorted(notes)


async def test_tokens_of_servers_and_logging_out(hub_factory: HubFactory) -> None:
    """A server's OAuth login shows on the token page with its client; logging out of the
    hub revokes it, so that server's cookie opens nothing any more."""
    hub, server = await oauth_setup(hub_factory)
    browser = Browser(hub)
    await browser.login("ann")
    verifier, challenge = pkce()
    status, issued = await exchange(
        hub, server, await code_for(browser, server, challenge), verifier
    )
    assert status == 200
    page = (await browser.request("GET", "/hub/token")).body.decode()
    assert "<code>jupyterhub-user-ann</code> (through this login)" in page
    assert "Revoke every token issued to jupyterhub-user-ann for you?" in page
    assert (await whoami(hub, issued["access_token"])).status == 200
    r = await browser.request("GET", "/hub/logout")
    assert (r.code, r.headers["Location"]) == (302, "/hub/login?logged_out=1")
    assert (await whoami(hub, issued["access_token"])).status == 403
    page = (await browser.request("GET", "/hub/login?logged_out=1")).body.decode()
    assert "You are logged out." in page
    assert (await browser.request("GET", "/hub/token")).code == 302
