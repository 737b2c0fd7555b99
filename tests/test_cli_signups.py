"""`hub-admin signup list|approve|reject`, `hub-admin totp reset` and `hub-admin user
set-password`, through a hub and offline, on SQLite and PostgreSQL; outcomes are read
back from the database."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth import signups, totp
from hub.db.models import AuditEvent, SignupRequest, User
from hub.secrets_hash import hash_password, password_matches
from tests import test_cli
from tests.test_cli import Target

# the CLI's targets (a hub, or only its database), as in tests/test_cli.py
target = test_cli.target

PASSWORD = "correct horse battery staple"


async def request(t: Target, name: str, **extra: str) -> None:
    new = signups.NewAccount(name, hash_password(PASSWORD), address="192.0.2.7", **extra)
    await t.db.run(signups.request_account, new, 100)


async def state(t: Target) -> tuple[list[str], dict[str, str | None]]:
    """Waiting requests, and each user's auth provider."""

    def read(session: Session) -> tuple[list[str], dict[str, str | None]]:
        waiting = list(session.scalars(select(SignupRequest.name).order_by(SignupRequest.name)))
        users = {n: p for n, p in session.execute(select(User.name, User.auth_provider))}
        return waiting, users

    return await t.db.run(read)


async def audit_actions(t: Target, target_name: str) -> list[str]:
    def read(session: Session) -> list[str]:
        query = select(AuditEvent.action).where(AuditEvent.target == target_name)
        return list(session.scalars(query.order_by(AuditEvent.id)))

    return await t.db.run(read)


async def test_list_approve_reject(target: Target) -> None:
    r = await target.run("signup", "list")
    assert r.code == 0, r.err
    assert r.out == ""
    assert r.err.strip() == "No sign-up request is waiting."

    await request(target, "zed", full_name="Zed Zhang", email="zed@example.org")
    await request(target, "yan")
    await request(target, "xia")
    r = await target.run("signups", "list")  # the plural works too
    assert r.code == 0, r.err
    header, *rows = r.out.splitlines()
    assert header.split() == ["NAME", "FULL", "NAME", "EMAIL", "ASKED", "FROM"]
    assert [row.split()[0] for row in rows] == ["zed", "yan", "xia"]  # oldest first
    assert "Zed Zhang" in rows[0]
    assert "zed@example.org" in rows[0]
    assert rows[0].split()[-1] == "192.0.2.7"
    r = await target.run("--json", "signup", "list")
    assert [s["name"] for s in r.json()] == ["zed", "yan", "xia"]
    assert set(r.json()[0]) == {"name", "full_name", "email", "created", "address"}

    r = await target.run("signup", "approve", "zed", "yan")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "Approved zed: the account is ready.",
        "Approved yan: the account is ready.",
    ]
    r = await target.run("signup", "reject", "xia")
    assert r.code == 0, r.err
    assert r.out.strip() == "Rejected xia: the request is deleted."
    waiting, users = await state(target)
    assert waiting == []
    # through the hub, the account belongs to its native authenticator at once; offline
    # (no config read) its first login records it
    provider = "native" if target.mode == "rest" else None
    assert users["zed"] == provider
    assert users["yan"] == provider
    assert "xia" not in users
    assert await audit_actions(target, "zed") == ["signup.request", "signup.approve", "user.create"]
    assert await audit_actions(target, "xia") == ["signup.request", "signup.reject"]


