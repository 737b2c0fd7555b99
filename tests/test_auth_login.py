"""The login page and what every login shares: several authenticators on one page,
the identity -> user step (lists, admin, groups, encrypted auth state), throttling
of failed logins (per account, per device, per address; kept across restarts),
refresh, the pre-spawn hook and the login metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from tornado.httpclient import AsyncHTTPClient

from hub.auth.crypto import KEY_ENV, Crypter
from hub.db.models import LoginThrottle, User
from hub.pages.base import LOGIN_COOKIE
from tests.conftest import HubFactory, LogCapture, RunningHub, expect_error
from tests.test_pages import PASSWORD, SPAWNER, Browser

KEY = "a" * 64


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


def _user(hub: RunningHub, name: str) -> Any:
    def read(session: Any) -> Any:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            return None
        return {
            "admin": user.admin,
            "groups": [g.name for g in user.groups],
            "provider": user.auth_provider,
            "state": user.encrypted_auth_state,
            "email": user.email,
            "full_name": user.full_name,
            "cookie_id": user.cookie_id,
        }

    return hub.db.run(read)


def _error(page: bytes) -> str:
    match = re.search(rb'<p class="error" role="alert">([^<]*)</p>', page)
    return match.group(1).decode() if match else ""


def _read(script: Path, suffix: str) -> Any:
    """What the scripted authenticator recorded (None if nothing yet)."""
    path = Path(str(script) + suffix)
    return json.loads(path.read_text()) if path.exists() else None


def _scripted(tmp_path: Path, extra: str = "", **script: Any) -> tuple[str, Path]:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    config = (
        "c.Hub.authenticator_class = ['tests.authplugins.ScriptedAuthenticator', 'native']\n"
        f"c.ScriptedAuthenticator.script_file = {str(path)!r}\n" + extra
    )
    return config, path


# --- the page ---------------------------------------------------------------------------


async def test_several_authenticators_on_one_page(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        config="c.Hub.authenticator_class = ['native', 'shared', 'dummy']\n"
        "c.SharedPasswordAuthenticator.user_password = 'workshop-2026'\n"
        "c.DummyAuthenticator.display_name = 'Guest demo'\n"
    )
    await hub.add_user("ann", password=PASSWORD)
    browser = Browser(hub)
    page = (await browser.request("GET", "/hub/login")).body.decode()
    # one form per authenticator, in the configured order, each naming itself
    ids = re.findall(r'name="authenticator" value="([^"]+)"', page)
    assert ids == ["native", "shared", "dummy"]
    headings = re.findall(r'<h2 id="way-[^"]+"[^>]*>([^<]+)</h2>', page)
    assert headings == ["Hub account", "Workshop login", "Guest demo"]
    assert len(re.findall(r'id="shared-username"', page)) == 1  # labels stay unique

    r = await browser.login("ann", authenticator="native")
    assert r.code == 302
    assert LOGIN_COOKIE in browser.cookies
    r = await Browser(hub).login("bo", "workshop-2026", authenticator="shared")
    assert r.code == 302
    r = await Browser(hub).login("cy", "anything", authenticator="dummy")
    assert r.code == 302
    for name, provider in [("ann", "native"), ("bo", "shared"), ("cy", "dummy")]:
        assert (await _user(hub, name))["provider"] == provider

    # each authenticator checks only its own credentials
    r = await Browser(hub).login("dee", PASSWORD, authenticator="shared")
    assert r.code == 403
    assert _error(r.body) == "The username or password is not right."
    assert await _user(hub, "dee") is None
    # an account belongs to the authenticator that made it: the dummy one, which lets
    # anyone in, cannot open ann's native account, nor the shared one bo's
    r = await Browser(hub).login("ann", "x", authenticator="dummy")
    assert r.code == 403
    assert "logs in another way" in _error(r.body)
    r = await Browser(hub).login("bo", "x", authenticator="dummy")
    assert r.code == 403
    assert LOGIN_COOKIE not in Browser(hub).cookies


@pytest.mark.parametrize("chosen", ["", "nope", "x" * 5000])
async def test_a_form_for_no_authenticator_is_refused(hub_factory: HubFactory, chosen: str) -> None:
    hub = await hub_factory(
        config="c.Hub.authenticator_class = ['native', 'shared']\n"
        "c.SharedPasswordAuthenticator.user_password = 'workshop-2026'\n"
    )
    browser = Browser(hub)
    if chosen == "":
        # no authenticator named: the first form authenticator (native) answers
        await hub.add_user("ann", password=PASSWORD)
        r = await browser.login("ann")
        assert r.code == 302
        return
    r = await browser.login("ann", authenticator=chosen)
    assert r.code == 400
    assert _error(r.body) == "Choose a way to log in from this page."
    assert LOGIN_COOKIE not in browser.cookies


async def test_bad_authenticator_settings_stop_the_hub(hub_factory: HubFactory) -> None:
    from hub.errors import ConfigError

    cases = {
        "c.Hub.authenticator_class = 'nosuch'": "cannot load 'nosuch'",
        "c.Hub.authenticator_class = 'hub.settings.Hub'": "is not an Authenticator",
        "c.Hub.authenticator_class = []": "at least one",
        "c.Hub.authenticator_class = ['native', 'native']": "two authenticators have the id",
        "c.NativeAuthenticator.id = 'Bad Id'": "id must be lower-case",
        "c.Authenticator.admin_users = ['bad name!']": "admin_users: invalid username",
        "c.Authenticator.username_pattern = '(['": "not a regular expression",
        "c.Authenticator.pre_spawn_hook = 42": "must be a function",
        "c.Hub.authenticator_class = 'dummy'\nc.Hub.ip = '0.0.0.0'": "not only on loopback",
        "c.Hub.login_failures_free = 0": "at least 1",
        "c.Hub.login_delay_max = -1": "must be positive",
    }
    for config, fragment in cases.items():
        with pytest.raises((ConfigError, Exception)) as info:
            await hub_factory(config=config + "\n")
        assert fragment in str(info.value), (config, str(info.value))


async def test_bad_crypt_key_is_named_but_not_shown(
    hub_factory: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.errors import ConfigError

    monkeypatch.setenv(KEY_ENV, "not-a-key-but-a-secret-value")
    with pytest.raises(ConfigError) as info:
        await hub_factory()
    assert KEY_ENV in str(info.value)
    assert "not-a-key-but-a-secret-value" not in str(info.value)


# --- identity -> user -------------------------------------------------------------------


async def test_lists_admin_and_groups_from_the_identity(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    config, script = _scripted(
        tmp_path,
        "c.Authenticator.blocked_users = ['mallory']\n"
        "c.Authenticator.admin_users = ['boss']\n"
        "c.Authenticator.manage_groups = True\n",
        groups=["Physics-101", "lab@2026", "bad group!"],
        admin=False,
        email="ann@example.edu",
        full_name="Ann Smith",
    )
    hub = await hub_factory(config=config)
    r = await Browser(hub).login("Ann", "letmein", authenticator="scripted")
    assert r.code == 302
    ann = await _user(hub, "ann")
    # a group name the hub cannot hold is dropped, not fatal
    assert ann["groups"] == ["lab@2026", "physics-101"] or ann["groups"] == [
        "Physics-101",
        "lab@2026",
    ]
    assert ann["admin"] is False
    assert ann["email"] == "ann@example.edu"
    assert ann["full_name"] == "Ann Smith"

    # the provider's groups replace the hub's at the next login
    script.write_text(json.dumps({"groups": ["chem"], "admin": True}))
    assert (await Browser(hub).login("ann", "letmein", authenticator="scripted")).code == 302
    ann = await _user(hub, "ann")
    assert ann["groups"] == ["chem"]
    assert ann["admin"] is True

    # admin_users are admins whatever the identity says
    script.write_text(json.dumps({"admin": False}))
    assert (await Browser(hub).login("boss", "letmein", authenticator="scripted")).code == 302
    assert (await _user(hub, "boss"))["admin"] is True

    # blocked_users never get in, and are not created
    r = await Browser(hub).login("mallory", "letmein", authenticator="scripted")
    assert r.code == 403
    assert "not allowed" in _error(r.body)
    assert await _user(hub, "mallory") is None

    # a user an admin blocked in the hub is refused too
    await hub.api("PATCH", "/users/ann", {"blocked": True})
    r = await Browser(hub).login("ann", "letmein", authenticator="scripted")
    assert r.code == 403
    assert "not allowed" in _error(r.body)


async def test_only_allowed_identities_get_in(hub_factory: HubFactory, tmp_path: Path) -> None:
    config, script = _scripted(
        tmp_path,
        "c.Authenticator.allowed_users = ['ann']\nc.Authenticator.allow_existing_users = False\n",
        allowed=False,
    )
    hub = await hub_factory(config=config)
    r = await Browser(hub).login("zed", "letmein", authenticator="scripted")
    assert r.code == 403
    assert "not allowed" in _error(r.body)
    assert await _user(hub, "zed") is None
    assert (await Browser(hub).login("ann", "letmein", authenticator="scripted")).code == 302
    # an existing user: refused while allow_existing_users is off...
    await hub.add_user("cy")
    r = await Browser(hub).login("cy", "letmein", authenticator="scripted")
    assert r.code == 403
    # ...and the authenticator's own rule (organizations, groups) lets people in
    script.write_text(json.dumps({"allowed": True}))
    assert (await Browser(hub).login("cy", "letmein", authenticator="scripted")).code == 302
    assert (await Browser(hub).login("dee", "letmein", authenticator="scripted")).code == 302


async def test_auth_state_is_kept_encrypted(
    hub_factory: HubFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_token = "gho_secret-access-token-1234"
    config, _ = _scripted(tmp_path, auth_state={"token": secret_token})
    # without a key, auth state is not kept at all
    hub = await hub_factory(config=config)
    assert (await Browser(hub).login("ann", "letmein", authenticator="scripted")).code == 302
    assert (await _user(hub, "ann"))["state"] is None

    old_key, new_key = "b" * 64, "c" * 64
    monkeypatch.setenv(KEY_ENV, old_key)
    hub = await hub_factory(config=config)
    assert (await Browser(hub).login("bo", "letmein", authenticator="scripted")).code == 302
    stored = (await _user(hub, "bo"))["state"]
    assert stored is not None
    assert secret_token.encode() not in stored
    assert Crypter([bytes.fromhex(old_key)]).decrypt_json(stored) == {"token": secret_token}

    # a new key first, the old one after: old data still opens, new data uses the new key
    monkeypatch.setenv(KEY_ENV, f"{new_key};{old_key}")
    hub = await hub_factory(config=config)
    assert (await Browser(hub).login("cy", "letmein", authenticator="scripted")).code == 302
    newer = (await _user(hub, "cy"))["state"]
    assert Crypter([bytes.fromhex(new_key)]).decrypt_json(newer) == {"token": secret_token}


async def test_pre_spawn_hook_gets_the_auth_state(
    hub_factory: HubFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    config, script = _scripted(
        tmp_path,
        "c.Authenticator.pre_spawn_hook = __import__('tests.authplugins').authplugins"
        ".record_pre_spawn\n",
        auth_state={"token": "tok-1"},
    )
    hub = await hub_factory(config=config, spawner_class=SPAWNER)
    assert (await Browser(hub).login("ann", "letmein", authenticator="scripted")).code == 302
    r = await hub.api("POST", "/users/ann/server")
    assert r.status in (201, 202), r.body
    seen = _read(script, ".prespawn")
    assert seen == ["ann", {"token": "tok-1"}]
    spawner = next(iter(hub.state.orchestrator.spawners.values()))
    assert spawner.get_env()["SCRIPTED_TOKEN"] == "tok-1"


async def test_a_failing_pre_spawn_hook_refuses_the_start_cleanly(
    hub_factory: HubFactory, hub_logs: LogCapture
) -> None:
    hub = await hub_factory(
        config="def hook(auth, name, state, spawner):\n"
        "    raise RuntimeError('db password hunter2 in a hook')\n"
        "c.Authenticator.pre_spawn_hook = hook\n",
        spawner_class=SPAWNER,
    )
    await hub.add_user("ann")
    r = await hub.api("POST", "/users/ann/server")
    expect_error(r, 500, "could not prepare")
    assert b"hunter2" not in r.body
    model = (await hub.api("GET", "/users/ann?include_stopped_servers=1")).json()
    assert model["server"] is None
    assert not model["pending"]
    assert model["servers"][""]["failure"] == "The hub could not prepare the server's start"


async def test_refresh_before_a_start(
    hub_factory: HubFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    config, script = _scripted(
        tmp_path,
        "c.ScriptedAuthenticator.refresh_pre_spawn = True\n",
        auth_state={"token": "tok-1"},
        refresh="new",
    )
    hub = await hub_factory(config=config, spawner_class=SPAWNER)
    browser = Browser(hub)
    assert (await browser.login("ann", "letmein", authenticator="scripted")).code == 302
    r = await hub.api("POST", "/users/ann/server")
    assert r.status in (201, 202)
    refreshed = _read(script, ".refreshed")
    assert refreshed == [{"name": "ann", "auth_state": {"token": "tok-1"}}]
    # the refreshed auth state was stored
    stored = (await _user(hub, "ann"))["state"]
    assert Crypter([bytes.fromhex(KEY)]).decrypt_json(stored) == {"token": "refreshed"}
    await hub.api("DELETE", "/users/ann/server")

    # the provider no longer vouches for ann: the start is refused, and she is logged out
    script.write_text(json.dumps({"refresh": "gone"}))
    r = await hub.api("POST", "/users/ann/server")
    expect_error(r, 403, "log in again")
    r = await browser.request("GET", "/hub/home")
    assert r.code == 302
    assert r.headers["Location"].startswith("/hub/login")


async def test_refresh_on_a_page_visit_when_due(hub_factory: HubFactory, tmp_path: Path) -> None:
    config, script = _scripted(tmp_path, "c.ScriptedAuthenticator.auth_refresh_age = 60\n")
    hub = await hub_factory(config=config)
    browser = Browser(hub)
    assert (await browser.login("ann", "letmein", authenticator="scripted")).code == 302
    assert (await browser.request("GET", "/hub/home")).code == 200
    assert _read(script, ".refreshed") is None  # just logged in: not due

    async def age(seconds: int) -> None:
        import datetime

        from hub.timeutil import utcnow

        def set_age(session: Any) -> None:
            when = utcnow() - datetime.timedelta(seconds=seconds)
            session.execute(update(User).where(User.name == "ann").values(auth_refreshed=when))

        await hub.db.run(set_age)

    await age(120)
    assert (await browser.request("GET", "/hub/home")).code == 200
    assert len(_read(script, ".refreshed")) == 1
    assert (await browser.request("GET", "/hub/home")).code == 200
    assert len(_read(script, ".refreshed")) == 1  # refreshed: not due again

    await age(120)
    script.write_text(json.dumps({"refresh": "gone"}))
    r = await browser.request("GET", "/hub/home")
    assert r.code == 302
    assert r.headers["Location"].startswith("/hub/login")
    assert LOGIN_COOKIE not in browser.cookies


# --- throttling ---------------------------------------------------------------------


async def _throttled_hub(hub_factory: HubFactory, **settings: Any) -> RunningHub:
    settings.setdefault("login_failures_free", 3)
    hub = await hub_factory(**settings)
    await hub.add_user("ann", password=PASSWORD)
    return hub


async def test_failed_logins_are_slowed_down_per_account(hub_factory: HubFactory) -> None:
    hub = await _throttled_hub(hub_factory)
    stranger = Browser(hub)
    for _ in range(3):
        r = await stranger.login("ann", "wrong password")
        assert r.code == 403
    # the fourth failure is counted and the account now waits, for browsers it does not know
    r = await stranger.login("ann", "wrong password")
    assert r.code == 403
    r = await stranger.login("ann", PASSWORD)
    assert r.code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert "Too many failed logins" in _error(r.body)
    assert LOGIN_COOKIE not in stranger.cookies
    # another browser without a device cookie for ann waits too
    assert (await Browser(hub).login("ann", PASSWORD)).code == 429


async def test_a_stranger_cannot_lock_the_owner_out(hub_factory: HubFactory) -> None:
    hub = await _throttled_hub(hub_factory)
    owner = Browser(hub)
    assert (await owner.login("ann")).code == 302  # this browser now knows ann
    await owner.request("POST", "/hub/logout", {"_xsrf": await owner.xsrf()})
    stranger = Browser(hub)
    for _ in range(6):
        await stranger.login("ann", "guess")
    assert (await stranger.login("ann", PASSWORD)).code == 429
    # ann's own browser is counted apart and gets in
    r = await owner.login("ann")
    assert r.code == 302
    assert LOGIN_COOKIE in owner.cookies


async def test_unknown_and_wrong_get_the_same_answer(hub_factory: HubFactory) -> None:
    hub = await _throttled_hub(hub_factory)

    def shape(r: Any) -> tuple[int, str, str | None]:
        return r.code, _error(r.body), r.headers.get("Retry-After")

    known, unknown = Browser(hub), Browser(hub)
    for _ in range(5):
        a = await known.login("ann", "wrong")
        b = await unknown.login("nobody-here", "wrong")
        assert shape(a) == shape(b)
    assert shape(a)[0] == 429


async def test_one_address_trying_many_accounts_waits(hub_factory: HubFactory) -> None:
    hub = await _throttled_hub(hub_factory, login_address_failures_free=4)
    browser = Browser(hub)
    for i in range(5):
        assert (await browser.login(f"user{i}", "guess")).code == 403
    # a fresh name, and even ann's right password: this address waits
    assert (await Browser(hub).login("ann", PASSWORD)).code == 429


async def test_throttling_survives_a_restart(hub_factory: HubFactory) -> None:
    hub = await _throttled_hub(hub_factory)
    for _ in range(4):
        await Browser(hub).login("ann", "guess")
    restarted = await hub_factory(login_failures_free=3)

    def rows(session: Any) -> dict[str, int]:
        return {r.key: r.failures for r in session.scalars(select(LoginThrottle))}

    assert (await restarted.db.run(rows))["acct:ann"] == 4
    assert (await Browser(restarted).login("ann", PASSWORD)).code == 429


async def test_a_success_clears_the_account_count(hub_factory: HubFactory) -> None:
    hub = await _throttled_hub(hub_factory)
    browser = Browser(hub)
    for _ in range(2):
        await browser.login("ann", "typo")
    assert (await browser.login("ann")).code == 302

    def rows(session: Any) -> set[str]:
        return {r.key for r in session.scalars(select(LoginThrottle))}

    keys = await hub.db.run(rows)
    assert "acct:ann" not in keys
    assert "addr:127.0.0.1" in keys


async def test_password_token_requests_are_throttled_too(hub_factory: HubFactory) -> None:
    hub = await _throttled_hub(hub_factory)
    body = {"auth": {"username": "ann", "password": "guess"}}
    for _ in range(4):
        expect_error(await hub.api("POST", "/users/ann/tokens", body, token=None), 403)
    good = {"auth": {"username": "ann", "password": PASSWORD}}
    r = await hub.api("POST", "/users/ann/tokens", good, token=None)
    expect_error(r, 429, "Too many failed logins")
    assert int(r.headers["Retry-After"]) >= 1


async def test_password_tokens_not_for_second_factor_or_foreign_accounts(
    hub_factory: HubFactory,
) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)

    def enrol(session: Any) -> None:
        session.execute(update(User).where(User.name == "ann").values(totp_secret=b"x"))

    await hub.db.run(enrol)
    good = {"auth": {"username": "ann", "password": PASSWORD}}
    expect_error(await hub.api("POST", "/users/ann/tokens", good, token=None), 403, "second factor")
    # a hub without native accounts has no passwords to trade for tokens
    other = await hub_factory(
        config="c.Hub.authenticator_class = 'shared'\n"
        "c.SharedPasswordAuthenticator.user_password = 'workshop-2026'\n"
    )
    r = await other.api("POST", "/users/ann/tokens", good, token=None)
    expect_error(r, 403, "no passwords of its own")


async def test_bad_usernames_are_logged_bounded(
    hub_factory: HubFactory, hub_logs: LogCapture
) -> None:
    hub = await hub_factory()
    long_name = "x" * 5000 + "\n<script>"
    r = await Browser(hub).login(long_name, "secret-password-value")
    assert r.code == 403
    text = hub_logs.text()
    assert "Failed login" in text
    assert "x" * 200 not in text
    assert "\n<script>" not in text
    hub_logs.assert_no_secrets("secret-password-value")


async def test_login_metrics(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("ann", password=PASSWORD)

    def count(text: str, outcome: str) -> float:
        match = re.search(
            rf'atrium_logins_total\{{authenticator="native",outcome="{outcome}"\}} ([0-9.e+]+)',
            text,
        )
        return float(match.group(1)) if match else 0.0

    async def metrics(token: str | None) -> Any:
        headers = {"Authorization": f"token {token}"} if token else {}
        return await AsyncHTTPClient().fetch(
            hub.url + "metrics", headers=headers, raise_error=False
        )

    before = (await metrics(hub.admin_token)).body.decode()
    await Browser(hub).login("ann")
    await Browser(hub).login("ann", "wrong")
    r = await metrics(hub.admin_token)
    assert r.code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    after = r.body.decode()
    assert count(after, "success") == count(before, "success") + 1
    assert count(after, "failure") == count(before, "failure") + 1
    # metrics are not public
    assert (await metrics(None)).code == 403
    r = await metrics(await hub.token_for("ann", scopes=["self"]))
    assert r.code == 403
    assert b"read:metrics" in r.body


async def test_the_client_address_is_the_one_the_proxy_saw(hub_factory: HubFactory) -> None:
    """Per-address counts follow X-Forwarded-For as the proxy appends it, skipping the
    configured load balancers; the hub serving the public directly ignores the header
    (`hub.web.listen`)."""
    hub = await hub_factory(login_address_failures_free=2, trusted_downstream_ips=["198.51.100.1"])

    names = iter(range(100))

    async def attempt(forwarded: str) -> int:
        # a new name each time: only the address is counted across attempts
        name = f"nobody{next(names)}"
        browser = Browser(hub)
        token = await browser.xsrf()
        r = await browser.request(
            "POST",
            "/hub/login",
            {"username": name, "password": "guess", "_xsrf": token},
            headers={"X-Forwarded-For": forwarded},
        )
        return r.code

    for _ in range(3):
        assert await attempt("203.0.113.5, 198.51.100.1") == 403

    def keys(session: Any) -> dict[str, int]:
        return {r.key: r.failures for r in session.scalars(select(LoginThrottle))}

    counted = await hub.db.run(keys)
    assert counted["addr:203.0.113.5"] == 3
    assert await attempt("203.0.113.5") == 429
    assert await attempt("2001:db8:1:2::7") == 403
    assert await attempt("2001:db8:1:2::8") == 403
    assert await attempt("2001:db8:1:2::9") == 403
    assert await attempt("2001:db8:1:2:ffff::1") == 429  # one /64
    assert await attempt("2001:db8:1:3::1") == 403  # the next /64 is another client
    assert "addr:2001:db8:1:2::/64" in await hub.db.run(keys)


async def test_managed_groups_are_not_edited_in_the_hub(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    """With manage_groups, membership comes from the provider at each login: the API, the
    admin pages and rosters refuse to change it (and change nothing)."""
    config, _ = _scripted(tmp_path, "c.Authenticator.manage_groups = True\n", groups=["lab"])
    hub = await hub_factory(config=config)
    assert (await Browser(hub).login("ann", "letmein", authenticator="scripted")).code == 302
    await hub.add_user("bo")
    managed = "comes from the identity provider"
    expect_error(await hub.api("PATCH", "/users/ann", {"groups": []}), 400, managed)
    expect_error(await hub.api("POST", "/groups/lab/users", {"users": ["bo"]}), 400, managed)
    expect_error(await hub.api("DELETE", "/groups/lab/users", {"users": ["ann"]}), 400, managed)
    expect_error(await hub.api("POST", "/groups/new", {"users": ["bo"]}), 400, managed)
    csv = b"username,groups\nbo,lab\n"
    r = await hub.api("POST", "/roster", raw=csv, headers={"Content-Type": "text/csv"})
    expect_error(r, 400, managed)
    assert (await hub.api("GET", "/groups/lab")).json()["users"] == ["ann"]
    assert (await hub.api("GET", "/groups/new")).status == 404
    # what is not membership stays the hub's: making an empty group, renaming a user
    assert (await hub.api("POST", "/groups/empty")).status == 201
    assert (await hub.api("PATCH", "/users/bo", {"admin": True})).status == 200


def test_no_native_account_without_native_logins(
    tmp_path: Path, db_url: str, hub_logs: LogCapture
) -> None:
    """The first admin is a native account, made only when native accounts are a way in;
    otherwise the hub says admins come from admin_users."""
    from hub.app import AtriumApp
    from tests.conftest import hub_argv

    (tmp_path / "hub_config.py").write_text(
        "c.Hub.authenticator_class = 'shared'\n"
        "c.SharedPasswordAuthenticator.user_password = 'workshop-2026'\n"
    )
    app = AtriumApp()
    app.initialize(hub_argv(tmp_path, db_url))
    state, _web, admin = app.build()
    try:
        assert not admin.created
        assert state.db.run_sync(lambda s: s.scalar(select(User.name))) is None
    finally:
        state.db.close()
    assert "No admin yet, and no c.Authenticator.admin_users" in hub_logs.text()


async def test_usernames_are_normalized_mapped_and_checked(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    config, _ = _scripted(
        tmp_path,
        "c.Authenticator.username_map = {'ann.smith': 'ann'}\n"
        "c.Authenticator.username_pattern = r'[a-z][a-z0-9.]{1,15}'\n",
    )
    hub = await hub_factory(config=config)
    # NFKC and lower case, then the map: full-width 'ANN.Smith' is ann
    assert (
        await Browser(hub).login("\uff21\uff2e\uff2e.Smith", "letmein", authenticator="scripted")
    ).code == 302
    assert await _user(hub, "ann") is not None
    assert await _user(hub, "ann.smith") is None
    # names the pattern or the hub's own rules refuse get the plain failure, no user
    for bad in ["9lives", "a" * 17, "ann smith", "../etc", ""]:
        r = await Browser(hub).login(bad, "letmein", authenticator="scripted")
        assert r.code == 403, bad
        assert _error(r.body) == "The username or password is not right."

    def names(session: Any) -> list[str]:
        return sorted(session.scalars(select(User.name)))

    assert await hub.db.run(names) == ["admin", "ann"]


def test_every_alias_names_an_authenticator() -> None:
    from hub.auth.registry import ALIASES, authenticator_classes, load_authenticator_class

    classes = authenticator_classes()
    assert len(classes) == len(ALIASES) + 1  # and the base class
    for alias in ALIASES:
        cls = load_authenticator_class(alias)
        assert cls in classes
        assert cls.default_id == alias


async def test_authenticators_get_ready_at_start_up(
    hub_factory: HubFactory, tmp_path: Path, hub_logs: LogCapture
) -> None:
    from hub.app import start_authenticators

    config, script = _scripted(tmp_path)
    hub = await hub_factory(config=config)
    await start_authenticators(hub.state)
    assert _read(script, ".started") == ["scripted"]
    # one that cannot get ready is logged, and the others still start
    script.write_text(json.dumps({"start": "fail"}))
    await start_authenticators(hub.state)
    assert "Authenticator scripted could not get ready: provider unreachable" in hub_logs.text()
