"""Native accounts over HTTP: password rules, sign-up (with and without approval),
throttling of sign-ups, password change, and two-step login (TOTP).

Forms are posted as a browser would (cookies, XSRF), against a real hub on a
real database; throttling is checked on its database rows and on the 429 with
Retry-After, never on timing. Codes are made with pyotp for time steps the hub
must accept or refuse.
"""

from __future__ import annotations

import datetime
import html
import re
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth import totp
from hub.auth.passwords import PasswordRules, check_new_password, load_extra_list
from hub.auth.throttle import address_key
from hub.db.models import APIToken, AuditEvent, LoginThrottle, SignupRequest, User
from hub.errors import BadRequest, ConfigError
from hub.ops import users as user_ops
from hub.pages.base import LOGIN_COOKIE
from hub.secrets_hash import hash_token, new_token, token_prefix
from hub.timeutil import utcnow
from tests.conftest import SYSTEM, HubFactory, LogCapture, RunningHub
from tests.test_pages import Browser

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a new and longer passphrase"
ADMIN_PASSWORD = "admin-password-for-tests"
SIGNUP = "c.NativeAuthenticator.enable_signup = True\n"
NO_APPROVAL = SIGNUP + "c.NativeAuthenticator.signup_requires_approval = False\n"


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


# --- helpers ------------------------------------------------------------------------


async def post_form(browser: Browser, path: str, **fields: str) -> Any:
    token = await browser.xsrf()
    return await browser.request("POST", path, {"_xsrf": token, **fields})


async def sign_up(browser: Browser, name: str, password: str = PASSWORD, **extra: str) -> Any:
    fields = {"username": name, "password": password, "password_again": password, **extra}
    return await post_form(browser, "/hub/signup", **fields)


def alert(r: Any) -> str:
    """The text of the page's error (role=alert), unescaped."""
    found = re.search(r'role="alert"[^>]*>(.*?)</p>', r.body.decode(), re.S)
    assert found, r.body.decode()[:2000]
    return html.unescape(found.group(1))


async def rows(hub: RunningHub, model: Any, *where: Any) -> list[Any]:
    def read(session: Session) -> list[Any]:
        found = session.scalars(select(model).where(*where)).all()
        for row in found:
            session.expunge(row)
        return list(found)

    return await hub.db.run(read)


async def user_row(hub: RunningHub, name: str) -> User | None:
    found = await rows(hub, User, User.name == name)
    return found[0] if found else None


async def actions(hub: RunningHub, target: str) -> list[str]:
    events = await rows(hub, AuditEvent, AuditEvent.target == target)
    return [e.action for e in events]


async def hold(hub: RunningHub, key: str) -> None:
    """Make a throttle key wait ten minutes from now (as many failures would)."""

    def update(session: Session) -> None:
        row = session.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, failures=50, last_failure=utcnow())
            session.add(row)
        row.blocked_until = utcnow() + datetime.timedelta(seconds=600)

    await hub.db.run(update)


async def accounts(hub: RunningHub) -> tuple[Any, ...]:
    """The sign-up requests and users, to check that nothing changed."""
    requests = [(r.name, r.password_hash) for r in await rows(hub, SignupRequest)]
    users = [(u.name, u.password_hash) for u in await rows(hub, User)]
    return requests, users


async def logged_in(browser: Browser) -> bool:
    r = await browser.request("GET", "/hub/home")
    return r.code == 200