async def test_failures_and_usage(target: Target) -> None:
    await request(target, "zed")
    r = await target.run("signup", "approve", "nobody")
    assert r.code == 1
    assert r.error == "hub-admin: error: No sign-up request for nobody is waiting" + (
        " (HTTP 404)" if target.mode == "rest" else ""
    )
    # several names: each one is tried, the failures are named, the status is 1
    r = await target.run("--json", "signup", "approve", "nobody", "zed")
    assert r.code == 1
    assert "Could not approve nobody: No sign-up request for nobody is waiting" in r.err
    assert r.err.strip().splitlines()[-1] == (
        "hub-admin: error: 1 of 2 could not be decided: nobody"
    )
    assert [(x["name"], x["done"]) for x in r.json()] == [("nobody", False), ("zed", True)]
    assert "Traceback" not in r.err
    waiting, users = await state(target)
    assert waiting == []
    assert "zed" in users

    # a request for a name a user took meanwhile cannot be approved
    await request(target, "ann")
    assert (await target.run("user", "add", "ann")).code == 0
    r = await target.run("signup", "approve", "ann")
    assert r.code == 1
    assert "A user named ann already exists; reject this request instead" in r.error
    assert (await state(target))[0] == ["ann"]

    for argv, message in (
        (["signup"], "required"),
        (["signup", "approve"], "the following arguments are required: NAME"),
        (["signup", "reject", " "], "must not be empty"),
        (["totp"], "required"),
        (["totp", "reset"], "the following arguments are required: NAME"),
    ):
        r = await target.run(*argv)
        assert r.code == 2, argv
        assert message in r.error, (argv, r.error)


async def test_totp_reset(target: Target) -> None:
    assert (await target.run("user", "add", "ann")).code == 0
    r = await target.run("totp", "reset", "ann")
    assert r.code == 1
    assert "ann does not use two-step login: there is nothing to reset" in r.error
    await target.db.run(totp.enable, "ann", b"encrypted secret", 1)
    r = await target.run("totp", "reset", "ann")
    assert r.code == 0, r.err
    assert r.out.strip() == "Two-step login is off for ann; their password alone logs them in."

    def read(session: Session) -> tuple[bytes | None, int | None]:
        row = session.execute(
            select(User.totp_secret, User.totp_last_step).where(User.name == "ann")
        ).one()
        return row[0], row[1]

    assert await target.db.run(read) == (None, None)
    assert (await audit_actions(target, "ann"))[-1] == "user.totp_reset"
    r = await target.run("totp", "reset", "nobody")
    assert r.code == 1
    assert "No such user: nobody" in r.error


async def run_with_input(t: Target, text: str, *argv: str) -> test_cli.Result:
    proc = await asyncio.create_subprocess_exec(
        *test_cli.CLI,
        *t.args,
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=t.env,
    )
    out, err = await asyncio.wait_for(proc.communicate(text.encode()), timeout=120)
    assert proc.returncode is not None
    return test_cli.Result(proc.returncode, out.decode(), err.decode())


async def password_of(t: Target, name: str) -> tuple[str | None, str]:
    def read(session: Session) -> tuple[str | None, str]:
        row = session.execute(
            select(User.password_hash, User.cookie_id).where(User.name == name)
        ).one()
        return row[0], row[1]

    return await t.db.run(read)


async def test_set_password(target: Target) -> None:
    assert (await target.run("user", "add", "ann")).code == 0
    before = await password_of(target, "ann")
    for typed, message in (
        ("short\n", "The password is too short (5 characters): use at least 10."),
        ("password1234\n", "This password is one of the most common ones"),
        ("ann-loves-physics\n", "The password must not contain the username."),
    ):
        r = await run_with_input(target, typed, "user", "set-password", "ann")
        assert r.code == 1, r.err
        assert message in r.error
    r = await run_with_input(target, "\n", "user", "set-password", "ann")
    assert r.code == 2
    assert "no password given" in r.error
    r = await run_with_input(target, PASSWORD + "\n", "user", "set-password", "nobody")
    assert r.code == 1
    assert "No such user: nobody" in r.error
    assert await password_of(target, "ann") == before

    r = await run_with_input(target, PASSWORD + "\n", "user", "set-password", "ann")
    assert r.code == 0, r.err
    assert r.out.strip() == "The password of ann is set; their logins ended."
    hashed, cookie_id = await password_of(target, "ann")
    assert hashed is not None
    assert password_matches(PASSWORD, hashed)
    assert cookie_id != before[1]
    assert PASSWORD not in r.out + r.err

    r = await target.run("--json", "user", "set-password", "ann", "--generate")
    assert r.code == 0, r.err
    made = r.json()["password"]
    assert len(made) >= 10
    assert password_matches(made, (await password_of(target, "ann"))[0])
    assert (await audit_actions(target, "ann"))[-2:] == ["user.password_set", "user.password_set"]
