"""The shared-password authenticator: a workshop's one password, and admins' own one.

Logins go through the login page's form of a real hub; settings through the
hub's authenticator loading (the start-up check). The login in Chromium is at
the end.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config

from hub.auth.accept import NOT_ALLOWED
from hub.auth.login import WRONG
from hub.auth.registry import load_authenticators
from hub.auth.shared import SharedPasswordAuthenticator
from hub.errors import ConfigError
from tests.browser import browser_page, watch_console
from tests.conftest import HubFactory, LogCapture, RunningHub
from tests.loginform import FormClient

USER_PASSWORD = "workshop-pass-2026"
ADMIN_PASSWORD = "instructors-only-a1b2c3d4e5f6g7h8i9"  # at least 32 characters


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


@pytest.fixture(autouse=True)
def no_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATRIUM_SHARED_PASSWORD", raising=False)
    monkeypatch.delenv("ATRIUM_SHARED_ADMIN_PASSWORD", raising=False)


def shared_config(user: str = USER_PASSWORD, admin: str = "", extra: str = "") -> str:
    return (
        "c.Hub.authenticator_class = 'shared'\n"
        f"c.SharedPasswordAuthenticator.user_password = {user!r}\n"
        f"c.SharedPasswordAuthenticator.admin_password = {admin!r}\n" + extra
    )


async def user_model(hub: RunningHub, name: str) -> dict[str, object] | None:
    r = await hub.api("GET", f"/users/{name}")
    if r.status == 404:
        return None
    assert r.status == 200, r.body
    model: dict[str, object] = r.json()
    return model


async def test_the_user_password_logs_anyone_in(hub_factory: HubFactory) -> None:
    hub = await hub_factory(config=shared_config())
    for typed, name in (("ann", "ann"), ("Bo.Lee", "bo.lee")):
        client = FormClient(hub)
        answer = await client.log_in("shared", typed, USER_PASSWORD)
        assert answer.status == 302, answer.error
        assert await client.whoami() == name
        assert (await user_model(hub, name) or {})["admin"] is False
    for typed, password in (("cy", "workshop-pass-2025"), ("cy", ""), ("", USER_PASSWORD)):
        client = FormClient(hub)
        answer = await client.log_in("shared", typed, password)
        assert (answer.status, answer.error) == (403, WRONG)
        assert await client.whoami() is None
    assert await user_model(hub, "cy") is None


async def test_the_allow_lists_apply(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        config=shared_config(
            extra="c.SharedPasswordAuthenticator.allow_all = False\n"
            "c.Authenticator.allowed_users = ['ann', 'bo']\n"
            "c.Authenticator.blocked_users = ['bo']\n"
        )
    )
    assert (await FormClient(hub).log_in("shared", "ann", USER_PASSWORD)).status == 302
    for name in ("bo", "cy"):  # blocked; not allowed
        client = FormClient(hub)
        answer = await client.log_in("shared", name, USER_PASSWORD)
        assert (answer.status, answer.error) == (403, NOT_ALLOWED), name
        assert await client.whoami() is None
    # allow_all (the default here) still leaves blocked_users out
    hub = await hub_factory(config=shared_config(extra="c.Authenticator.blocked_users = ['bo']\n"))
    assert (await FormClient(hub).log_in("shared", "cy", USER_PASSWORD)).status == 302
    answer = await FormClient(hub).log_in("shared", "bo", USER_PASSWORD)
    assert (answer.status, answer.error) == (403, NOT_ALLOWED)


async def test_admins_need_the_admin_password(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        config=shared_config(
            admin=ADMIN_PASSWORD, extra="c.Authenticator.admin_users = ['teach']\n"
        )
    )
    # the user password never opens an admin account
    client = FormClient(hub)
    answer = await client.log_in("shared", "teach", USER_PASSWORD)
    assert (answer.status, answer.error) == (403, WRONG)
    assert await client.whoami() is None
    assert (await client.log_in("shared", "Teach", ADMIN_PASSWORD)).status == 302
    assert await client.whoami() == "teach"
    assert (await user_model(hub, "teach") or {})["admin"] is True
    # nor is the admin password a way in for anyone else
    answer = await FormClient(hub).log_in("shared", "ann", ADMIN_PASSWORD)
    assert (answer.status, answer.error) == (403, WRONG)
    assert await user_model(hub, "ann") is None

    # an account made an admin in the hub (not in admin_users) takes the admin password too
    assert (await FormClient(hub).log_in("shared", "helper", USER_PASSWORD)).status == 302
    r = await hub.api("PATCH", "/users/helper", {"admin": True})
    assert r.status == 200, r.body
    answer = await FormClient(hub).log_in("shared", "helper", USER_PASSWORD)
    assert (answer.status, answer.error) == (403, WRONG)
    client = FormClient(hub)
    assert (await client.log_in("shared", "helper", ADMIN_PASSWORD)).status == 302
    assert await client.whoami() == "helper"


async def test_accounts_with_powers_from_roles_need_the_admin_password(
    hub_factory: HubFactory,
) -> None:
    """A teaching assistant's role (access to the class's servers) is power over others:
    the user password does not open it, directly or through a group."""
    hub = await hub_factory(
        config=shared_config(admin=ADMIN_PASSWORD),
        load_roles=[
            {"name": "ta", "scopes": ["access:servers!group=class", "list:users"]},
        ],
    )
    for name in ("tam", "tim", "stu"):
        assert (await FormClient(hub).log_in("shared", name, USER_PASSWORD)).status == 302
    assert (await hub.api("POST", "/groups/tas", {"users": ["tim"]})).status == 201

    def grant(session: Any) -> None:
        from sqlalchemy import select

        from hub.db.models import Group, Role, User

        role = session.scalar(select(Role).where(Role.name == "ta"))
        user = session.scalar(select(User).where(User.name == "tam"))
        group = session.scalar(select(Group).where(Group.name == "tas"))
        user.roles.append(role)
        group.roles.append(role)
        session.commit()

    await hub.db.run(grant)
    hub.state.requester_cache.invalidate()
    for name in ("tam", "tim"):
        answer = await FormClient(hub).log_in("shared", name, USER_PASSWORD)
        assert (answer.status, answer.error) == (403, WRONG), name
        client = FormClient(hub)
        assert (await client.log_in("shared", name, ADMIN_PASSWORD)).status == 302, name
        assert await client.whoami() == name
    # an ordinary user (and one in an ordinary group) still logs in with the user password
    assert (await hub.api("POST", "/groups/class", {"users": ["stu"]})).status == 201
    assert (await FormClient(hub).log_in("shared", "stu", USER_PASSWORD)).status == 302


async def test_without_an_admin_password_no_admin_logs_in(hub_factory: HubFactory) -> None:
    hub = await hub_factory(config=shared_config())
    await hub.add_user("boss", admin=True)
    answer = await FormClient(hub).log_in("shared", "boss", USER_PASSWORD)
    assert (answer.status, answer.error) == (403, WRONG)
    # the API's admin ('admin' here) is an admin account like any other
    answer = await FormClient(hub).log_in("shared", "admin", USER_PASSWORD)
    assert (answer.status, answer.error) == (403, WRONG)


async def test_the_environment_overrides_the_config(
    hub_factory: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env, admin_from_env = "from-the-environment-1", "E" * 40
    monkeypatch.setenv("ATRIUM_SHARED_PASSWORD", from_env)
    monkeypatch.setenv("ATRIUM_SHARED_ADMIN_PASSWORD", admin_from_env)
    hub = await hub_factory(
        config=shared_config(
            admin=ADMIN_PASSWORD, extra="c.Authenticator.admin_users = ['teach']\n"
        )
    )
    for name, password, status in (
        ("ann", USER_PASSWORD, 403),
        ("ann", from_env, 302),
        ("teach", ADMIN_PASSWORD, 403),
        ("teach", admin_from_env, 302),
    ):
        assert (await FormClient(hub).log_in("shared", name, password)).status == status, (
            name,
            password[:4],
        )


def load(**settings: object) -> SharedPasswordAuthenticator:
    config = Config()
    for key, value in settings.items():
        if key == "admin_users":
            config.Authenticator[key] = value
        else:
            config.SharedPasswordAuthenticator[key] = value
    [auth] = load_authenticators(["shared"], config, "127.0.0.1", b"k" * 32).authenticators
    assert isinstance(auth, SharedPasswordAuthenticator)
    return auth


@pytest.mark.parametrize(
    ("env", "settings", "fragment"),
    [
        ({}, {}, "user_password must be at least 8 characters"),
        ({}, {"user_password": "seven77"}, "user_password must be at least 8 characters"),
        (
            {},
            {"user_password": USER_PASSWORD, "admin_password": "a" * 31},
            "admin_password must be at least 32 characters",
        ),
        (
            {},
            {"user_password": "s" * 40, "admin_password": "s" * 40},
            "must differ from the user password",
        ),
        (
            {},
            {"user_password": USER_PASSWORD, "admin_users": ["teach"]},
            "admin_users are set but",
        ),
        ({}, {"user_password": "two\nlines-here"}, "user_password must be one line"),
        # the environment's passwords are checked like the config's
        ({"ATRIUM_SHARED_PASSWORD": "short"}, {"user_password": USER_PASSWORD}, "at least 8"),
        (
            {"ATRIUM_SHARED_ADMIN_PASSWORD": "short-admin"},
            {"user_password": USER_PASSWORD, "admin_password": ADMIN_PASSWORD},
            "at least 32",
        ),
        (
            {"ATRIUM_SHARED_ADMIN_PASSWORD": "x" * 32, "ATRIUM_SHARED_PASSWORD": "x" * 32},
            {},
            "must differ",
        ),
    ],
)
def test_bad_settings_stop_the_start(
    env: dict[str, str],
    settings: dict[str, object],
    fragment: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as raised:
        load(**settings)
    message = str(raised.value)
    assert fragment in message
    for secret in [*env.values(), *(v for v in settings.values() if isinstance(v, str))]:
        assert secret not in message  # no password in what the start-up prints


def test_passwords_from_the_environment_alone_are_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATRIUM_SHARED_PASSWORD", USER_PASSWORD)
    monkeypatch.setenv("ATRIUM_SHARED_ADMIN_PASSWORD", ADMIN_PASSWORD)
    auth = load(admin_users=["teach"])
    assert auth.ident == "shared"


def test_every_setting_is_documented() -> None:
    for name, trait in SharedPasswordAuthenticator.class_traits(config=True).items():
        assert trait.help, f"{name} has no help"


async def test_no_password_reaches_the_log(hub_factory: HubFactory, hub_logs: LogCapture) -> None:
    hub = await hub_factory(
        config=shared_config(
            admin=ADMIN_PASSWORD, extra="c.Authenticator.admin_users = ['teach']\n"
        )
    )
    tried = ["typo-" + USER_PASSWORD, "typo-" + ADMIN_PASSWORD]
    for name, password in (
        ("ann", USER_PASSWORD),
        ("teach", ADMIN_PASSWORD),
        ("teach", USER_PASSWORD),
        ("ann", tried[0]),
        ("teach", tried[1]),
    ):
        await FormClient(hub).log_in("shared", name, password)
    hub_logs.assert_no_secrets(USER_PASSWORD, ADMIN_PASSWORD, *tried)


async def test_a_workshop_login_in_a_browser(hub_factory: HubFactory, shots: Path) -> None:
    hub = await hub_factory(
        config=shared_config(extra="c.Hub.redirect_to_server = False\n"),
        title="Data Workshop",
    )
    async with browser_page() as page:
        problems = watch_console(page)
        await page.goto(hub.url + "login")
        await page.get_by_label("Username").fill("Guest7")
        await page.get_by_label("Password").fill("not-the-password")
        await page.screenshot(path=str(shots / "1-login.png"))
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_role("alert").wait_for()
        assert await page.get_by_role("alert").inner_text() == WRONG
        await page.screenshot(path=str(shots / "2-wrong-password.png"))
        assert await page.get_by_label("Username").input_value() == "Guest7"
        await page.get_by_label("Password").fill(USER_PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(re.compile(r".*/hub/home$"))
        await page.get_by_text("guest7").first.wait_for()
        await page.screenshot(path=str(shots / "3-home.png"))
        assert problems == []
    assert await user_model(hub, "guest7") is not None
