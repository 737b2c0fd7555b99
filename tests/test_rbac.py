"""RBAC: scope expansion, filters and intersection (units), and what they mean through the API.

JupyterHub's vocabulary: `self` expands to a user's own permissions; parent scopes
imply their subscopes; `!user=`, `!server=`, `!group=` filters narrow a scope;
a token holds its own scopes intersected with its owner's current ones.
"""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import BadRequest, ConfigError
from hub.rbac import scopes
from hub.rbac.access import Requester
from hub.rbac.roles import ADMIN_SCOPES, RoleTable, token_scopes
from tests.conftest import HubFactory, RunningHub, api_state, expect_error

GROUPS = {"ann": frozenset({"class1"}), "bob": frozenset({"class2"}), "carl": frozenset()}


def groups_of(name: str) -> frozenset[str]:
    return GROUPS.get(name, frozenset())


# --- units: hub/rbac/scopes.py ----------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "implied", "not_implied"),
    [
        ("admin:users", {"users", "read:users", "list:users", "delete:users"}, {"servers"}),
        ("users", {"read:users:name", "users:activity", "read:users:activity"}, {"delete:users"}),
        ("servers", {"read:servers", "start:servers", "delete:servers"}, {"admin:server_state"}),
        ("tokens", {"read:tokens"}, {"read:users"}),
        ("admin:groups", {"groups", "read:groups", "list:groups", "delete:groups"}, {"users"}),
        ("read:users", {"read:users:groups", "read:users:activity"}, {"list:users"}),
    ],
)
def test_parent_scopes_imply_subscopes(
    scope: str, implied: set[str], not_implied: set[str]
) -> None:
    expanded = scopes.expand_base(scope)
    assert scope in expanded
    assert implied <= expanded
    assert not (not_implied & expanded)


def test_self_expands_to_own_permissions() -> None:
    own = scopes.expand(frozenset({"self"}), "ann")
    assert {
        "read:users!user=ann",
        "servers!user=ann",
        "start:servers!user=ann",
        "tokens!user=ann",
        "read:tokens!user=ann",
        "access:servers!user=ann",
        "users:activity!user=ann",
    } <= own
    assert all(s.endswith("!user=ann") for s in own)
    assert not any(s.startswith(("list:users", "admin:", "delete:users")) for s in own)
    # without an owner (a service), self means nothing
    assert scopes.expand(frozenset({"self"}), None) == frozenset()


def test_short_filters_bind_to_owner_and_server() -> None:
    server_role = frozenset({"users:activity!user", "access:servers!server"})
    assert scopes.expand(server_role, "ann", "lab") == {
        "users:activity!user=ann",
        "read:users:activity!user=ann",
        "access:servers!server=ann/lab",
    }
    # an unbound !server filter grants nothing rather than everything
    assert scopes.expand(server_role, "ann") == {
        "users:activity!user=ann",
        "read:users:activity!user=ann",
    }
    assert scopes.expand(frozenset({"read:users!user"}), None) == frozenset()


@pytest.mark.parametrize(
    ("scope", "error"),
    [
        ("", "non-empty"),
        ("nonsense", "unknown scope"),
        ("read:users!nope=x", "bad filter"),
        ("read:users!user=", "bad filter"),
        ("read:users!user", "bad filter"),
        ("self!user=ann", "cannot be filtered"),
        ("x" * 600, "non-empty string"),
    ],
)
def test_validate_rejects(scope: str, error: str) -> None:
    with pytest.raises(BadRequest, match=error):
        scopes.validate(scope)


def test_validate_accepts_jupyterhub_scopes() -> None:
    for scope in ("read:users", "access:servers!server=ann/", "users!group=class1", "inherit"):
        assert scopes.validate(scope) == scope