def hidden(r: Any, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', r.body.decode())
    assert found, f"no {name} in the page"
    return html.unescape(found.group(1))


def code_for(secret: str, after: int | None) -> str:
    """A code the hub must accept now: the current step's, or the next one's if the
    current step was used (the hub takes one step either side)."""
    totp = pyotp.TOTP(secret)
    step = totp.timecode(time.time())  # type: ignore[arg-type]
    if after is not None and step <= after:
        step = after + 1
    return str(totp.generate_otp(step))


def wrong_code(secret: str) -> str:
    """Six digits that are no code of any step near now."""
    totp = pyotp.TOTP(secret)
    now = totp.timecode(time.time())  # type: ignore[arg-type]
    near = {totp.generate_otp(s) for s in range(now - 3, now + 4)}
    return next(c for c in ("123456", "654321", "111111", "222222") if c not in near)


# --- password rules -----------------------------------------------------------------


def test_password_rules() -> None:
    rules = PasswordRules()
    assert rules.problem("tiny", "ann") == (
        "The password is too short (4 characters): use at least 10. A few unrelated "
        "words make a long password that is easy to remember."
    )
    assert "most common" in (rules.problem("password123", "ann") or "")
    assert "most common" in (rules.problem("Qwertyuiop", "ann") or "")  # any case
    assert "username" in (rules.problem("annabelle-lee-1849", "annabelle") or "")
    assert "username" in (rules.problem("xx-ANNABELLE-xx", "annabelle") or "")
    # a short name is refused only as the whole password
    assert rules.problem("alpine meadow lakes", "al") is None
    assert "too long" in (rules.problem("x" * 257, "ann") or "")
    assert "line breaks" in (rules.problem("two\nlines here", "ann") or "")
    assert rules.problem(PASSWORD, "ann") is None
    with pytest.raises(BadRequest, match="too short"):
        check_new_password("short", "ann")


def test_extra_list(tmp_path: Path) -> None:
    listed = tmp_path / "refused.txt"
    listed.write_text("# the class\nPhysics-101-Fall\n\nphysics101fall\n")
    rules = PasswordRules(extra_common=load_extra_list(str(listed)))
    assert "refused passwords" in (rules.problem("physics-101-FALL", "ann") or "")
    assert rules.problem("physics is fun for all", "ann") is None
    with pytest.raises(ConfigError, match="cannot read"):
        load_extra_list(str(tmp_path / "missing.txt"))


async def test_hub_refuses_a_missing_extra_list(hub_factory: HubFactory, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="common_passwords_file"):
        await hub_factory(config=f"c.NativeAuthenticator.common_passwords_file = '{tmp_path}/no'\n")


async def test_rules_where_admins_set_passwords(hub: RunningHub) -> None:
    for bad, message in (
        ("short", "too short"),
        ("password1234", "common"),
        ("bob-is-me-2024", "username"),
    ):
        with pytest.raises(BadRequest, match=message):
            await hub.db.run(user_ops.create_users, hub.ctx, SYSTEM, ["bob"], False, password=bad)
    assert await user_row(hub, "bob") is None
    await hub.add_user("bob", password=PASSWORD)
    before = (await user_row(hub, "bob")).password_hash  # type: ignore[union-attr]
    with pytest.raises(BadRequest, match="common"):
        await hub.db.run(user_ops.set_password, "bob", "qwertyuiop")
    assert (await user_row(hub, "bob")).password_hash == before  # type: ignore[union-attr]
    await hub.db.run(user_ops.set_password, "bob", NEW_PASSWORD)
    assert (await user_row(hub, "bob")).password_hash != before  # type: ignore[union-attr]


# --- sign-up --------------------------------------------------------------------------


async def test_signup_is_off_by_default(hub: RunningHub) -> None:
    browser = Browser(hub)
    login = await browser.request("GET", "/hub/login")
    assert "Create an account" not in login.body.decode()
    assert (await browser.request("GET", "/hub/signup")).code == 404
    r = await sign_up(browser, "zed")
    assert r.code == 404
    assert await rows(hub, SignupRequest) == []
    assert await user_row(hub, "zed") is None


async def test_signup_waits_for_approval(hub_factory: HubFactory, hub_logs: LogCapture) -> None:
    hub = await hub_factory(config=SIGNUP)
    browser = Browser(hub)
    login = (await browser.request("GET", "/hub/login")).body.decode()
    assert '<a href="/hub/signup">Create an account</a>' in login
    page = await browser.request("GET", "/hub/signup")
    assert page.code == 200
    assert "waits here" not in page.body.decode()
    assert "approves each new account" in page.body.decode()

    r = await sign_up(browser, "Zed", full_name="Zed  Zhang", email="zed@example.org")
    assert r.code == 201, r.body[:500]
    assert "waiting for approval" in r.body.decode()
    [row] = await rows(hub, SignupRequest)
    assert (row.name, row.full_name, row.email, row.address) == (
        "zed",
        "Zed Zhang",
        "zed@example.org",
        "127.0.0.1",
    )
    assert row.password_hash.startswith("$argon2id$")
    assert await user_row(hub, "zed") is None
    assert await actions(hub, "zed") == ["signup.request"]

    # the right password says why there is no login yet; a wrong one says nothing more
    r = await browser.login("zed", PASSWORD)
    assert r.code == 403
    assert "waiting for approval" in alert(r)
    assert LOGIN_COOKIE not in browser.cookies
    r = await browser.login("zed", "not the password at all")
    assert alert(r) == "The username or password is not right."
    # the refusal after the right password was no guess: one failure on the account
    [counted] = await rows(hub, LoginThrottle, LoginThrottle.key == "acct:zed")
    assert counted.failures == 1

    r = await hub.api("POST", "/signups/zed")
    assert r.status == 201, r.body
    assert r.json()["name"] == "zed"
    user = await user_row(hub, "zed")
    assert user is not None
    assert (user.auth_provider, user.full_name, user.email, user.admin) == (
        "native",
        "Zed Zhang",
        "zed@example.org",
        False,
    )
    assert user.password_hash == row.password_hash
    assert await rows(hub, SignupRequest) == []
    assert await actions(hub, "zed") == ["signup.request", "signup.approve", "user.create"]
    r = await browser.login("zed", PASSWORD)
    assert r.code == 302
    assert await logged_in(browser)
    hub_logs.assert_no_secrets(PASSWORD, row.password_hash)


async def test_signup_without_approval(hub_factory: HubFactory) -> None:
    hub = await hub_factory(config=NO_APPROVAL)
    browser = Browser(hub)
    r = await sign_up(browser, "ada")
    assert r.code == 201
    assert "is ready" in r.body.decode()
    user = await user_row(hub, "ada")
    assert user is not None
    assert user.auth_provider == "native"
    assert await rows(hub, SignupRequest) == []
    assert await actions(hub, "ada") == ["user.create"]
    assert (await browser.login("ada", PASSWORD)).code == 302


async def test_signup_bad_input_changes_nothing(
    hub_factory: HubFactory, hub_logs: LogCapture
) -> None:
    hub = await hub_factory(
        config=SIGNUP
        + "c.NativeAuthenticator.blocked_users = ['root']\n"
        + "c.Authenticator.admin_users = ['prof']\n"
    )
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    assert (await sign_up(browser, "pending")).code == 201
    before = await accounts(hub)
    cases: list[tuple[dict[str, str], int, str]] = [
        ({"username": ""}, 400, "Choose a username."),
        ({"username": "x<script>"}, 400, "character '<' is not allowed"),
        ({"username": "root"}, 400, "The username root is not available"),
        # taking a name of admin_users would make the taker an admin
        ({"username": "Prof"}, 400, "The username prof is not available"),
        ({"username": "ANN"}, 409, "The username ann is taken"),
        ({"username": "pending"}, 409, "The username pending is taken"),
        ({"password_again": "something else entirely"}, 400, "not the same"),
        ({"password": "short", "password_again": "short"}, 400, "too short"),
        ({"password": "password123", "password_again": "password123"}, 400, "most common"),
        ({"password": "ben-ben-ben-ben", "password_again": "ben-ben-ben-ben"}, 400, "username"),
        ({"email": "not an address"}, 400, "email address does not look right"),
        ({"email": "x" * 330 + "@example.org"}, 400, "email address is too long"),
        ({"full_name": "F" * 250}, 400, "full name is too long"),
    ]
    for change, status, message in cases:
        fields = {"username": "ben", "password": PASSWORD, "password_again": PASSWORD}
        fields.update(change)
        r = await post_form(browser, "/hub/signup", **fields)
        assert r.code == status, (change, r.code)
        assert message in alert(r), (change, alert(r))
        body = r.body.decode()
        assert "x<script>" not in body
        assert PASSWORD not in body  # a password is never sent back
        if change.get("username", "ben") == "ben":
            assert 'value="ben"' in body  # what was typed stays, but the passwords
    # without the XSRF token: refused before anything is read
    r = await browser.request(
        "POST",
        "/hub/signup",
        {"username": "ben", "password": PASSWORD, "password_again": PASSWORD},
    )
    assert r.code == 403
    assert await accounts(hub) == before
    assert "Traceback" not in hub_logs.text()
    hub_logs.assert_no_secrets(PASSWORD, "password123")


async def test_signup_is_throttled_per_address(hub_factory: HubFactory) -> None:
    hub = await hub_factory(config=SIGNUP + "c.NativeAuthenticator.signups_per_address = 3\n")
    browser = Browser(hub)
    for name in ("s1", "s2"):
        assert (await sign_up(browser, name)).code == 201
    # bad posts count too: probing names is no cheaper than asking for them
    assert (await sign_up(browser, "s1")).code == 409
    key = f"signup:{address_key('127.0.0.1')}"
    [row] = await rows(hub, LoginThrottle, LoginThrottle.key == key)
    assert row.failures == 3
    assert row.blocked_until is None  # 3 are free
    # the fourth is counted and makes the address wait (its delay is set in the row)
    assert (await sign_up(browser, "s3")).code == 201
    [row] = await rows(hub, LoginThrottle, LoginThrottle.key == key)
    assert row.failures == 4
    assert row.blocked_until is not None

    # while the address waits: 429 with Retry-After, and nothing is made
    await hold(hub, key)
    r = await sign_up(browser, "s4")
    assert r.code == 429
    assert 500 < int(r.headers["Retry-After"]) <= 600
    assert "Too many sign-ups from your network" in alert(r)
    assert {r.name for r in await rows(hub, SignupRequest)} == {"s1", "s2", "s3"}


async def test_pending_signups_are_bounded(hub_factory: HubFactory) -> None:
    hub = await hub_factory(config=SIGNUP + "c.NativeAuthenticator.max_pending_signups = 1\n")
    browser = Browser(hub)
    assert (await sign_up(browser, "first")).code == 201
    r = await sign_up(browser, "second")
    assert r.code == 429
    assert "Too many sign-ups are waiting" in alert(r)
    assert int(r.headers["Retry-After"]) > 0
    assert [r.name for r in await rows(hub, SignupRequest)] == ["first"]


# --- password change ------------------------------------------------------------------


def session_token(user_id: int, session_id: str) -> APIToken:
    token = new_token()
    return APIToken(
        user_id=user_id,
        prefix=token_prefix(token),
        hashed=hash_token(token),
        scopes=["access:servers!user=ann"],
        session_id=session_id,
    )


async def test_password_change_ends_other_logins(
    hub_factory: HubFactory, hub_logs: LogCapture
) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    here, there = Browser(hub), Browser(hub)
    assert (await here.login("ann")).code == 302
    assert (await there.login("ann")).code == 302
    here_session = here.cookies[LOGIN_COOKIE]
    user = await user_row(hub, "ann")
    assert user is not None
    old_cookie_id, old_hash = user.cookie_id, user.password_hash

    # tokens issued through each login session (as a server's OAuth login makes them)
    here_id = await session_id_of(hub, here)
    there_id = await session_id_of(hub, there)

    def add_tokens(session: Session) -> None:
        session.add(session_token(user.id, here_id))
        session.add(session_token(user.id, there_id))

    await hub.db.run(add_tokens)

    page = await here.request("GET", "/hub/password")
    assert page.code == 200
    assert 'autocomplete="current-password"' in page.body.decode()
    bad = [
        ({"current": "not my password"}, 403, "current password is not right"),
        ({"new": "short", "new_again": "short"}, 400, "too short"),
        ({"new": "1234567890", "new_again": "1234567890"}, 400, "most common"),
        ({"new": "ann-and-her-cat", "new_again": "ann-and-her-cat"}, 400, "username"),
        ({"new_again": "not the same one"}, 400, "not the same"),
    ]
    for change, status, message in bad:
        fields = {"current": PASSWORD, "new": NEW_PASSWORD, "new_again": NEW_PASSWORD}
        fields.update(change)
        r = await post_form(here, "/hub/password", **fields)
        assert r.code == status, change
        assert message in alert(r)
    user = await user_row(hub, "ann")
    assert user is not None
    assert (user.cookie_id, user.password_hash) == (old_cookie_id, old_hash)
    assert await logged_in(there)

    r = await post_form(
        here, "/hub/password", current=PASSWORD, new=NEW_PASSWORD, new_again=NEW_PASSWORD
    )
    assert r.code == 200
    assert "You were logged out everywhere else" in r.body.decode()
    # this browser stays (a new cookie, the same session); the other one is out
    assert here.cookies[LOGIN_COOKIE] != here_session
    assert await session_id_of(hub, here) == here_id
    assert await logged_in(here)
    assert not await logged_in(there)
    left = await rows(hub, APIToken, APIToken.session_id.is_not(None))
    assert [t.session_id for t in left] == [here_id]
    assert "user.password_change" in await actions(hub, "ann")
    assert (await Browser(hub).login("ann", PASSWORD)).code == 403
    assert (await Browser(hub).login("ann", NEW_PASSWORD)).code == 302
    hub_logs.assert_no_secrets(PASSWORD, NEW_PASSWORD)


async def session_id_of(hub: RunningHub, browser: Browser) -> str:
    """The login session id inside a browser's signed login cookie."""
    from tornado.web import decode_signed_value

    raw = decode_signed_value(_secret(hub), LOGIN_COOKIE, browser.cookies[LOGIN_COOKIE])
    assert raw is not None
    return raw.decode().split(" ")[1]


def _secret(hub: RunningHub) -> bytes:
    from hub import secretfiles

    loaded = secretfiles.load_secrets(
        Path(hub.app.settings.cookie_secret_file), Path(hub.app.settings.proxy_auth_token_file)
    )
    return loaded.cookie_secret


async def test_password_change_is_throttled_and_for_native_accounts(
    hub_factory: HubFactory,
) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    assert (await browser.login("ann")).code == 302
    before = await accounts(hub)
    fields = {"current": "wrong wrong wrong", "new": NEW_PASSWORD, "new_again": NEW_PASSWORD}
    assert (await post_form(browser, "/hub/password", **fields)).code == 403
    assert (await post_form(browser, "/hub/password", **fields)).code == 403
    # wrong current passwords count against the account, as failed logins do
    [row] = await rows(hub, LoginThrottle, LoginThrottle.key == "acct:ann")
    assert row.failures == 2
    await hold(hub, "acct:ann")
    r = await post_form(browser, "/hub/password", **{**fields, "current": PASSWORD})
    assert r.code == 429
    assert 500 < int(r.headers["Retry-After"]) <= 600
    assert "Too many wrong passwords" in alert(r)
    assert await accounts(hub) == before

    # an account without a password here (made by an admin for another way in)
    await hub.add_user("sso")
    other = Browser(hub)
    other.cookies[LOGIN_COOKIE] = await login_cookie_for(hub, "sso")
    page = await other.request("GET", "/hub/password")
    assert page.code == 200
    assert "has no password on this hub" in page.body.decode()
    r = await post_form(other, "/hub/password", **fields)
    assert r.code == 400


async def login_cookie_for(hub: RunningHub, name: str) -> str:
    """A login cookie for `name`, as the hub signs them (for accounts with no password)."""
    from tornado.web import create_signed_value

    user = await user_row(hub, name)
    assert user is not None
    return create_signed_value(_secret(hub), LOGIN_COOKIE, f"{user.cookie_id} s1").decode()


# --- two-step login -------------------------------------------------------------------


async def enrol(hub: RunningHub, browser: Browser) -> str:
    """Turn on two-step login on the page; returns the secret."""
    page = await browser.request("GET", "/hub/totp")
    assert page.code == 200
    text = page.body.decode()
    assert '<img class="qr" src="data:image/svg+xml' in text
    uri = html.unescape(re.search(r"<code>(otpauth://[^<]+)</code>", text).group(1))  # type: ignore[union-attr]
    secret = pyotp.parse_uri(uri).secret
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in text
    token = hidden(page, "enrol_token")
    r = await post_form(
        browser, "/hub/totp", action="enable", enrol_token=token, code=wrong_code(secret)
    )
    assert r.code == 400
    assert "That code is not right" in alert(r)
    assert hidden(r, "enrol_token") == token  # the same secret, to try again
    r = await post_form(
        browser, "/hub/totp", action="enable", enrol_token=token, code=code_for(secret, None)
    )
    assert r.code == 200, alert(r)
    assert "Two-step login is on" in r.body.decode()
    return secret


async def next_step_came(hub: RunningHub, name: str) -> None:
    """As if the codes used so far were from earlier time steps: a code of the current
    step works again (instead of waiting up to 30 s for the next one)."""

    def rewind(session: Session) -> None:
        user = session.scalar(select(User).where(User.name == name))
        assert user is not None
        user.totp_last_step = pyotp.TOTP(pyotp.random_base32()).timecode(time.time()) - 2  # type: ignore[arg-type]

    await hub.db.run(rewind)


async def last_step(hub: RunningHub, name: str) -> int | None:
    user = await user_row(hub, name)
    assert user is not None
    return user.totp_last_step


async def code_login(hub: RunningHub, browser: Browser, code: str, password: str = PASSWORD) -> Any:
    step = await browser.login("ann", password)
    assert step.code == 200, step.body[:300]
    assert LOGIN_COOKIE not in browser.cookies
    assert hidden(step, "username") == "ann"
    return await post_form(
        browser,
        "/hub/login",
        authenticator=hidden(step, "authenticator"),
        username="ann",
        totp_pending=hidden(step, "totp_pending"),
        code=code,
    )


async def test_totp_enrol_login_replay_and_disable(
    hub_factory: HubFactory, hub_logs: LogCapture
) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    assert (await browser.login("ann")).code == 302
    secret = await enrol(hub, browser)
    user = await user_row(hub, "ann")
    assert user is not None
    assert user.totp_secret is not None
    assert secret.encode() not in user.totp_secret  # stored encrypted
    assert hub.state.auth.totp_crypter is not None
    assert hub.state.auth.totp_crypter.decrypt(user.totp_secret).decode() == secret
    assert "user.totp_enable" in await actions(hub, "ann")
    # the enrolment page now offers to turn it off
    assert "Turn two-step login off" in (await browser.request("GET", "/hub/totp")).body.decode()

    # a password login is now only a step: the code form, no cookie
    fresh = Browser(hub)
    used = await last_step(hub, "ann")
    r = await code_login(hub, fresh, wrong_code(secret))
    assert r.code == 403
    assert "That code is not right" in alert(r)
    # the code form again, to try another code without typing the password again
    assert hidden(r, "totp_pending")
    assert LOGIN_COOKIE not in fresh.cookies
    [row] = await rows(hub, LoginThrottle, LoginThrottle.key == "acct:ann")
    assert row.failures == 1  # a wrong code is a guess
    code = code_for(secret, used)
    r = await code_login(hub, fresh, code)
    assert r.code == 302, alert(r)
    assert await logged_in(fresh)
    # the same code again (another browser, the right password): refused, counted
    again = Browser(hub)
    r = await code_login(hub, again, code)
    assert r.code == 403
    assert "was used already" in alert(r)
    assert LOGIN_COOKIE not in again.cookies
    # a pending login is bound to its name and does not outlive the session it was for
    step = await again.login("ann")
    forged = await post_form(
        again,
        "/hub/login",
        authenticator="native",
        username="bo",
        totp_pending=hidden(step, "totp_pending"),
        code=code_for(secret, await last_step(hub, "ann")),
    )
    assert forged.code == 403
    assert LOGIN_COOKIE not in again.cookies
    r = await post_form(
        again,
        "/hub/login",
        authenticator="native",
        username="ann",
        totp_pending="made-up",
        code=code,
    )
    assert r.code == 403
    assert "ran out" in alert(r)
    # the password alone no longer gets a token from the API either
    r = await hub.api(
        "POST", "/users/ann/tokens", {"auth": {"username": "ann", "password": PASSWORD}}, token=None
    )
    assert r.status == 403

    # turning it off takes the password and a fresh code (the clock moves on meanwhile)
    await next_step_came(hub, "ann")
    fields = {"action": "disable", "password": PASSWORD, "code": wrong_code(secret)}
    assert (await post_form(browser, "/hub/totp", **fields)).code == 403
    fields["password"] = "not my password"
    fields["code"] = code_for(secret, await last_step(hub, "ann"))
    r = await post_form(browser, "/hub/totp", **fields)
    assert r.code == 403
    assert "current password is not right" in alert(r)
    assert (await user_row(hub, "ann")).totp_secret is not None  # type: ignore[union-attr]
    fields["password"] = PASSWORD
    r = await post_form(browser, "/hub/totp", **fields)
    assert r.code == 200, alert(r)
    assert "Two-step login is off" in r.body.decode()
    user = await user_row(hub, "ann")
    assert user is not None
    assert (user.totp_secret, user.totp_last_step) == (None, None)
    assert "user.totp_disable" in await actions(hub, "ann")
    assert (await Browser(hub).login("ann")).code == 302
    hub_logs.assert_no_secrets(PASSWORD, secret, code)


async def test_a_pending_login_ends_with_the_session(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    assert (await browser.login("ann")).code == 302
    secret = await enrol(hub, browser)
    other = Browser(hub)
    step = await other.login("ann")
    # a password change (or a block) in between voids the pending login
    r = await post_form(
        browser, "/hub/password", current=PASSWORD, new=NEW_PASSWORD, new_again=NEW_PASSWORD
    )
    assert r.code == 200
    r = await post_form(
        other,
        "/hub/login",
        authenticator="native",
        username="ann",
        totp_pending=hidden(step, "totp_pending"),
        code=code_for(secret, await last_step(hub, "ann")),
    )
    assert r.code == 403
    assert "ran out" in alert(r)
    assert LOGIN_COOKIE not in other.cookies


async def test_admin_resets_totp(hub: RunningHub) -> None:
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("bo", password=PASSWORD)
    browser = Browser(hub)
    assert (await browser.login("ann")).code == 302
    await enrol(hub, browser)
    bo = await hub.token_for("bo")
    assert (await hub.api("DELETE", "/users/ann/totp", token=bo)).status == 403
    r = await hub.api("DELETE", "/users/ann/totp", {"x": 1})
    assert r.status == 400
    r = await hub.api("DELETE", "/users/nobody/totp")
    assert r.status == 404
    assert (await user_row(hub, "ann")).totp_secret is not None  # type: ignore[union-attr]
    r = await hub.api("DELETE", "/users/ann/totp")
    assert r.status == 204
    assert (await user_row(hub, "ann")).totp_secret is None  # type: ignore[union-attr]
    r = await hub.api("DELETE", "/users/ann/totp")
    assert r.status == 400
    assert "nothing to reset" in r.json()["message"]
    assert (await Browser(hub).login("ann")).code == 302
    events = await rows(hub, AuditEvent, AuditEvent.action == "user.totp_reset")
    assert [(e.actor, e.target) for e in events] == [("admin", "ann")]


async def test_totp_page_bad_posts_change_nothing(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("bob", password=PASSWORD)
    ann, bob = Browser(hub), Browser(hub)
    assert (await ann.login("ann")).code == 302
    assert (await bob.login("bob")).code == 302
    bobs_page = await bob.request("GET", "/hub/totp")
    bobs_token = hidden(bobs_page, "enrol_token")
    bobs_secret = pyotp.parse_uri(
        html.unescape(
            re.search(r"<code>(otpauth://[^<]+)</code>", bobs_page.body.decode()).group(1)
        )  # type: ignore[union-attr]
    ).secret
    for fields, status, message in (
        ({"action": "bogus"}, 400, "Unknown action"),
        ({"action": "enable", "enrol_token": "made-up", "code": "123456"}, 400, "too old"),
        # another person's set-up page does not turn it on for ann
        (
            {"action": "enable", "enrol_token": bobs_token, "code": code_for(bobs_secret, None)},
            400,
            "too old",
        ),
        ({"action": "disable", "password": PASSWORD, "code": "123456"}, 409, "off already"),
    ):
        r = await post_form(ann, "/hub/totp", **fields)
        assert r.code == status, fields
        assert message in alert(r)
    assert (await user_row(hub, "ann")).totp_secret is None  # type: ignore[union-attr]
    assert (await user_row(hub, "bob")).totp_secret is None  # type: ignore[union-attr]
    secret = await enrol(hub, ann)
    page = await ann.request("GET", "/hub/totp")
    r = await post_form(
        ann, "/hub/totp", action="enable", enrol_token=bobs_token, code=code_for(secret, None)
    )
    assert r.code == 400
    assert "Turn two-step login off" in page.body.decode()
    # without a login: to the login page; an account with no password here: told so
    assert (await Browser(hub).request("GET", "/hub/totp")).code == 302
    await hub.add_user("sso")
    sso = Browser(hub)
    sso.cookies[LOGIN_COOKIE] = await login_cookie_for(hub, "sso")
    assert "no password on this hub" not in (await sso.request("GET", "/hub/totp")).body.decode()
    assert "through another service" in (await sso.request("GET", "/hub/totp")).body.decode()
    r = await post_form(sso, "/hub/totp", action="enable", enrol_token="x", code="123456")
    assert r.code == 400
    assert (await user_row(hub, "sso")).totp_secret is None  # type: ignore[union-attr]


async def test_admins_can_be_made_to_use_totp(hub_factory: HubFactory) -> None:
    hub = await hub_factory(config="c.NativeAuthenticator.require_totp_for_admins = True\n")
    await hub.add_user("ann", password=PASSWORD)
    assert (await Browser(hub).login("ann")).code == 302  # not an admin: no second factor
    browser = Browser(hub)

    async def password_step() -> tuple[Any, str]:
        step = await browser.login("admin", ADMIN_PASSWORD)
        assert step.code == 200
        assert "Admins of this hub must use two-step login" in step.body.decode()
        uri = re.search(r"<code>(otpauth://[^<]+)</code>", step.body.decode())
        assert uri is not None
        return step, pyotp.parse_uri(html.unescape(uri.group(1))).secret

    async def post_code(step: Any, code: str) -> Any:
        return await post_form(
            browser,
            "/hub/login",
            authenticator="native",
            username="admin",
            totp_pending=hidden(step, "totp_pending"),
            enrol_token=hidden(step, "enrol_token"),
            code=code,
        )

    step, secret = await password_step()
    r = await post_code(step, wrong_code(secret))
    assert r.code == 403
    assert "That code is not right" in alert(r)
    assert (await user_row(hub, "admin")).totp_secret is None  # type: ignore[union-attr]
    step, secret = await password_step()  # a new key each time until one is confirmed
    r = await post_code(step, code_for(secret, None))
    assert r.code == 302, alert(r)
    assert LOGIN_COOKIE in browser.cookies
    user = await user_row(hub, "admin")
    assert user is not None
    assert user.totp_secret is not None
    assert "user.totp_enable" in await actions(hub, "admin")
    # from now on, the usual code form
    again = Browser(hub)
    step = await again.login("admin", ADMIN_PASSWORD)
    assert step.code == 200
    assert "must use two-step login" not in step.body.decode()
    assert "enrol_token" not in step.body.decode()


async def test_logins_and_codes_wait_when_throttled(hub_factory: HubFactory) -> None:
    hub = await hub_factory(config=SIGNUP)
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    assert (await browser.login("ann")).code == 302
    secret = await enrol(hub, browser)
    # the password step passed; then the account waits (as after many wrong codes)
    other = Browser(hub)
    step = await other.login("ann")
    assert step.code == 200
    await hold(hub, "acct:ann")
    used = await last_step(hub, "ann")
    r = await post_form(
        other,
        "/hub/login",
        authenticator="native",
        username="ann",
        totp_pending=hidden(step, "totp_pending"),
        code=code_for(secret, used),
    )
    assert r.code == 429
    assert 500 < int(r.headers["Retry-After"]) <= 600
    assert "Too many failed logins" in alert(r)
    assert LOGIN_COOKIE not in other.cookies
    # the code was not looked at, so it was not used up
    assert await last_step(hub, "ann") == used
    # a waiting sign-up request gets no hint while its address or name waits either
    assert (await sign_up(Browser(hub), "zed")).code == 201
    await hold(hub, "acct:zed")
    r = await Browser(hub).login("zed", PASSWORD)
    assert r.code == 429
    assert "waiting for approval" not in r.body.decode()


async def test_a_secret_the_hub_cannot_read(hub_factory: HubFactory, hub_logs: LogCapture) -> None:
    # as after the cookie secret (from which the TOTP key is derived) was replaced
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)
    await hub.db.run(totp.enable, "ann", b"gAAAA-not-a-token-this-hub-made", 1)
    browser = Browser(hub)
    step = await browser.login("ann")
    assert step.code == 200
    r = await post_form(
        browser,
        "/hub/login",
        authenticator="native",
        username="ann",
        totp_pending=hidden(step, "totp_pending"),
        code="123456",
    )
    assert r.code == 403
    assert "Ask an admin to reset it" in alert(r)
    assert LOGIN_COOKIE not in browser.cookies
    # an admin resets it, and the password logs her in again
    assert (await hub.api("DELETE", "/users/ann/totp")).status == 204
    assert (await browser.login("ann")).code == 302
    await hub.db.run(totp.enable, "ann", b"gAAAA-not-a-token-this-hub-made", 1)
    r = await post_form(browser, "/hub/totp", action="disable", password=PASSWORD, code="123456")
    assert r.code == 409
    assert "Ask an admin to reset it" in alert(r)
    assert "Traceback" not in hub_logs.text()


def test_codes_one_step_either_side_each_once() -> None:
    secret = pyotp.random_base32()
    code = pyotp.TOTP(secret)
    now = 1_800_000_000.0
    step = code.timecode(now)  # type: ignore[arg-type]
    for offset, accepted in ((-2, False), (-1, True), (0, True), (1, True), (2, False)):
        found = totp.matching_step(secret, code.generate_otp(step + offset), None, now=now)
        assert (found == step + offset) is accepted, offset
    current = code.generate_otp(step)
    assert totp.matching_step(secret, current[:3] + " " + current[3:], None, now=now) == step
    # the step used last, and any before it, are spent
    assert totp.matching_step(secret, current, step, now=now) is None
    assert totp.matching_step(secret, current, step - 1, now=now) == step
    for typed in ("", "12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16"):
        assert totp.matching_step(secret, typed, None, now=now) is None
