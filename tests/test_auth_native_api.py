"""`/hub/api/signups` and `/hub/api/users/{name}/totp`, on SQLite and PostgreSQL: listing
(bare and paginated), approving, rejecting, who may, and bad input that changes nothing.
Also the one-use rule of TOTP time steps on each database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth import signups, totp
from hub.db.models import AuditEvent, SignupRequest, User
from hub.secrets_hash import hash_password
from tests.conftest import (
    LogCapture,
    RunningHub,
    assert_bad_inputs_change_nothing,
    expect_error,
)

PASSWORD = "correct horse battery staple"
PAGINATION = "application/jupyterhub-pagination+json"


async def request(hub: RunningHub, name: str, **extra: str) -> str:
    hashed = hash_password(PASSWORD)
    new = signups.NewAccount(name, hashed, address="198.51.100.9", **extra)
    await hub.db.run(signups.request_account, new, 1000)
    return hashed


async def waiting(hub: RunningHub) -> list[tuple[str, str]]:
    def read(session: Session) -> list[tuple[str, str]]:
        rows = session.execute(
            select(SignupRequest.name, SignupRequest.password_hash).order_by(SignupRequest.id)
        )
        return [(n, h) for n, h in rows]

    return await hub.db.run(read)


async def test_list_paginate_approve_reject(hub: RunningHub, hub_logs: LogCapture) -> None:
    r = await hub.api("GET", "/signups")
    assert (r.status, r.json()) == (200, [])
    hashed = await request(hub, "zed", full_name="Zed Zhang", email="zed@example.org")
    for name in ("yan", "xia", "wu"):
        await request(hub, name)
    r = await hub.api("GET", "/signups")
    assert [s["name"] for s in r.json()] == ["zed", "yan", "xia", "wu"]
    first = r.json()[0]
    assert first["full_name"] == "Zed Zhang"
    assert first["email"] == "zed@example.org"
    assert first["address"] == "198.51.100.9"
    assert first["created"].endswith("Z")
    assert "password_hash" not in first
    assert hashed not in r.body.decode()

    r = await hub.api("GET", "/signups?limit=2", headers={"Accept": PAGINATION})
    page = r.json()
    assert [s["name"] for s in page["items"]] == ["zed", "yan"]
    assert page["_pagination"]["total"] == 4
    assert page["_pagination"]["next"]["offset"] == 2
    r = await hub.api("GET", "/signups?offset=2&limit=2", headers={"Accept": PAGINATION})
    assert [s["name"] for s in r.json()["items"]] == ["xia", "wu"]
    assert r.json()["_pagination"]["next"] is None

    r = await hub.api("POST", "/signups/zed")
    assert r.status == 201
    model = r.json()
    assert (model["name"], model["admin"]) == ("zed", False)

    def user(session: Session) -> tuple[str | None, str | None, str, str]:
        row = session.execute(
            select(User.password_hash, User.auth_provider, User.full_name, User.email).where(
                User.name == "zed"
            )
        ).one()
        return row[0], row[1], row[2], row[3]

    assert await hub.db.run(user) == (hashed, "native", "Zed Zhang", "zed@example.org")
    r = await hub.api("DELETE", "/signups/yan")
    assert r.status == 204
    assert [n for n, _ in await waiting(hub)] == ["xia", "wu"]
    assert (await hub.api("GET", "/users/yan")).status == 404

    def events(session: Session) -> list[tuple[str, str, str]]:
        query = select(AuditEvent.actor, AuditEvent.action, AuditEvent.target).where(
            AuditEvent.action.like("signup.%")
        )
        return [(a, b, c) for a, b, c in session.execute(query.order_by(AuditEvent.id))]

    assert (await hub.db.run(events))[-2:] == [
        ("admin", "signup.approve", "zed"),
        ("admin", "signup.reject", "yan"),
    ]
    hub_logs.assert_no_secrets(hashed, hub.admin_token)


async def test_bad_input_changes_nothing(hub: RunningHub, hub_logs: LogCapture) -> None:
    await request(hub, "zed")
    await request(hub, "ann")
    await hub.add_user("ann")  # a user took the name after the request was made
    before = await waiting(hub)
    await assert_bad_inputs_change_nothing(
        hub,
        [
            ("POST", "/signups/nobody", None, 404, "No sign-up request for nobody is waiting"),
            ("DELETE", "/signups/nobody", None, 404, "No sign-up request for nobody"),
            ("POST", "/signups/ann", None, 409, "A user named ann already exists"),
            ("POST", "/signups/zed", {"admin": True}, 400, "unknown field(s): admin"),
            ("DELETE", "/signups/zed", {"why": "spam"}, 400, "unknown field(s): why"),
            ("POST", "/signups/zed", b"{not json", 400, "not valid JSON"),
            ("POST", "/signups/zed", b"[]", 400, "must be a JSON object"),
            ("GET", "/signups?offset=-1", None, 400, "offset must not be negative"),
            ("GET", "/signups?limit=many", None, 400, "limit must be an integer"),
            ("POST", "/signups/%00", None, 400, "control characters"),
            ("DELETE", "/users/nobody/totp", None, 404, "No such user: nobody"),
            ("DELETE", "/users/zed/totp", None, 404, "No such user: zed"),
            ("DELETE", "/users/ann/totp", None, 400, "nothing to reset"),
        ],
    )
    assert await waiting(hub) == before
    assert "Traceback" not in hub_logs.text()


async def test_who_may_decide(hub: RunningHub) -> None:
    await request(hub, "zed")
    await hub.add_user("bo")
    plain = await hub.token_for("bo")
    # admin:users for some users only is not enough: a sign-up makes a new account
    narrow = await hub.token_for("admin", scopes=["admin:users!user=bo", "list:users"])
    for token in (plain, narrow):
        for method, path in (
            ("GET", "/signups"),
            ("POST", "/signups/zed"),
            ("DELETE", "/signups/zed"),
        ):
            r = await hub.api(method, path, token=token)
            assert r.status == 403, (method, path)
            assert r.json()["status"] == 403
    expect_error(await hub.api("GET", "/signups", token=None), 403)
    assert [n for n, _ in await waiting(hub)] == ["zed"]
    # resetting two-step login follows admin:users for that user
    await hub.db.run(totp.enable, "bo", b"encrypted", 1)
    expect_error(await hub.api("DELETE", "/users/bo/totp", token=plain), 403)
    assert (await hub.api("DELETE", "/users/bo/totp", token=narrow)).status == 204


async def test_a_time_step_is_used_once(hub: RunningHub) -> None:
    await hub.add_user("ann")
    await hub.db.run(totp.enable, "ann", b"encrypted", 100)
    results: list[Any] = []
    for step in (100, 99, 101, 101, 102):
        results.append(await hub.db.run(totp.use_step, "ann", step))
    assert results == [False, False, True, False, True]
    assert not await hub.db.run(totp.use_step, "nobody", 500)


async def test_admin_sets_a_password(hub: RunningHub, hub_logs: LogCapture) -> None:
    await hub.add_user("ann")  # made without a password: she cannot log in yet
    await hub.add_user("bo")
    await hub.add_user("root", admin=True)
    narrow = await hub.token_for("admin", scopes=["admin:users!user=ann"])

    def account(session: Session) -> tuple[str | None, str]:
        row = session.execute(
            select(User.password_hash, User.cookie_id).where(User.name == "ann")
        ).one()
        return row[0], row[1]

    def from_github(session: Session) -> None:
        bo = session.scalar(select(User).where(User.name == "bo"))
        assert bo is not None
        bo.auth_provider = "github"

    await hub.db.run(from_github)
    before = await hub.db.run(account)
    await assert_bad_inputs_change_nothing(
        hub,
        [
            ("PUT", "/users/ann/password", {"password": "short"}, 400, "too short"),
            ("PUT", "/users/ann/password", {"password": "password1234"}, 400, "most common"),
            ("PUT", "/users/ann/password", {"password": "ann-at-the-lab"}, 400, "username"),
            ("PUT", "/users/ann/password", {"password": 12345678901}, 400, '{"password": "..."}'),
            ("PUT", "/users/ann/password", {"pw": PASSWORD}, 400, "unknown field(s): pw"),
            ("PUT", "/users/ann/password", None, 400, "must be JSON"),
            ("PUT", "/users/nobody/password", {"password": PASSWORD}, 404, "No such user"),
            ("PUT", "/users/bo/password", {"password": PASSWORD}, 400, "logs in with github"),
        ],
    )
    r = await hub.api("PUT", "/users/root/password", {"password": PASSWORD}, token=narrow)
    expect_error(r, 404)  # outside the token's reach
    assert await hub.db.run(account) == before

    r = await hub.api("PUT", "/users/ann/password", {"password": PASSWORD}, token=narrow)
    assert r.status == 204, r.body
    hashed, cookie_id = await hub.db.run(account)
    assert hashed is not None
    assert hashed.startswith("$argon2id$")
    assert cookie_id != before[1]  # her logins ended
    r = await hub.api(
        "POST", "/users/ann/tokens", {"auth": {"username": "ann", "password": PASSWORD}}, token=None
    )
    assert r.status == 201  # she can use it
    hub_logs.assert_no_secrets(PASSWORD, "password1234")
