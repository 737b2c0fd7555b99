"""Groups: list, create (bulk and by name), read, delete, members, properties."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import (
    LogCapture,
    RunningHub,
    api_state,
    assert_bad_inputs_change_nothing,
    expect_error,
)
from tests.test_api_users import BAD_NAMES

PAGINATED = {"Accept": "application/jupyterhub-pagination+json"}


async def test_group_lifecycle(hub: RunningHub) -> None:
    for name in ("ann", "bob", "carl"):
        await hub.add_user(name)
    assert (await hub.api("GET", "/groups")).json() == []

    r = await hub.api("POST", "/groups", {"groups": ["class1", "class2"], "users": ["ann"]})
    assert r.status == 201
    assert [(g["name"], g["users"]) for g in r.json()] == [("class1", ["ann"]), ("class2", ["ann"])]

    r = await hub.api("POST", "/groups/staff", {"users": ["bob"], "properties": {"room": 12}})
    assert r.status == 201
    staff = r.json()
    assert staff == {
        "kind": "group",
        "name": "staff",
        "roles": [],
        "users": ["bob"],
        "properties": {"room": 12},
    }
    assert (await hub.api("GET", "/groups/staff")).json() == staff
    r = await hub.api("POST", "/groups/empty")
    assert r.status == 201
    assert r.json()["users"] == []

    listed = (await hub.api("GET", "/groups")).json()
    assert [g["name"] for g in listed] == ["class1", "class2", "staff", "empty"]
    page = (await hub.api("GET", "/groups?limit=2&offset=1", headers=PAGINATED)).json()
    assert [g["name"] for g in page["items"]] == ["class2", "staff"]
    assert page["_pagination"]["total"] == 4
    assert page["_pagination"]["next"]["offset"] == 3

    # members: adding is idempotent, names are normalised like logins
    r = await hub.api("POST", "/groups/class1/users", {"users": ["Bob", "carl", "ann"]})
    assert r.status == 200
    assert r.json()["users"] == ["ann", "bob", "carl"]
    r = await hub.api("POST", "/groups/class1/users", {"users": []})
    assert r.json()["users"] == ["ann", "bob", "carl"]
    r = await hub.api("DELETE", "/groups/class1/users", {"users": ["ann", "carl"]})
    assert r.status == 200
    assert r.json()["users"] == ["bob"]
    # the user model shows membership too
    assert (await hub.api("GET", "/users/bob")).json()["groups"] == ["class1", "staff"]

    r = await hub.api("PUT", "/groups/class1/properties", {"course": "CS101", "seats": [1, 2]})
    assert r.status == 200
    assert r.json()["properties"] == {"course": "CS101", "seats": [1, 2]}
    # PUT replaces, it does not merge
    r = await hub.api("PUT", "/groups/class1/properties", {"seats": 3})
    assert (await hub.api("GET", "/groups/class1")).json()["properties"] == {"seats": 3}

    assert (await hub.api("DELETE", "/groups/class1")).status == 204
    expect_error(await hub.api("GET", "/groups/class1"), 404, "No such group")
    expect_error(await hub.api("DELETE", "/groups/class1"), 404)
    assert (await hub.api("GET", "/users/bob")).json()["groups"] == ["staff"]
    # members survive their group
    assert (await hub.api("GET", "/users/bob")).status == 200


async def test_users_cannot_manage_groups(hub: RunningHub) -> None:
    await hub.add_user("ann")
    assert (await hub.api("POST", "/groups/class1", {"users": ["ann"]})).status == 201
    ann = await hub.token_for("ann")
    before = await api_state(hub)
    expect_error(await hub.api("GET", "/groups", token=ann), 403, "list:groups")
    expect_error(await hub.api("GET", "/groups/class1", token=ann), 403)
    expect_error(await hub.api("POST", "/groups/mine", token=ann), 403)
    expect_error(await hub.api("DELETE", "/groups/class1", token=ann), 403)
    body = {"users": ["ann"]}
    expect_error(await hub.api("DELETE", "/groups/class1/users", body, token=ann), 403)
    expect_error(await hub.api("PUT", "/groups/class1/properties", {}, token=ann), 403)
    assert await api_state(hub) == before


def _group_bad_input() -> list[tuple[str, str, Any, int, str]]:
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/groups", b"{", 400, "JSON"),
        ("POST", "/groups", b"", 400, "JSON"),
        ("POST", "/groups", [], 400, "object"),
        ("POST", "/groups", {}, 400, "at least one"),
        ("POST", "/groups", {"groups": "g"}, 400, "at least one"),
        ("POST", "/groups", {"groups": []}, 400, "at least one"),
        ("POST", "/groups", {"groups": [5]}, 400, "string"),
        ("POST", "/groups", {"groups": ["g", "g"]}, 400, "unique"),
        ("POST", "/groups", {"groups": ["new", "class1"]}, 409, "already exists"),
        ("POST", "/groups", {"groups": ["new"], "users": ["nobody"]}, 400, "No such user"),
        ("POST", "/groups", {"groups": ["new"], "users": "ann"}, 400, "list of user names"),
        ("POST", "/groups", {"groups": ["new"], "users": [None]}, 400, "list of user names"),
        ("POST", "/groups", {"groups": ["new"], "properties": []}, 400, "properties"),
        ("POST", "/groups", {"groups": ["new"], "roles": ["admin"]}, 400, "unknown field"),
        ("POST", "/groups", {"groups": ["new"], "users": ["a\u0000"]}, 400, "NUL"),
        ("POST", "/groups/class1", None, 409, "already exists"),
        ("POST", "/groups/new", [], 400, "object"),
        ("POST", "/groups/new", {"users": ["nobody"]}, 400, "No such user"),
        ("POST", "/groups/new", {"name": "x"}, 400, "unknown field"),
        ("POST", "/groups/new", {"properties": "x"}, 400, "properties"),
        ("POST", "/groups/new", {"properties": {"x": "y" * 70_000}}, 400, "properties"),
        ("GET", "/groups/nosuch", None, 404, "No such group"),
        ("DELETE", "/groups/nosuch", None, 404, "No such group"),
        ("GET", "/groups?offset=-1", None, 400, "offset"),
        ("GET", "/groups?limit=x", None, 400, "limit"),
        ("POST", "/groups/class1/users", b"", 400, "JSON"),
        ("POST", "/groups/class1/users", {}, 400, "users"),
        ("POST", "/groups/class1/users", {"users": "ann"}, 400, "list of user names"),
        ("POST", "/groups/class1/users", {"users": ["ann", "nobody"]}, 400, "No such user"),
        ("POST", "/groups/class1/users", {"users": ["a/b"]}, 400, "No such user"),
        ("POST", "/groups/class1/users", {"users": ["x" * 10_000]}, 400, "No such user"),
        ("POST", "/groups/class1/users", {"users": ["ann"], "x": 1}, 400, "unknown field"),
        ("POST", "/groups/nosuch/users", {"users": ["ann"]}, 404, "No such group"),
        ("DELETE", "/groups/class1/users", None, 400, "JSON"),
        ("DELETE", "/groups/class1/users", {"users": [1]}, 400, "list of user names"),
        ("DELETE", "/groups/nosuch/users", {"users": ["ann"]}, 404, "No such group"),
        ("PUT", "/groups/class1/properties", b"", 400, "JSON"),
        ("PUT", "/groups/class1/properties", [1], 400, "object"),
        ("PUT", "/groups/class1/properties", "x", 400, "object"),
        ("PUT", "/groups/class1/properties", {"k": "v" * 70_000}, 400, "KiB"),
        ("PUT", "/groups/nosuch/properties", {}, 404, "No such group"),
        ("PATCH", "/groups/class1", {}, 405, ""),
        ("GET", "/groups/", None, 404, ""),
    ]
    for param in BAD_NAMES:
        bad = param.values[0]
        assert isinstance(bad, str)
        cases.append(("POST", "/groups", {"groups": [bad]}, 400, ""))
        if bad in ("", ".", ".."):
            continue
        status = 400 if any(ord(c) < 32 for c in bad) else 404
        path = "/groups/" + quote(bad, safe="")
        cases.append(("POST", path, None, 400, ""))
        cases.append(("GET", path, None, status, ""))
        cases.append(("DELETE", path, None, status, ""))
    return cases


async def test_bad_input_changes_nothing(hub: RunningHub, hub_logs: LogCapture) -> None:
    await hub.add_user("ann")
    assert (await hub.api("POST", "/groups/class1", {"users": ["ann"]})).status == 201
    await assert_bad_inputs_change_nothing(hub, list(_group_bad_input()))
    hub_logs.assert_no_secrets(hub.admin_token)
