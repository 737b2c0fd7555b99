"""The PAM authenticator with real Unix accounts (useradd, chpasswd) and the machine's PAM.

Each test makes its `atrtest*` accounts and groups (removed afterwards) and
logs in through the login page's form. The default PAM service is 'login',
whose fail delay makes every failed login take a few seconds, so the tests
keep their failures few. Needs root and useradd: skipped elsewhere, failed
with CI=true.
"""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

import pytest
from traitlets.config import Config

from hub.auth.accept import NOT_ALLOWED
from hub.auth.login import WRONG
from hub.auth.pam import EXPIRED, MUST_CHANGE, PAMAuthenticator
from hub.auth.registry import load_authenticators
from hub.errors import ConfigError
from tests.conftest import HubFactory, LogCapture, RunningHub
from tests.loginform import FormClient
from tests.unixusers import UnixUsers

PASSWORD = "Pam-test-pass-7391"


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


def sh(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)


def set_password(name: str, password: str = PASSWORD) -> None:
    sh("chpasswd", stdin=f"{name}:{password}\n")


def account(users: UnixUsers, *groups: str, password: str = PASSWORD) -> str:
    """A new Unix account with a password; its name."""
    name = users.user(*groups).pw_name
    set_password(name, password)
    return name


def set_primary_group(users: UnixUsers, name: str, group: str) -> None:
    """Make `group` the account's primary group; its own group (which userdel would
    no longer remove) is removed with the test's groups."""
    import grp

    own = grp.getgrgid(pwd.getpwnam(name).pw_gid).gr_name
    sh("usermod", "-g", group, name)
    users.groups.insert(0, own)


async def pam_hub(hub_factory: HubFactory, config: str = "", **settings: object) -> RunningHub:
    return await hub_factory(config="c.Hub.authenticator_class = 'pam'\n" + config, **settings)


async def hub_user(hub: RunningHub, name: str) -> dict[str, object]:
    r = await hub.api("GET", f"/users/{name}")
    assert r.status == 200, r.body
    user: dict[str, object] = r.json()
    return user


async def test_a_system_account_logs_in(unix_users: UnixUsers, hub_factory: HubFactory) -> None:
    name = account(unix_users)
    hub = await pam_hub(hub_factory)
    client = FormClient(hub)
    answer = await client.log_in("pam", name, PASSWORD)
    assert answer.status == 302, answer.error
    assert answer.location.startswith("/hub/")
    assert await client.whoami() == name
    user = await hub_user(hub, name)
    assert user["admin"] is False
    # typed in capitals, the name is the same account (hub names are lower case)
    again = FormClient(hub)
    assert (await again.log_in("pam", name.upper(), PASSWORD)).status == 302
    assert await again.whoami() == name


async def test_wrong_password_and_unknown_account_get_the_same_answer(
    unix_users: UnixUsers, hub_factory: HubFactory, hub_logs: LogCapture
) -> None:
    name = account(unix_users)
    hub = await pam_hub(hub_factory)
    client = FormClient(hub)
    typed = {
        "a wrong password": (name, "Not-the-password-1"),
        "an unknown account": ("atrtestnosuchacct", PASSWORD),
        "a name no account can have": ("ann smith", PASSWORD),
        # a system account (uid < min_uid): its password is never tried
        "root": ("root", PASSWORD),
    }
    for what, (user, password) in typed.items():
        answer = await client.log_in("pam", user, password)
        assert (answer.status, answer.error) == (403, WRONG), what
        assert await client.whoami() is None, what
    # an empty password never gets to PAM (pam_unix's nullok would let a passwordless
    # account in with one)
    answer = await client.log_in("pam", name, "")
    assert (answer.status, answer.error) == (403, WRONG)
    hub_logs.assert_no_secrets(PASSWORD, "Not-the-password-1")


async def test_system_accounts_below_min_uid_are_refused(
    unix_users: UnixUsers, hub_factory: HubFactory
) -> None:
    system = f"atrtestsys{unix_users.group()[-6:]}"
    sh("useradd", "--system", system)
    unix_users.users.append(system)
    set_password(system)
    assert pwd.getpwnam(system).pw_uid < 1000
    hub = await pam_hub(hub_factory)
    answer = await FormClient(hub).log_in("pam", system, PASSWORD)
    assert (answer.status, answer.error) == (403, WRONG)
    hub = await pam_hub(hub_factory, "c.PAMAuthenticator.min_uid = 100\n")
    assert (await FormClient(hub).log_in("pam", system, PASSWORD)).status == 302