def test_parse_unfiltered_wins() -> None:
    parsed = scopes.parse(
        {"read:users!user=ann", "read:users", "servers!group=g", "servers!user=x"}
    )
    assert parsed["read:users"] == scopes.ALL
    assert parsed["servers"] == {"group": frozenset({"g"}), "user": frozenset({"x"})}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # unfiltered on one side keeps the other side's filter
        ({"read:users"}, {"read:users!user=ann"}, {"read:users!user=ann"}),
        ({"read:users"}, {"read:users"}, {"read:users"}),
        # disjoint filters give nothing
        ({"read:users!user=ann"}, {"read:users!user=bob"}, set()),
        # a user inside the group keeps access, one outside does not
        ({"read:users!group=class1"}, {"read:users!user=ann"}, {"read:users!user=ann"}),
        ({"read:users!group=class1"}, {"read:users!user=bob"}, set()),
        # a server of a permitted user is permitted
        (
            {"access:servers!user=ann"},
            {"access:servers!server=ann/lab", "access:servers!server=bob/"},
            {"access:servers!server=ann/lab"},
        ),
        # a server of a user inside a permitted group is permitted
        ({"servers!group=class1"}, {"servers!server=ann/"}, {"servers!server=ann/"}),
        ({"servers!group=class1"}, {"servers!server=bob/"}, set()),
        # a scope held on one side only is dropped
        ({"read:users", "admin:users"}, {"read:users"}, {"read:users"}),
    ],
)
def test_intersect(a: set[str], b: set[str], expected: set[str]) -> None:
    assert scopes.intersect(frozenset(a), frozenset(b), groups_of) == expected
    assert scopes.intersect(frozenset(b), frozenset(a), groups_of) == expected


def test_covered() -> None:
    held = scopes.parse({"read:users!group=class1", "servers!user=ann", "read:hub"})
    assert scopes.covered(held, "read:users!user=ann", groups_of)
    assert not scopes.covered(held, "read:users!user=bob", groups_of)
    assert not scopes.covered(held, "read:users", groups_of)
    assert scopes.covered(held, "servers!server=ann/lab", groups_of)
    assert scopes.covered(held, "read:hub", groups_of)
    assert not scopes.covered(held, "list:users", groups_of)


# --- units: hub/rbac/roles.py and access.py ---------------------------------------------


def test_role_table() -> None:
    table = RoleTable.from_config(
        [{"name": "teacher", "scopes": ["read:users!group=class1", "list:users!group=class1"]}]
    )
    assert table.user_roles(False, ["teacher"]) == ["user", "teacher"]
    assert table.user_roles(True, []) == ["user", "admin"]
    teacher = table.user_scopes("tess", False, ["teacher"])
    assert {"read:users!group=class1", "read:users:name!group=class1"} <= teacher
    assert "servers!user=tess" in teacher  # and her own, through `self`
    assert table.user_scopes("root", True, []) >= ADMIN_SCOPES
    assert not any(s.startswith("admin:") for s in table.user_scopes("ann", False, []))


@pytest.mark.parametrize(
    "spec",
    [
        {"scopes": ["read:users"]},
        {"name": "", "scopes": []},
        {"name": "r", "scopes": "read:users"},
        {"name": "r", "scopes": ["read:userz"]},
        {"name": "r", "scopes": ["read:users!colour=red"]},
    ],
)
def test_role_table_rejects_bad_roles(spec: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="load_roles"):
        RoleTable.from_config([spec])


def test_token_scopes_never_exceed_owner() -> None:
    table = RoleTable.from_config()
    admin = table.user_scopes("ann", True, [])
    plain = table.user_scopes("ann", False, [])
    raw = ["admin:users", "read:hub"]
    assert "admin:users" in token_scopes(raw, "ann", admin, groups_of)
    # the same token once ann is no longer an admin: only what she holds on herself
    narrowed = token_scopes(raw, "ann", plain, groups_of)
    assert narrowed <= plain
    assert all(s.endswith("!user=ann") for s in narrowed)
    assert {"read:users!user=ann", "read:users:name!user=ann"} <= narrowed
    assert token_scopes(["read:hub"], "ann", plain, groups_of) == {
        "read:users:name!user=ann",
        "read:users:groups!user=ann",
    }
    assert token_scopes(["inherit"], "ann", plain, groups_of) == plain


