"""The users API: /, /info, /health, /user (whoami), /users, /users/{name}, activity.

Shapes and status codes follow JupyterHub's REST API; bad input of every kind
gets a JSON 4xx and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

import hub as hub_package
from tests.conftest import (
    HubFactory,
    LogCapture,
    RunningHub,
    api_state,
    assert_bad_inputs_change_nothing,
    expect_error,
)

PAGINATED = {"Accept": "application/jupyterhub-pagination+json"}


def names(users: list[dict[str, Any]]) -> list[str]:
    return [u["name"] for u in users]


async def test_root_info_and_health(hub: RunningHub) -> None:
    r = await hub.api("GET", "/", token=None)
    assert r.status == 200
    assert r.json() == {"version": hub_package.__version__}

    info = await hub.api("GET", "/info")
    assert info.status == 200
    assert info.json()["version"] == hub_package.__version__
    assert info.json()["spawner"] == {"class": "spawners.local.LocalProcessSpawner"}  # the default
    assert {"python", "sys_executable", "spawner", "authenticator"} <= set(info.json())

    await hub.add_user("ann")
    ann = await hub.token_for("ann")
    expect_error(await hub.api("GET", "/info", token=ann), 403, "read:hub")
    expect_error(await hub.api("GET", "/info", token=None), 403, "credentials")

    health = await hub.api("GET", "/health", token=None)
    assert health.status == 200
    assert health.json() == {"status": "ok"}


async def test_whoami(hub: RunningHub) -> None:
    me = (await hub.api("GET", "/user")).json()
    assert me["kind"] == "user"
    assert me["name"] == "admin"
    assert me["admin"] is True
    assert re.fullmatch(r"a\d+", me["token_id"])
    assert me["session_id"] is None  # an API token belongs to no login session
    assert {"admin:users", "list:users", "admin:servers", "read:hub"} <= set(me["scopes"])

    await hub.add_user("ann")
    # what a single-user server's token holds (the default 'server' role, bound to ann/)
    server_token = await hub.token_for(
        "ann", scopes=["access:servers!server=ann/", "users:activity!user=ann"]
    )
    me = (await hub.api("GET", "/user", token=server_token)).json()
    assert me["name"] == "ann"
    assert me["admin"] is False
    assert set(me["scopes"]) == {
        "access:servers!server=ann/",
        "users:activity!user=ann",
        "read:users:activity!user=ann",
        # every token may identify its owner
        "read:users:name!user=ann",
        "read:users:groups!user=ann",
    }

    full = (await hub.api("GET", "/user", token=await hub.token_for("ann"))).json()
    assert {"servers!user=ann", "read:users!user=ann", "tokens!user=ann"} <= set(full["scopes"])
    assert not any(s.startswith(("list:users", "admin:")) for s in full["scopes"])

    expect_error(await hub.api("GET", "/user", token=None), 403, "credentials")


async def test_list_filter_and_sort(hub: RunningHub) -> None:
    for name in ("ann", "joanna", "bob", "a_b", "carl"):
        await hub.add_user(name)
    for name, stamp in (("ann", "2024-01-01T00:00:00Z"), ("bob", "2024-03-01T00:00:00Z")):
        r = await hub.api("POST", f"/users/{name}/activity", {"last_activity": stamp})
        assert r.status == 204

    async def listed(query: str) -> list[str]:
        r = await hub.api("GET", "/users" + query)
        assert r.status == 200, r.body
        assert isinstance(r.json(), list)
        return names(r.json())

    by_id = ["admin", "ann", "joanna", "bob", "a_b", "carl"]
    assert await listed("") == by_id
    assert await listed("?sort=id") == by_id
    assert await listed("?sort=-id") == by_id[::-1]
    assert await listed("?sort=name") == sorted(by_id)
    assert await listed("?sort=-name") == sorted(by_id, reverse=True)
    # never-active users sort first ascending and last descending, as in JupyterHub
    assert await listed("?sort=last_activity") == ["admin", "joanna", "a_b", "carl", "ann", "bob"]
    assert await listed("?sort=-last_activity") == ["bob", "ann", "admin", "joanna", "a_b", "carl"]

    assert await listed("?name_filter=an") == ["ann", "joanna"]
    assert await listed("?name_filter=AN") == ["ann", "joanna"]
    # LIKE wildcards are matched literally
    assert await listed("?name_filter=_") == ["a_b"]
    assert await listed("?name_filter=%25") == []

    assert await listed("?offset=2&limit=2") == ["joanna", "bob"]
    assert await listed("?offset=100") == []


async def test_pagination(hub_factory: HubFactory) -> None:
    hub = await hub_factory(api_page_default_limit=2, api_page_max_limit=3)
    for name in ("ann", "bob", "carl", "dave"):
        await hub.add_user(name)

    page = (await hub.api("GET", "/users", headers=PAGINATED)).json()
    assert set(page) == {"items", "_pagination"}
    assert names(page["items"]) == ["admin", "ann"]
    info = page["_pagination"]
    assert {k: info[k] for k in ("offset", "limit", "total")} == {
        "offset": 0,
        "limit": 2,
        "total": 5,
    }
    assert info["next"]["offset"] == 2
    assert info["next"]["limit"] == 2

    # following `next` visits everyone exactly once
    seen = names(page["items"])
    while page["_pagination"]["next"]:
        url = page["_pagination"]["next"]["url"]
        assert url.startswith(hub.url + "api/users?")
        page = (await hub.api("GET", url[len(hub.url + "api") :], headers=PAGINATED)).json()
        seen += names(page["items"])
    assert seen == ["admin", "ann", "bob", "carl", "dave"]

    # a limit above the maximum is clamped; filters keep the total honest
    page = (await hub.api("GET", "/users?limit=100", headers=PAGINATED)).json()
    assert page["_pagination"]["limit"] == 3
    assert len(page["items"]) == 3
    page = (await hub.api("GET", "/users?name_filter=a", headers=PAGINATED)).json()
    assert page["_pagination"]["total"] == 4  # admin, ann, carl, dave
    assert page["_pagination"]["next"] is not None

    # without the media type: a bare list, at most the maximum page
    bare = (await hub.api("GET", "/users")).json()
    assert names(bare) == ["admin", "ann", "bob"]


async def test_create_users(hub: RunningHub) -> None:
    r = await hub.api("POST", "/users", {"usernames": ["ann", "Bob", "carl"]})
    assert r.status == 201
    created = r.json()
    assert names(created) == ["ann", "bob", "carl"]  # names are normalised
    assert all(u["admin"] is False and u["roles"] == ["user"] for u in created)

    # existing names are skipped, the rest created
    r = await hub.api("POST", "/users", {"usernames": ["ann", "dave"], "admin": True})
    assert r.status == 201
    assert [(u["name"], u["admin"]) for u in r.json()] == [("dave", True)]
    assert (await hub.api("GET", "/users/ann")).json()["admin"] is False

    expect_error(await hub.api("POST", "/users", {"usernames": ["ann", "bob"]}), 409, "exist")
    # all or nothing: one bad name creates nobody
    expect_error(await hub.api("POST", "/users", {"usernames": ["erin", "not/ok"]}), 400)
    expect_error(await hub.api("GET", "/users/erin"), 404)

    r = await hub.api("POST", "/users/frank")
    assert r.status == 201
    assert r.json()["name"] == "frank"
    expect_error(await hub.api("POST", "/users/frank"), 409, "already exists")
    r = await hub.api("POST", "/users/gina", {"admin": True})
    assert r.status == 201
    assert r.json()["admin"] is True
    assert "admin" in r.json()["roles"]


async def test_user_model(hub: RunningHub) -> None:
    await hub.add_user("ann")
    model = (await hub.api("GET", "/users/ann")).json()
    assert set(model) == {
        "kind",
        "name",
        "admin",
        "roles",
        "groups",
        "server",
        "pending",
        "created",
        "last_activity",
        "servers",
        "auth_state",
        "user_info",
        "blocked",
    }
    assert model["kind"] == "user"
    assert model["blocked"] is False
    assert model["user_info"] is None
    assert model["server"] is None
    assert model["servers"] == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", model["created"])

    # a user reads their own model, without what only admins see
    own = (await hub.api("GET", "/users/ann", token=await hub.token_for("ann"))).json()
    assert own["name"] == "ann"
    assert "auth_state" not in own


async def test_modify_user(hub: RunningHub) -> None:
    await hub.add_user("ann")
    await hub.add_user("bob")
    ann_token = await hub.token_for("ann")
    for group in ("g1", "g2"):
        assert (await hub.api("POST", f"/groups/{group}")).status == 201

    r = await hub.api("PATCH", "/users/ann", {"groups": ["g1", "g2"]})
    assert r.status == 200
    assert r.json()["groups"] == ["g1", "g2"]
    assert (await hub.api("GET", "/groups/g1")).json()["users"] == ["ann"]
    r = await hub.api("PATCH", "/users/ann", {"groups": ["g2"]})
    assert r.json()["groups"] == ["g2"]
    assert (await hub.api("GET", "/groups/g1")).json()["users"] == []

    r = await hub.api("PATCH", "/users/ann", {"admin": True})
    assert r.json()["admin"] is True
    assert "admin" in r.json()["roles"]

    r = await hub.api("PATCH", "/users/ann", {"name": "anna"})
    assert r.status == 200
    assert r.json()["name"] == "anna"
    expect_error(await hub.api("GET", "/users/ann"), 404)
    # her token follows her to the new name, and her groups and admin flag stay
    me = (await hub.api("GET", "/user", token=ann_token)).json()
    assert (me["name"], me["admin"], me["groups"]) == ("anna", True, ["g2"])

    expect_error(await hub.api("PATCH", "/users/anna", {"name": "bob"}), 409, "already exists")
    expect_error(await hub.api("PATCH", "/users/nobody", {"admin": True}), 404)
    expect_error(await hub.api("PATCH", "/users/admin", {"admin": False}), 400, "own admin")


async def test_delete_user(hub: RunningHub) -> None:
    await hub.add_user("bob")
    bob_token = await hub.token_for("bob")
    assert (await hub.api("POST", "/groups/g", {"users": ["bob"]})).status == 201

    r = await hub.api("DELETE", "/users/bob")
    assert r.status == 204
    assert r.body == b""
    expect_error(await hub.api("GET", "/users/bob"), 404)
    expect_error(await hub.api("DELETE", "/users/bob"), 404)
    # gone everywhere: tokens, group membership
    expect_error(await hub.api("GET", "/user", token=bob_token), 403)
    assert (await hub.api("GET", "/groups/g")).json()["users"] == []

    expect_error(await hub.api("DELETE", "/users/admin"), 400, "yourself")


async def test_activity_moves_forward_only(hub: RunningHub) -> None:
    await hub.add_user("ann")
    await hub.add_user("bob")
    ann = await hub.token_for("ann")

    async def last_activity() -> str:
        return str((await hub.api("GET", "/users/ann")).json()["last_activity"])

    r = await hub.api("POST", "/users/ann/activity", {"last_activity": "2024-05-01T12:00:00Z"})
    assert r.status == 204
    assert await last_activity() == "2024-05-01T12:00:00.000000Z"
    # older timestamps do not move it back; offsets are converted to UTC
    body = {"last_activity": "2024-04-01T00:00:00Z"}
    assert (await hub.api("POST", "/users/ann/activity", body, token=ann)).status == 204
    assert await last_activity() == "2024-05-01T12:00:00.000000Z"
    body = {"last_activity": "2024-05-01T14:30:00+02:00"}
    assert (await hub.api("POST", "/users/ann/activity", body, token=ann)).status == 204
    assert await last_activity() == "2024-05-01T12:30:00.000000Z"

    # a clock far in the future cannot pin a user as active forever
    body = {"last_activity": "2999-01-01T00:00:00Z"}
    expect_error(await hub.api("POST", "/users/ann/activity", body), 400, "future")
    assert await last_activity() == "2024-05-01T12:30:00.000000Z"

    # ann cannot report activity for bob; she cannot even see him
    body = {"last_activity": "2024-06-01T00:00:00Z"}
    expect_error(await hub.api("POST", "/users/bob/activity", body, token=ann), 404)
    assert (await hub.api("GET", "/users/bob")).json()["last_activity"] is None


BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("a/b", id="slash"),
    pytest.param("..", id="dotdot"),
    pytest.param(".", id="dot"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a\x1b[31mb", id="escape"),
    pytest.param("x" * 10_000, id="10kB"),
    pytest.param("<script>alert(1)</script>", id="script"),
    pytest.param("ann\u202egnp.exe", id="rtl-override"),
    pytest.param("-ann", id="leading-dash"),
    pytest.param("a b", id="space"),
]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_names_are_invalid(bad: str) -> None:
    """Unit check behind the API cases: each of these names is refused."""
    from hub.errors import BadRequest
    from hub.names import validate_group_name, validate_username

    for validate in (validate_username, validate_group_name):
        with pytest.raises(BadRequest):
            validate(bad)


def _users_bad_input() -> list[tuple[str, str, Any, int, str]]:
    """(method, path, JSON body or raw bytes, status, message fragment) for /users*."""
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/users", b"{not json", 400, "not valid JSON"),
        ("POST", "/users", b"", 400, "JSON"),
        ("POST", "/users", [], 400, "object"),
        ("POST", "/users", "ann", 400, "object"),
        ("POST", "/users", {}, 400, "at least one"),
        ("POST", "/users", {"usernames": "ann"}, 400, "at least one"),
        ("POST", "/users", {"usernames": []}, 400, "at least one"),
        ("POST", "/users", {"usernames": [5]}, 400, "string"),
        ("POST", "/users", {"usernames": ["x"], "admin": "yes"}, 400, "true or false"),
        ("POST", "/users", {"usernames": ["x"], "color": "red"}, 400, "unknown field"),
        ("POST", "/users", {"usernames": ["x\u0000"]}, 400, "NUL"),
        ("POST", "/users", b'{"usernames": ["\\ud800"]}', 400, "JSON"),
        ("POST", "/users", b"\xff\xfe", 400, "JSON"),
        ("POST", "/users", b"[" * 100_000, 400, "JSON"),
        ("POST", "/users", b'{"usernames": ["x"], "admin": 1e999}', 400, "JSON"),
        ("POST", "/users/ann", {"admin": False}, 409, "exists"),
        ("POST", "/users/newbie", {"admin": "true"}, 400, "true or false"),
        ("POST", "/users/newbie", [1], 400, "object"),
        ("POST", "/users/newbie", {"name": "x"}, 400, "unknown field"),
        ("POST", "/users/newbie", b"{", 400, "JSON"),
        ("PATCH", "/users/ann", b"", 400, "JSON"),
        ("PATCH", "/users/ann", {}, 400, "Nothing to change"),
        ("PATCH", "/users/ann", [], 400, "object"),
        ("PATCH", "/users/ann", {"admin": 1}, 400, "true or false"),
        ("PATCH", "/users/ann", {"name": 5}, 400, "string"),
        ("PATCH", "/users/ann", {"name": ""}, 400, "empty"),
        ("PATCH", "/users/ann", {"name": "a/b"}, 400, "not allowed"),
        ("PATCH", "/users/ann", {"groups": "g"}, 400, "list"),
        ("PATCH", "/users/ann", {"groups": ["nosuch"]}, 404, "No such group"),
        ("PATCH", "/users/ann", {"password": "x"}, 400, "unknown field"),
        ("PATCH", "/users/ann", {"name": "bob"}, 409, "exists"),
        ("PATCH", "/users/nobody", {"admin": True}, 404, "No such user"),
        ("DELETE", "/users/nobody", None, 404, "No such user"),
        ("GET", "/users/nobody", None, 404, "No such user"),
        ("GET", "/users?state=sleeping", None, 400, "state"),
        ("GET", "/users?sort=servers", None, 400, "sort"),
        ("GET", "/users?sort=--id", None, 400, "sort"),
        ("GET", "/users?offset=-1", None, 400, "offset"),
        ("GET", "/users?offset=abc", None, 400, "offset"),
        ("GET", "/users?offset=99999999999999999999", None, 400, "offset"),
        ("GET", "/users?limit=1e3", None, 400, "limit"),
        ("GET", "/users?name_filter=" + "x" * 300, None, 400, "name_filter"),
        ("GET", "/users?name_filter=a%00b", None, 400, "control"),
        ("GET", "/users/", None, 400, "user name"),
        ("POST", "/users/ann/activity", b"", 400, "JSON"),
        ("POST", "/users/ann/activity", [], 400, "object"),
        ("POST", "/users/ann/activity", {}, 400, "at least one"),
        ("POST", "/users/ann/activity", {"last_activity": "yesterday"}, 400, "timestamp"),
        ("POST", "/users/ann/activity", {"last_activity": 5}, 400, "timestamp"),
        ("POST", "/users/ann/activity", {"servers": []}, 400, "servers"),
        ("POST", "/users/ann/activity", {"servers": {"": "now"}}, 400, "servers"),
        ("POST", "/users/ann/activity", {"servers": {"x": {"last_activity": "2024-01-01"}}},
         400, "No such server"),
        ("POST", "/users/ann/activity", {"last_activity": "2024-01-01", "x": 1},
         400, "unknown field"),
        ("POST", "/users/nobody/activity", {"last_activity": "2024-01-01"}, 404, "No such user"),
        ("PUT", "/users/ann", {}, 405, "Method Not Allowed"),
    ]  # fmt: skip
    for method in ("GET", "POST", "PATCH", "DELETE"):
        body = {"admin": False} if method == "PATCH" else None
        for param in BAD_NAMES:
            bad = param.values[0]
            assert isinstance(bad, str)
            path = "/users/" + quote(bad, safe="")
            if bad in ("", ".", ".."):
                continue  # these do not reach /users/{name} (see the cases above)
            status = 400 if method == "POST" or any(ord(c) < 32 for c in bad) else 404
            cases.append((method, path, body, status, ""))
        cases.append((method, "/users/%2E%2E", body, 400 if method == "POST" else 404, ""))
    for param in BAD_NAMES:
        bad = param.values[0]
        cases.append(("POST", "/users", {"usernames": [bad]}, 400, ""))
        cases.append(("PATCH", "/users/ann", {"name": bad}, 400, ""))
    return cases


async def test_bad_input_changes_nothing(hub: RunningHub, hub_logs: LogCapture) -> None:
    await hub.add_user("ann")
    await hub.add_user("bob")
    await assert_bad_inputs_change_nothing(hub, list(_users_bad_input()))
    hub_logs.assert_no_secrets(hub.admin_token)


async def test_user_cannot_see_or_change_others(hub: RunningHub) -> None:
    await hub.add_user("ann")
    await hub.add_user("bob")
    ann = await hub.token_for("ann")
    before = await api_state(hub)

    expect_error(await hub.api("GET", "/users", token=ann), 403, "list:users")
    expect_error(await hub.api("GET", "/users/bob", token=ann), 404)
    expect_error(await hub.api("PATCH", "/users/bob", {"admin": True}, token=ann), 403)
    expect_error(await hub.api("PATCH", "/users/ann", {"admin": True}, token=ann), 403)
    expect_error(await hub.api("DELETE", "/users/bob", token=ann), 403)
    expect_error(await hub.api("POST", "/users/carl", token=ann), 403)
    expect_error(await hub.api("POST", "/users", {"usernames": ["carl"]}, token=ann), 403)
    assert await api_state(hub) == before
