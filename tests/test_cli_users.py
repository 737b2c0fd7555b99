"""`hub-admin user rename|block|unblock` and what `user show` tells, in both modes.

Through a running hub (`rest`) and on the database (`offline`), on SQLite and
PostgreSQL; state is read back from the database. Blocking through the hub
also stops servers (tests/test_api_block.py covers the hub's side in depth).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.engine import Database
from hub.db.models import APIToken, AuditEvent, Server, User
from hub.timeutil import utcnow
from tests import test_cli
from tests.conftest import HubFactory
from tests.spawner import pid_alive
from tests.test_cli import Target, clean_env, run_cli

# the CLI's targets (a hub, or only its database), as in tests/test_cli.py
target = test_cli.target


async def user_row(t: Target, name: str) -> tuple[str, bool, str] | None:
    """(name, blocked, cookie_id) of a user, read from the database."""

    def read(session: Session) -> tuple[str, bool, str] | None:
        row = session.execute(
            select(User.name, User.blocked, User.cookie_id).where(User.name == name)
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    return await t.db.run(read)


async def actions(t: Target, target_name: str) -> list[str]:
    def read(session: Session) -> list[str]:
        query = select(AuditEvent.action).where(AuditEvent.target == target_name)
        return list(session.scalars(query.order_by(AuditEvent.id)))

    return await t.db.run(read)


async def test_rename(target: Target) -> None:
    assert (await target.run("user", "add", "ann", "bob")).code == 0
    token = (await target.run("token", "create", "ann")).out.strip()
    r = await target.run("user", "rename", "ann", "Anna")
    assert r.code == 0, r.err
    assert r.out.strip() == "Renamed ann to anna."
    users = await target.users()
    assert "anna" in users
    assert "ann" not in users
    who = await target.whoami(token)
    assert who is not None
    assert who[0] == "anna"  # her token followed her

    r = await target.run("--json", "user", "rename", "anna", "ann")
    assert r.code == 0, r.err
    assert r.json()["name"] == "ann"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["user", "rename", "nobody", "x"], 1, "No such user: nobody"),
        (["user", "rename", "ann", "bob"], 1, "User bob already exists"),
        (["user", "rename", "ann", "a/b"], 1, "invalid username 'a/b': character '/'"),
        (["user", "rename", "ann", "x" * 200], 1, "username is too long (200 characters"),
        (["user", "rename", "ann"], 2, "the following arguments are required: NEW"),
        (["user", "rename", "ann", " "], 2, "argument NEW: must not be empty"),
        (["user", "block"], 2, "the following arguments are required: NAME"),
        (["user", "block", "nobody"], 1, "No such user: nobody"),
        (["user", "unblock", "nobody"], 1, "No such user: nobody"),
        (["user", "block", "ann", "--off"], 2, "unrecognized arguments: --off"),
    ],
)
async def test_rename_and_block_bad_input(
    target: Target, argv: list[str], code: int, message: str
) -> None:
    assert (await target.run("user", "add", "ann", "bob")).code == 0
    before = await target.users()
    rows = [await user_row(target, n) for n in before]
    r = await target.run(*argv)
    assert r.code == code, r.err
    assert message in r.error
    assert len(r.error) < 300
    if target.mode == "rest" and code == 1:
        assert "(HTTP 4" in r.error
    assert await target.users() == before
    assert [await user_row(target, n) for n in before] == rows


async def test_rename_with_a_server_running_is_refused(target: Target) -> None:
    assert (await target.run("user", "add", "ann")).code == 0

    def start(session: Session) -> None:
        user = session.scalar(select(User).where(User.name == "ann"))
        assert user is not None
        session.add(Server(user_id=user.id, name="", started=utcnow(), url="http://127.0.0.1:9"))

    await target.db.run(start)
    r = await target.run("user", "rename", "ann", "anna")
    assert r.code == 1
    assert "ann has a server running or starting; stop it before renaming" in r.error
    if target.mode == "rest":
        assert r.error.endswith("(HTTP 409)")
    assert "ann" in await target.users()


async def test_block_and_unblock(target: Target) -> None:
    assert (await target.run("user", "add", "ann")).code == 0
    token = (await target.run("token", "create", "ann", "--note", "script")).out.strip()

    def login_token(session: Session) -> None:
        user = session.scalar(select(User).where(User.name == "ann"))
        assert user is not None
        session.add(
            APIToken(user_id=user.id, prefix="x", hashed="x", session_id="s1", note="login")
        )

    await target.db.run(login_token)
    before = await user_row(target, "ann")
    assert before is not None
    assert before[1] is False

    r = await target.run("user", "block", "ann")
    assert r.code == 0, r.err
    assert r.out.strip() == "Blocked ann."
    after = await user_row(target, "ann")
    assert after is not None
    assert after[1] is True
    assert after[2] != before[2]  # every hub cookie of hers stopped working
    assert await target.whoami(token) is None
    # the login session's token is gone, the script's kept
    assert len(await target.token_ids("ann")) == 1
    r = await target.run("user", "show", "ann")
    assert "blocked:" in r.out
    assert [line.split()[1] for line in r.out.splitlines() if line.startswith("blocked:")] == [
        "yes"
    ]

    r = await target.run("--json", "user", "unblock", "ann")
    assert r.code == 0, r.err
    assert r.json()["blocked"] is False
    assert await target.whoami(token) is not None
    assert (await actions(target, "ann"))[-2:] == ["user.block", "user.unblock"]


async def test_offline_block_says_servers_still_run(db_url: str) -> None:
    offline = Target("offline", Database(db_url), clean_env(), args=["--db", db_url])
    try:
        assert (await offline.run("user", "add", "ann")).code == 0

        def start(session: Session) -> None:
            user = session.scalar(select(User).where(User.name == "ann"))
            assert user is not None
            server = Server(user_id=user.id, name="", started=utcnow(), url="http://127.0.0.1:9")
            session.add(server)

        await offline.db.run(start)
        r = await offline.run("user", "block", "ann")
        assert r.code == 0, r.err
        assert r.out.strip() == "Blocked ann."
        assert "only the hub can stop them; run `hub-admin server stop --user ann`" in r.err
        row = await user_row(offline, "ann")
        assert row is not None
        assert row[1] is True
    finally:
        offline.db.close()


async def test_block_stops_a_real_server(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class="tests.spawner.ProcessSpawner")
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    pid = (await hub.api("GET", "/users/ann")).json()["servers"][""]["state"]["pid"]
    env = clean_env(ATRIUM_URL=hub.url, ATRIUM_TOKEN=hub.admin_token)
    r = await run_cli("user", "block", "ann", env=env)
    assert r.code == 0, r.err
    assert r.out.strip() == "Blocked ann."
    assert r.err == ""
    assert not pid_alive(pid)
    r = await run_cli("user", "block", "admin", env=env)
    assert r.code == 1
    assert "You cannot block yourself (HTTP 400)" in r.error


async def test_show_full_name_and_email(target: Target) -> None:
    roster = "username,full_name,email\nann,Ann Lee,ann@example.org\n"

    def seed(session: Session) -> None:
        from hub.ops import roster as roster_ops
        from hub.ops.context import HubContext
        from tests.conftest import SYSTEM

        roster_ops.import_roster(session, HubContext(), SYSTEM, roster, apply=True)

    await target.db.run(seed)
    r = await target.run("user", "show", "ann")
    assert r.code == 0, r.err
    fields = dict(line.split(":", 1) for line in r.out.splitlines())
    assert fields["full name"].strip() == "Ann Lee"
    assert fields["email"].strip() == "ann@example.org"
    assert fields["blocked"].strip() == "no"