async def test_locked_and_expired_accounts_are_refused(
    unix_users: UnixUsers, hub_factory: HubFactory
) -> None:
    locked, expired, old_password, off = (account(unix_users) for _ in range(4))
    sh("usermod", "-L", locked)
    sh("chage", "-E", "0", expired)
    sh("chage", "-d", "0", old_password)
    hub = await pam_hub(hub_factory)
    client = FormClient(hub)
    # a locked password is a wrong one
    answer = await client.log_in("pam", locked, PASSWORD)
    assert (answer.status, answer.error) == (403, WRONG)
    # the right password of an expired account: PAM's account step refuses it
    answer = await client.log_in("pam", expired, PASSWORD)
    assert (answer.status, answer.error) == (403, EXPIRED)
    answer = await client.log_in("pam", old_password, PASSWORD)
    assert (answer.status, answer.error) == (403, MUST_CHANGE)
    assert await client.whoami() is None
    users = {u["name"] for u in (await hub.api("GET", "/users")).json()}
    assert not users & {locked, expired, old_password}
    # without the account step, an expired account's password is enough
    sh("chage", "-E", "0", off)
    hub = await pam_hub(hub_factory, "c.PAMAuthenticator.check_account = False\n")
    assert (await FormClient(hub).log_in("pam", off, PASSWORD)).status == 302


async def test_admins_by_unix_group(unix_users: UnixUsers, hub_factory: HubFactory) -> None:
    admins = unix_users.group()
    primary = account(unix_users)
    set_primary_group(unix_users, primary, admins)
    supplementary = account(unix_users, admins)
    other = account(unix_users)
    named = account(unix_users)
    hub = await pam_hub(
        hub_factory,
        f"c.PAMAuthenticator.admin_groups = [{admins!r}]\n"
        f"c.Authenticator.admin_users = [{named!r}]\n",
    )
    # made an admin in the hub before: admin status follows the Unix groups at login
    await hub.add_user(other, admin=True)
    for name in (primary, supplementary, other, named):
        assert (await FormClient(hub).log_in("pam", name, PASSWORD)).status == 302, name
    admin = {name: (await hub_user(hub, name))["admin"] for name in (primary, supplementary)}
    assert admin == {primary: True, supplementary: True}
    assert (await hub_user(hub, other))["admin"] is False
    assert (await hub_user(hub, named))["admin"] is True  # admin_users, in no admin group
    # removed from the group: no longer an admin at the next login
    sh("gpasswd", "-d", supplementary, admins)
    assert (await FormClient(hub).log_in("pam", supplementary, PASSWORD)).status == 302
    assert (await hub_user(hub, supplementary))["admin"] is False


async def test_allowed_groups(unix_users: UnixUsers, hub_factory: HubFactory) -> None:
    students = unix_users.group()
    member = account(unix_users, students)
    by_primary = account(unix_users)
    set_primary_group(unix_users, by_primary, students)
    listed = account(unix_users)
    outsider = account(unix_users)
    hub = await pam_hub(
        hub_factory,
        f"c.PAMAuthenticator.allowed_groups = [{students!r}]\n"
        f"c.Authenticator.allowed_users = [{listed!r}]\n",
    )
    for name in (member, by_primary, listed):
        client = FormClient(hub)
        assert (await client.log_in("pam", name, PASSWORD)).status == 302, name
        assert await client.whoami() == name
    client = FormClient(hub)
    answer = await client.log_in("pam", outsider, PASSWORD)
    assert (answer.status, answer.error) == (403, NOT_ALLOWED)
    assert await client.whoami() is None
    assert (await hub.api("GET", f"/users/{outsider}")).status == 404


async def test_with_no_allow_list_any_account_logs_in_but_blocked_users(
    unix_users: UnixUsers, hub_factory: HubFactory
) -> None:
    anyone, blocked = account(unix_users), account(unix_users)
    hub = await pam_hub(hub_factory, f"c.Authenticator.blocked_users = [{blocked!r}]\n")
    assert (await FormClient(hub).log_in("pam", anyone, PASSWORD)).status == 302
    client = FormClient(hub)
    answer = await client.log_in("pam", blocked, PASSWORD)
    assert (answer.status, answer.error) == (403, NOT_ALLOWED)
    assert await client.whoami() is None


async def test_manage_groups_follows_the_unix_groups(
    unix_users: UnixUsers, hub_factory: HubFactory
) -> None:
    physics, chemistry = unix_users.group(), unix_users.group()
    name = account(unix_users, physics, chemistry)
    primary = pwd.getpwnam(name).pw_gid
    import grp

    own = grp.getgrgid(primary).gr_name  # useradd made the account's own group
    hub = await pam_hub(hub_factory, "c.PAMAuthenticator.manage_groups = True\n")
    assert (await FormClient(hub).log_in("pam", name, PASSWORD)).status == 302
    assert sorted((await hub_user(hub, name))["groups"]) == sorted(  # type: ignore[type-var]
        [own, physics, chemistry]
    )
    sh("gpasswd", "-d", name, chemistry)
    assert (await FormClient(hub).log_in("pam", name, PASSWORD)).status == 302
    assert sorted((await hub_user(hub, name))["groups"]) == sorted(  # type: ignore[type-var]
        [own, physics]
    )