def test_requester_allows() -> None:
    req = Requester.build(
        "user",
        "tess",
        5,
        False,
        frozenset({"read:users!group=class1", "servers!server=bob/lab", "read:hub"}),
    )
    assert req.allows("read:users", user="ann", user_groups=["class1"])
    assert not req.allows("read:users", user="bob", user_groups=["class2"])
    assert req.allows("servers", server="bob/lab")
    assert not req.allows("servers", server="bob/")
    assert not req.allows("servers", user="bob")
    assert req.allows("read:hub")
    assert not req.allows("admin:users", user="ann")
    assert req.user_filter("read:users") == (False, frozenset(), frozenset({"class1"}))
    assert not req.is_full_admin()
    assert Requester.build("user", "root", 1, True, ADMIN_SCOPES).is_full_admin()


# --- through the API ----------------------------------------------------------------------


async def test_token_loses_power_with_its_owner(hub: RunningHub) -> None:
    await hub.add_user("ann", admin=True)
    await hub.add_user("bob")
    inherit = await hub.token_for("ann")
    explicit = await hub.token_for("ann", scopes=["admin:users", "list:users"])
    for token in (inherit, explicit):
        assert (await hub.api("GET", "/users", token=token)).status == 200

    assert (await hub.api("PATCH", "/users/ann", {"admin": False})).status == 200
    for token in (inherit, explicit):
        expect_error(await hub.api("GET", "/users", token=token), 403)
        expect_error(await hub.api("PATCH", "/users/bob", {"name": "x"}, token=token), 403)
    # still ann, and still able to identify herself
    assert (await hub.api("GET", "/user", token=explicit)).json()["name"] == "ann"
    # power returns with the role
    assert (await hub.api("PATCH", "/users/ann", {"admin": True})).status == 200
    assert (await hub.api("GET", "/users", token=explicit)).status == 200


async def test_forbidden_versus_not_found(hub: RunningHub) -> None:
    await hub.add_user("ann")
    await hub.add_user("bob")
    ann = await hub.token_for("ann")
    # a scope ann lacks entirely: 403; one she holds only for herself: 404 for others
    expect_error(await hub.api("GET", "/users", token=ann), 403)
    expect_error(await hub.api("GET", "/groups", token=ann), 403)
    for path in ("/users/bob", "/users/nobody", "/users/bob/tokens"):
        message = expect_error(await hub.api("GET", path, token=ann), 404)
        assert "bob" not in message or "No such user" in message
    assert (await hub.api("GET", "/users/ann", token=ann)).status == 200
    assert (await hub.api("GET", "/users/ann/tokens", token=ann)).status == 200


async def _hub_with_roles(hub_factory: HubFactory) -> RunningHub:
    """Users and groups first, then a hub whose config assigns roles to them."""
    first = await hub_factory()
    for name in ("tess", "ann", "amy", "bob", "useradmin", "root"):
        await first.add_user(name, admin=name == "root")
    for group, members in (("class1", ["ann", "amy"]), ("class2", ["bob"])):
        r = await first.api("POST", f"/groups/{group}", {"users": members})
        assert r.status == 201
    roles = [
        {
            "name": "teacher",
            "description": "Reads the users of class1",
            "scopes": ["list:users!group=class1", "read:users!group=class1"],
            "users": ["tess"],
        },
        {"name": "user-admin", "scopes": ["admin:users"], "users": ["useradmin"]},
    ]
    return await hub_factory(load_roles=roles)


async def test_group_filter(hub_factory: HubFactory) -> None:
    hub = await _hub_with_roles(hub_factory)
    tess = await hub.token_for("tess")

    listed = (await hub.api("GET", "/users", token=tess)).json()
    assert [u["name"] for u in listed] == ["ann", "amy"]
    assert (await hub.api("GET", "/users/ann", token=tess)).json()["groups"] == ["class1"]
    expect_error(await hub.api("GET", "/users/bob", token=tess), 404)
    # read, not write
    expect_error(await hub.api("PATCH", "/users/ann", {"name": "x"}, token=tess), 403)
    # membership changes apply at once, both ways
    assert (await hub.api("POST", "/groups/class1/users", {"users": ["bob"]})).status == 200
    assert (await hub.api("GET", "/users/bob", token=tess)).status == 200
    body = {"users": ["ann"]}
    assert (await hub.api("DELETE", "/groups/class1/users", body)).status == 200
    expect_error(await hub.api("GET", "/users/ann", token=tess), 404)
    listed = (await hub.api("GET", "/users", token=tess)).json()
    assert [u["name"] for u in listed] == ["amy", "bob"]
    # and a token of hers narrowed to one user sees only that one
    narrow = await hub.token_for("tess", scopes=["list:users!user=amy", "read:users!user=amy"])
    assert [u["name"] for u in (await hub.api("GET", "/users", token=narrow)).json()] == ["amy"]


