"""API tokens: create, list, read, revoke, expiry, password-authenticated requests.

A token is shown once, in the 201 response that creates it; it can never hold
more than its owner (and the requester) holds; revoked and expired tokens stop
working at once; credentials never appear in the log.
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from hub.db.models import APIToken
from hub.timeutil import utcnow
from tests.conftest import (
    HubFactory,
    LogCapture,
    RunningHub,
    api_state,
    assert_bad_inputs_change_nothing,
    expect_error,
)

TOKEN_KEYS = {
    "user",
    "id",
    "kind",
    "roles",
    "scopes",
    "created",
    "last_activity",
    "expires_at",
    "note",
    "session_id",
    "oauth_client",
}
PASSWORD = "correct horse battery staple"


def _parse(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.removesuffix("Z"))


async def test_create_list_read_revoke(hub: RunningHub, hub_logs: LogCapture) -> None:
    await hub.add_user("ann")
    ann = await hub.token_for("ann")

    body = {"note": "for my script", "expires_in": 3600, "scopes": ["read:users!user=ann"]}
    r = await hub.api("POST", "/users/ann/tokens", body, token=ann)
    assert r.status == 201
    model = r.json()
    assert set(model) == TOKEN_KEYS | {"token"}
    assert model["user"] == "ann"
    assert model["kind"] == "api_token"
    assert model["note"] == "for my script"
    assert model["scopes"] == ["read:users!user=ann"]
    expires = _parse(model["expires_at"]) - utcnow()
    assert datetime.timedelta(minutes=59) < expires <= datetime.timedelta(hours=1)
    new = model["token"]

    # the new token works, within its scopes only
    assert (await hub.api("GET", "/users/ann", token=new)).status == 200
    expect_error(await hub.api("GET", "/users/ann/tokens", token=new), 403, "read:tokens")

    listed = (await hub.api("GET", "/users/ann/tokens", token=ann)).json()
    assert set(listed) == {"api_tokens"}
    assert model["id"] in [t["id"] for t in listed["api_tokens"]]
    # shown once: never again in a listing or a read
    assert all("token" not in t for t in listed["api_tokens"])
    one = (await hub.api("GET", f"/users/ann/tokens/{model['id']}", token=ann)).json()
    assert set(one) == TOKEN_KEYS
    assert all(one[k] == model[k] for k in TOKEN_KEYS - {"last_activity"})

    # the default note says who asked
    by_admin = (await hub.api("POST", "/users/ann/tokens", {}, token=hub.admin_token)).json()
    assert by_admin["note"] == "Requested via api by user admin"
    assert by_admin["expires_at"] is None

    r = await hub.api("DELETE", f"/users/ann/tokens/{model['id']}", token=ann)
    assert r.status == 204
    # revoked: rejected on the very next request
    expect_error(await hub.api("GET", "/user", token=new), 403, "credentials")
    expect_error(await hub.api("GET", f"/users/ann/tokens/{model['id']}", token=ann), 404)
    expect_error(await hub.api("DELETE", f"/users/ann/tokens/{model['id']}", token=ann), 404)

    # a token may revoke itself
    me = (await hub.api("GET", "/user", token=ann)).json()
    assert (await hub.api("DELETE", f"/users/ann/tokens/{me['token_id']}", token=ann)).status == 204
    expect_error(await hub.api("GET", "/user", token=ann), 403)

    hub_logs.assert_no_secrets(ann, new, hub.admin_token, by_admin["token"])


async def test_expired_token_is_rejected(hub: RunningHub) -> None:
    await hub.add_user("ann")
    r = await hub.api("POST", "/users/ann/tokens", {"expires_in": 3600})
    model = r.json()
    assert (await hub.api("GET", "/user", token=model["token"])).status == 200

    def expire(session: Session, token_id: int) -> None:
        past = utcnow() - datetime.timedelta(seconds=1)
        session.execute(update(APIToken).where(APIToken.id == token_id).values(expires_at=past))

    await hub.db.run(expire, int(model["id"][1:]))
    # changed directly in the database: the hub sees it once its auth cache lets go
    hub.state.requester_cache.invalidate()
    expect_error(await hub.api("GET", "/user", token=model["token"]), 403, "credentials")
    listed = (await hub.api("GET", "/users/ann/tokens")).json()["api_tokens"]
    assert model["id"] not in [t["id"] for t in listed]


async def test_token_by_password(hub_factory: HubFactory, hub_logs: LogCapture) -> None:
    hub = await hub_factory()
    await hub.add_user("pat", password=PASSWORD)
    await hub.add_user("bob")
    auth = {"username": "pat", "password": PASSWORD}

    r = await hub.api("POST", "/users/pat/tokens", {"auth": auth, "note": "cli"}, token=None)
    assert r.status == 201
    token = r.json()["token"]
    me = (await hub.api("GET", "/user", token=token)).json()
    assert me["name"] == "pat"

    before = await api_state(hub)
    wrong = {"username": "pat", "password": "not the password"}
    for path, body, status in [
        ("/users/pat/tokens", {"auth": wrong}, 403),
        ("/users/pat/tokens", {"auth": {**auth, "password": PASSWORD.upper()}}, 403),
        ("/users/bob/tokens", {"auth": auth}, 403),  # pat's password is not bob's
        ("/users/bob/tokens", {"auth": {"username": "bob", "password": PASSWORD}}, 403),
        ("/users/nobody/tokens", {"auth": {"username": "nobody", "password": "x"}}, 403),
        ("/users/pat/tokens", {}, 403),
        ("/users/pat/tokens", {"auth": "pat:" + PASSWORD}, 400),
        ("/users/pat/tokens", {"auth": {"username": "pat"}}, 400),
        ("/users/pat/tokens", {"auth": {"username": "pat", "password": 5}}, 400),
    ]:
        expect_error(await hub.api("POST", path, body, token=None), status)
    assert await api_state(hub) == before

    closed = await hub_factory(allow_password_token_requests=False)
    expect_error(await closed.api("POST", "/users/pat/tokens", {"auth": auth}, token=None), 403)
    hub_logs.assert_no_secrets(PASSWORD, PASSWORD.upper(), "not the password", token)


async def test_no_escalation(hub: RunningHub) -> None:
    await hub.add_user("ann")
    await hub.add_user("bob")
    ann = await hub.token_for("ann")
    narrow = await hub.token_for("ann", scopes=["tokens!user=ann"])
    before = await api_state(hub)

    async def ask(owner: str, scopes: list[str], token: str) -> Any:
        return await hub.api("POST", f"/users/{owner}/tokens", {"scopes": scopes}, token=token)

    # scopes the owner lacks
    expect_error(await ask("ann", ["admin:users"], ann), 403, "admin:users")
    expect_error(await ask("ann", ["read:users!user=bob"], ann), 403)
    expect_error(await ask("ann", ["read:hub"], ann), 403)
    # an admin cannot hand ann a token beyond ann's own scopes either
    expect_error(await ask("ann", ["admin:users"], hub.admin_token), 403)
    # a narrow token cannot mint a broader one
    expect_error(await ask("ann", ["servers!user=ann"], narrow), 403)
    expect_error(await ask("ann", [], narrow), 403)
    # ann cannot make tokens for bob, nor see his
    expect_error(await ask("bob", ["read:users!user=bob"], ann), 403)
    expect_error(await hub.api("GET", "/users/bob/tokens", token=ann), 404)
    assert await api_state(hub) == before

    assert (await ask("ann", ["read:users!user=ann"], ann)).status == 201
    assert (await ask("ann", ["read:tokens!user=ann"], narrow)).status == 201
    assert (await ask("ann", ["access:servers!server=ann/"], ann)).status == 201


def _token_bad_input(ann_id: str, bob_id: str) -> list[tuple[str, str, Any, int, str]]:
    return [
        ("POST", "/users/ann/tokens", b"{", 400, "JSON"),
        ("POST", "/users/ann/tokens", [], 400, "object"),
        ("POST", "/users/ann/tokens", "x", 400, "object"),
        ("POST", "/users/ann/tokens", {"expires_in": "60"}, 400, "expires_in"),
        ("POST", "/users/ann/tokens", {"expires_in": -5}, 400, "expires_in"),
        ("POST", "/users/ann/tokens", {"expires_in": 0}, 400, "expires_in"),
        ("POST", "/users/ann/tokens", {"expires_in": 1.5}, 400, "expires_in"),
        ("POST", "/users/ann/tokens", {"expires_in": True}, 400, "expires_in"),
        ("POST", "/users/ann/tokens", {"expires_in": 10**12}, 400, "expires_in"),
        ("POST", "/users/ann/tokens", {"scopes": "read:users"}, 400, "list of strings"),
        ("POST", "/users/ann/tokens", {"scopes": [5]}, 400, "list of strings"),
        ("POST", "/users/ann/tokens", {"scopes": ["nonsense"]}, 400, "unknown scope"),
        ("POST", "/users/ann/tokens", {"scopes": [""]}, 400, "scope"),
        ("POST", "/users/ann/tokens", {"scopes": ["read:users!nope=x"]}, 400, "filter"),
        ("POST", "/users/ann/tokens", {"scopes": ["read:users!user="]}, 400, "filter"),
        ("POST", "/users/ann/tokens", {"scopes": ["self!user=ann"]}, 400, "cannot be filtered"),
        ("POST", "/users/ann/tokens", {"scopes": ["inherit", "read:users"]}, 400, "inherit"),
        ("POST", "/users/ann/tokens", {"roles": ["nosuch"]}, 400, "unknown role"),
        ("POST", "/users/ann/tokens", {"roles": "token"}, 400, "list of strings"),
        ("POST", "/users/ann/tokens", {"note": 5}, 400, "note"),
        ("POST", "/users/ann/tokens", {"note": []}, 400, "note"),
        ("POST", "/users/ann/tokens", {"note": "x" * 1001}, 400, "note"),
        ("POST", "/users/ann/tokens", {"note": "a\u0000b"}, 400, "NUL"),
        ("POST", "/users/ann/tokens", {"color": "red"}, 400, "unknown field"),
        ("POST", "/users/nobody/tokens", {}, 403, ""),
        ("GET", "/users/nobody/tokens", None, 404, "No such user"),
        ("GET", "/users/ann/tokens/abc", None, 404, "No such token"),
        ("GET", "/users/ann/tokens/a", None, 404, "No such token"),
        ("GET", "/users/ann/tokens/o1", None, 404, "No such token"),
        ("GET", "/users/ann/tokens/a-1", None, 404, "No such token"),
        ("GET", "/users/ann/tokens/a999999", None, 404, "No such token"),
        ("GET", "/users/ann/tokens/a99999999999999999", None, 404, "No such token"),
        ("GET", "/users/ann/tokens/a%C2%B2", None, 404, "No such token"),
        ("GET", "/users/ann/tokens/a" + "9" * 5000, None, 404, "No such token"),
        ("GET", f"/users/ann/tokens/{bob_id}", None, 404, "No such token"),
        ("DELETE", f"/users/ann/tokens/{bob_id}", None, 404, "No such token"),
        ("DELETE", "/users/ann/tokens/abc", None, 404, "No such token"),
        ("DELETE", f"/users/nobody/tokens/{ann_id}", None, 404, "No such user"),
        ("PATCH", f"/users/ann/tokens/{ann_id}", {"note": "x"}, 405, ""),
    ]


async def test_bad_input_changes_nothing(hub: RunningHub, hub_logs: LogCapture) -> None:
    await hub.add_user("ann")
    await hub.add_user("bob")
    ann_model = (await hub.api("POST", "/users/ann/tokens", {})).json()
    bob_model = (await hub.api("POST", "/users/bob/tokens", {})).json()
    await assert_bad_inputs_change_nothing(
        hub, list(_token_bad_input(ann_model["id"], bob_model["id"]))
    )
    hub_logs.assert_no_secrets(hub.admin_token, ann_model["token"], bob_model["token"])


GARBAGE_AUTH = [
    {"Authorization": "token"},
    {"Authorization": "bearer   "},
    {"Authorization": "Basic YWRtaW46YWRtaW4="},
    {"Authorization": "token " + "x" * 10_000},
    {"Authorization": "token t\u00f6k\u00e9n"},
    {"Authorization": "token <script>"},
    {"Authorization": "token a b c"},
    {"Authorization": "\u00ff" * 50},
    {"Cookie": "atrium-hub-token=forged"},
]


async def test_garbage_credentials(hub: RunningHub) -> None:
    for headers in GARBAGE_AUTH:
        for method, path in [("GET", "/user"), ("GET", "/users"), ("POST", "/users/x/tokens")]:
            body = {} if method == "POST" else None
            r = await hub.api(method, path, body, token=None, headers=headers)
            expect_error(r, 403, "credentials")
    # the admin's real token, mangled, is worth nothing either
    for mangled in (hub.admin_token[:-1], hub.admin_token + "0", hub.admin_token.upper()):
        expect_error(await hub.api("GET", "/users", token=mangled), 403, "credentials")


async def test_token_in_query_and_bearer(hub: RunningHub, hub_logs: LogCapture) -> None:
    r = await hub.api("GET", f"/user?token={hub.admin_token}", token=None)
    assert r.status == 200
    assert r.json()["name"] == "admin"
    r = await hub.api(
        "GET", "/user", token=None, headers={"Authorization": f"Bearer {hub.admin_token}"}
    )
    assert r.json()["name"] == "admin"
    expect_error(await hub.api("GET", "/user?token=nope", token=None), 403)
    hub_logs.assert_no_secrets(hub.admin_token)