async def test_failed_pam_logins_are_throttled(
    unix_users: UnixUsers, hub_factory: HubFactory
) -> None:
    name = account(unix_users)
    hub = await pam_hub(hub_factory, login_failures_free=1)
    client = FormClient(hub)
    answers = []
    # the wait after each failure beyond the free one doubles (1 s, 2 s, 4 s...), so one
    # of the next tries finds the account waiting, however slow this machine is
    for _ in range(6):
        answer = await client.log_in("pam", name, "Not-the-password-1")
        answers.append(answer.status)
        if answer.status == 429:
            break
    assert answers[0] == 403
    assert answers[-1] == 429, answers
    assert int(answer.retry_after) >= 1
    assert "Too many failed logins" in answer.error
    # while it waits, even the right password is not checked
    answer = await client.log_in("pam", name, PASSWORD)
    assert answer.status == 429
    assert await client.whoami() is None


async def test_an_account_named_with_capitals_cannot_log_in(
    unix_users: UnixUsers, hub_factory: HubFactory, hub_logs: LogCapture
) -> None:
    """Hub names are lower case; 'AtrTest...' would be another account than 'atrtest...',
    and the server of hub user 'atrtest...' would not run as it."""
    capitals = "AtrTestCap" + unix_users.group()[-6:]
    sh("useradd", "--badname", capitals)
    unix_users.users.append(capitals)
    set_password(capitals)
    hub = await pam_hub(hub_factory)
    answer = await FormClient(hub).log_in("pam", capitals, PASSWORD)
    assert (answer.status, answer.error) == (403, WRONG)
    assert "capital letters" in hub_logs.text()


async def test_open_sessions_opens_a_pam_session_before_a_start(
    unix_users: UnixUsers, hub_factory: HubFactory
) -> None:
    """The 'login' service's session stack records the login in lastlog (pam_lastlog)."""
    name = account(unix_users)
    before = lastlog(name)
    assert "Never logged in" in before
    hub = await pam_hub(
        hub_factory,
        "c.PAMAuthenticator.open_sessions = True\n",
        spawner_class="tests.spawner.ProcessSpawner",
    )
    assert (await FormClient(hub).log_in("pam", name, PASSWORD)).status == 302
    assert "Never logged in" in lastlog(name)  # logging in opens no session
    assert (await hub.api("POST", f"/users/{name}/server")).status == 201
    assert "Never logged in" not in lastlog(name)
    assert (await hub.api("DELETE", f"/users/{name}/server")).status == 204


def lastlog(name: str) -> str:
    return subprocess.run(
        ["lastlog", "-u", name], capture_output=True, text=True, check=True
    ).stdout


# --- settings --------------------------------------------------------------------------


def load(**settings: object) -> PAMAuthenticator:
    config = Config()
    for key, value in settings.items():
        config.PAMAuthenticator[key] = value
    [auth] = load_authenticators(["pam"], config, "127.0.0.1", b"k" * 32).authenticators
    assert isinstance(auth, PAMAuthenticator)
    return auth


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"service": "atrium-no-such-service"}, "no PAM service 'atrium-no-such-service'"),
        ({"service": "../passwd"}, "service must be the name of a file in /etc/pam.d"),
        ({"encoding": "no-such-encoding"}, "not an encoding"),
        ({"admin_groups": ["atrtestnosuchgroup"]}, "admin_groups: there is no Unix group"),
        ({"allowed_groups": ["atrtestnosuchgroup"]}, "allowed_groups: there is no Unix group"),
        ({"allowed_groups": ["a:b"]}, "not a Unix group name"),
        ({"min_uid": 0}, "min_uid must be at least 1"),
        ({"concurrent_checks": 0}, "concurrent_checks must be at least 1"),
    ],
)
def test_bad_settings_stop_the_start(settings: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(**settings)
    assert fragment in str(raised.value)


def test_every_setting_is_documented() -> None:
    for name, trait in PAMAuthenticator.class_traits(config=True).items():
        assert trait.help, f"{name} has no help"


def test_good_settings_load(unix_users: UnixUsers) -> None:
    group = unix_users.group()
    auth = load(service="login", encoding="latin-1", admin_groups=[group], allowed_groups=[group])
    assert auth.ident == "pam"
    assert auth.admin_groups == [group]


async def test_a_bad_setting_stops_the_hub(hub_factory: HubFactory, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no PAM service"):
        await pam_hub(hub_factory, "c.PAMAuthenticator.service = 'atrium-no-such-service'\n")