async def test_user_admin_cannot_make_or_touch_admins(hub_factory: HubFactory) -> None:
    hub = await _hub_with_roles(hub_factory)
    ua = await hub.token_for("useradmin")
    ann = await hub.token_for("ann")
    before = await api_state(hub)

    expect_error(await hub.api("PATCH", "/users/ann", {"admin": True}, token=ua), 403, "admin")
    expect_error(await hub.api("PATCH", "/users/useradmin", {"admin": True}, token=ua), 403)
    expect_error(await hub.api("PATCH", "/users/ann", {"admin": True}, token=ann), 403)
    body = {"usernames": ["newadmin"], "admin": True}
    expect_error(await hub.api("POST", "/users", body, token=ua), 403, "admin")
    expect_error(await hub.api("POST", "/users/newadmin", {"admin": True}, token=ua), 403)
    expect_error(await hub.api("PATCH", "/users/root", {"name": "toor"}, token=ua), 403)
    expect_error(await hub.api("PATCH", "/users/root", {"admin": False}, token=ua), 403)
    expect_error(await hub.api("DELETE", "/users/root", token=ua), 403)
    expect_error(await hub.api("DELETE", "/users/admin", token=ua), 403)
    # and cannot mint a token with scopes she lacks, for herself or anyone
    body = {"scopes": ["admin:servers"]}
    expect_error(await hub.api("POST", "/users/useradmin/tokens", body, token=ua), 403)
    assert await api_state(hub) == before

    # what admin:users does allow: manage non-admin users
    assert (await hub.api("POST", "/users/newbie", token=ua)).status == 201
    assert (await hub.api("PATCH", "/users/newbie", {"name": "rookie"}, token=ua)).status == 200
    assert (await hub.api("DELETE", "/users/rookie", token=ua)).status == 204


async def test_server_filter(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class="tests.spawner.ProcessSpawner", allow_named_servers=True)
    await hub.add_user("ann")
    lab_only = await hub.token_for("ann", scopes=["servers!server=ann/lab"])

    assert (await hub.api("POST", "/users/ann/servers/lab", token=lab_only)).status == 201
    expect_error(await hub.api("POST", "/users/ann/servers/other", token=lab_only), 404)
    expect_error(await hub.api("POST", "/users/ann/server", token=lab_only), 404)
    # it reads that one server, and only what the identify scopes show of ann
    model = (await hub.api("GET", "/users/ann", token=lab_only)).json()
    assert set(model["servers"]) == {"lab"}
    assert "last_activity" not in model
    assert (await hub.api("DELETE", "/users/ann/servers/lab", token=lab_only)).status == 204
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    expect_error(await hub.api("DELETE", "/users/ann/server", token=lab_only), 404)


async def test_a_default_role_named_in_load_roles_keeps_its_scopes(
    hub_factory: HubFactory,
) -> None:
    """As on JupyterHub: {'name': 'admin', 'users': [...]} adds admins; it does not empty
    the admin role. Scopes given for a default role replace its own."""
    first = await hub_factory()
    await first.add_user("ann", password="correct horse battery")
    await first.add_user("bo", password="correct horse battery")
    hub = await hub_factory(
        load_roles=[
            {"name": "admin", "users": ["ann"]},
            {"name": "user", "scopes": ["self", "list:groups"]},
        ]
    )
    ann = await hub.token_for("ann")
    assert (await hub.api("GET", "/users", token=ann)).status == 200
    assert (await hub.api("GET", "/users/ann")).json()["admin"] is True
    assert (await hub.api("GET", "/users")).status == 200  # the first admin too
    bo = await hub.token_for("bo")
    assert (await hub.api("GET", "/users", token=bo)).status == 403
    assert (await hub.api("GET", "/groups", token=bo)).status == 200
