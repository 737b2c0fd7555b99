"""Blocking users (`PATCH /hub/api/users/{name}` with `blocked`) and renaming with servers.

Blocking logs the user out everywhere (a browser's hub cookie stops working,
tokens from login sessions are deleted), makes their API tokens useless while
blocked, and stops their servers through the orchestrator with a real process
spawner. Only admins may block, never themselves. A user with a server running
cannot be renamed.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from tornado.httpclient import AsyncHTTPClient

from hub.db.models import APIToken, AuditEvent, Role, User
from tests.conftest import (
    HubFactory,
    RunningHub,
    assert_bad_inputs_change_nothing,
    expect_error,
)
from tests.spawner import pid_alive

SPAWNER = "tests.spawner.ProcessSpawner"
PASSWORD = "a-password-for-tests"


async def login(hub: RunningHub, name: str) -> str:
    """Log in through the login page; returns the Cookie header a browser would send."""
    root = hub.url.removesuffix("hub/")
    client = AsyncHTTPClient()
    page = await client.fetch(root + "hub/login")
    jar: SimpleCookie = SimpleCookie()
    for header in page.headers.get_list("Set-Cookie"):
        jar.load(header)
    match = re.search(r'name="_xsrf" value="([^"]+)"', page.body.decode())
    assert match
    form = {"username": name, "password": PASSWORD, "_xsrf": match.group(1)}
    cookie = "; ".join(f"{k}={m.value}" for k, m in jar.items())
    r = await client.fetch(
        root + "hub/login",
        method="POST",
        body=urlencode(form),
        headers={"Cookie": cookie},
        follow_redirects=False,
        raise_error=False,
    )
    assert r.code == 302, r.body[:300]
    for header in r.headers.get_list("Set-Cookie"):
        jar.load(header)
    return "; ".join(f"{k}={m.value}" for k, m in jar.items())


async def whoami_with_cookie(hub: RunningHub, cookie: str) -> int:
    r = await hub.api("GET", "/user", token=None, headers={"Cookie": cookie})
    return r.status


async def block(hub: RunningHub, name: str, blocked: bool = True, token: Any = None) -> Any:
    extra = {} if token is None else {"token": token}
    return await hub.api("PATCH", f"/users/{name}", {"blocked": blocked}, **extra)


async def audit_actions(hub: RunningHub, target: str) -> list[str]:
    def read(session: Session) -> list[str]:
        rows = session.scalars(
            select(AuditEvent.action).where(AuditEvent.target == target).order_by(AuditEvent.id)
        )
        return list(rows)

    return await hub.db.run(read)


async def test_block_logs_out_and_tokens_stop_working(hub: RunningHub) -> None:
    await hub.add_user("ann", password=PASSWORD)
    cookie = await login(hub, "ann")
    assert await whoami_with_cookie(hub, cookie) == 200
    api_token = await hub.token_for("ann", note="a script")
    session_token = await hub.token_for("ann", note="from a login")

    def mark_session(session: Session) -> None:
        session.execute(
            update(APIToken).where(APIToken.note == "from a login").values(session_id="s1")
        )

    await hub.db.run(mark_session)
    assert (await hub.api("GET", "/user", token=api_token)).status == 200

    r = await block(hub, "ann")
    assert r.status == 200, r.body
    assert r.json()["blocked"] is True
    assert await whoami_with_cookie(hub, cookie) == 403
    expect_error(await hub.api("GET", "/user", token=api_token), 403, "credentials")
    expect_error(await hub.api("GET", "/user", token=session_token), 403, "credentials")
    notes = [t["note"] for t in (await hub.api("GET", "/users/ann/tokens")).json()["api_tokens"]]
    assert notes == ["a script"]  # the login session's token is gone for good
    assert (await audit_actions(hub, "ann"))[-1] == "user.block"

    # blocking again changes nothing and records nothing
    assert (await block(hub, "ann")).status == 200
    assert (await audit_actions(hub, "ann")).count("user.block") == 1

    r = await block(hub, "ann", False)
    assert r.status == 200
    assert r.json()["blocked"] is False
    assert (await audit_actions(hub, "ann"))[-1] == "user.unblock"
    # the script's token works again; the old login does not come back
    assert (await hub.api("GET", "/user", token=api_token)).status == 200
    assert await whoami_with_cookie(hub, cookie) == 403
    assert await whoami_with_cookie(hub, await login(hub, "ann")) == 200


async def test_block_stops_servers_and_prevents_starts(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    ann = await hub.token_for("ann")
    assert (await hub.api("POST", "/users/ann/server", token=ann)).status == 201
    model = (await hub.api("GET", "/users/ann")).json()
    pid = model["servers"][""]["state"]["pid"]
    assert pid_alive(pid)

    r = await block(hub, "ann")
    assert r.status == 200, r.body
    assert r.json()["servers"] == {}
    assert r.json()["server"] is None
    assert not pid_alive(pid)
    expect_error(await hub.api("POST", "/users/ann/server"), 400, "User ann is blocked")
    assert (await hub.api("GET", "/users/ann")).json()["servers"] == {}
    assert await audit_actions(hub, "ann") == ["user.create", "token.create", "server.start",
                                               "user.block", "server.stop"]  # fmt: skip

    assert (await block(hub, "ann", False)).status == 200
    assert (await hub.api("POST", "/users/ann/server")).status == 201


async def test_who_may_block(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        config="c.Hub.load_roles = [{'name': 'manager', 'scopes': ['admin:users']}]\n"
    )
    for name in ("mgr", "pat", "boss"):
        await hub.add_user(name, admin=name == "boss")

    def grant(session: Session) -> None:
        role = session.scalar(select(Role).where(Role.name == "manager"))
        user = session.scalar(select(User).where(User.name == "mgr"))
        assert role is not None
        assert user is not None
        user.roles.append(role)

    await hub.db.run(grant)
    mgr = await hub.token_for("mgr")
    pat = await hub.token_for("pat")
    expect_error(await block(hub, "pat", token=mgr), 403, "Only admins can block")
    expect_error(await block(hub, "boss", token=mgr), 403, "Only admins can modify other admins")
    expect_error(await block(hub, "mgr", token=pat), 403, "requires any of")
    cases: list[tuple[str, str, Any, int, str]] = [
        ("PATCH", "/users/admin", {"blocked": True}, 400, "You cannot block yourself"),
        ("PATCH", "/users/pat", {"blocked": "yes"}, 400, "blocked must be true or false"),
        ("PATCH", "/users/pat", {"blocked": None}, 400, "blocked must be true or false"),
        ("PATCH", "/users/pat", {"blocked": True, "admin": "x"}, 400, "admin must be"),
        ("PATCH", "/users/pat", {"blocked": True, "name": "a/b"}, 400, "invalid username"),
        ("PATCH", "/users/pat", {"blocked": True, "name": "boss"}, 409, "already exists"),
        ("PATCH", "/users/pat", {"block": True}, 400, "allowed: admin, blocked, groups, name"),
        ("PATCH", "/users/nobody", {"blocked": True}, 404, "No such user"),
    ]
    await assert_bad_inputs_change_nothing(hub, cases)
    assert (await hub.api("GET", "/users/pat")).json()["blocked"] is False
    # another admin may block an admin
    assert (await block(hub, "boss")).json()["blocked"] is True


async def test_rename_with_a_running_server_is_refused(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    r = await hub.api("PATCH", "/users/ann", {"name": "anna"})
    expect_error(r, 409, "ann has a server running or starting; stop it before renaming")
    model = (await hub.api("GET", "/users/ann")).json()
    assert model["servers"][""]["ready"] is True
    expect_error(await hub.api("GET", "/users/anna"), 404)

    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    r = await hub.api("PATCH", "/users/ann", {"name": "anna"})
    assert r.status == 200, r.body
    assert r.json()["name"] == "anna"
    assert (await hub.api("POST", "/users/anna/server")).status == 201
    assert (await hub.api("GET", "/users/anna")).json()["server"] == "/user/anna/"
