"""`GET /hub/api/audit` and `hub.ops.audit.list_events`, on SQLite and PostgreSQL.

The log lists administrative actions newest first, paginated on request like
every JupyterHub list, filtered by actor, action (exact or a noun's prefix),
target and time; only holders of the unfiltered `read:audit` scope may read it.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import update
from sqlalchemy.orm import Session

from hub.db.models import AuditEvent
from hub.ops import audit as audit_ops
from hub.rbac import scopes
from hub.rbac.access import Requester
from hub.rbac.roles import ADMIN_SCOPES, RoleTable
from tests.conftest import RunningHub, expect_error

PAGINATED = {"Accept": "application/jupyterhub-pagination+json"}


async def events(hub: RunningHub, query: str = "", token: Any = None) -> list[dict[str, Any]]:
    extra = {} if token is None else {"token": token}
    r = await hub.api("GET", f"/audit{query}", **extra)
    assert r.status == 200, r.body
    body = r.json()
    assert isinstance(body, list)
    return body


async def make_history(hub: RunningHub) -> None:
    """user.create ann, bob; group.create g_1 with ann; user.update bob; token.create ann."""
    assert (await hub.api("POST", "/users", {"usernames": ["ann", "bob"]})).status == 201
    assert (await hub.api("POST", "/groups/g_1", {"users": ["ann"]})).status == 201
    assert (await hub.api("PATCH", "/users/bob", {"admin": True})).status == 200
    assert (await hub.api("POST", "/users/ann/tokens", {"note": "x"})).status == 201


def test_scope_is_declared_and_held_by_admins() -> None:
    assert "read:audit" in scopes.SCOPES
    assert "audit log" in scopes.SCOPES["read:audit"].description
    assert scopes.validate("read:audit") == "read:audit"
    assert "read:audit" in ADMIN_SCOPES
    assert "read:audit" in RoleTable.from_config().user_scopes("root", True, [])
    assert "read:audit" not in RoleTable.from_config().user_scopes("ann", False, [])
    assert Requester.build("user", "root", 1, True, ADMIN_SCOPES).is_full_admin()


async def test_newest_first_with_every_field(hub: RunningHub) -> None:
    await make_history(hub)
    listed = await events(hub)
    assert [(e["action"], e["target"]) for e in listed[:5]] == [
        ("token.create", "ann"),
        ("user.update", "bob"),
        ("group.create", "g_1"),
        ("user.create", "bob"),
        ("user.create", "ann"),
    ]
    first = listed[0]
    assert set(first) == {"id", "at", "actor", "action", "target", "details"}
    assert first["actor"] == "admin"
    assert first["details"]["note"] == "x"
    assert first["at"].endswith("Z")
    ids = [e["id"] for e in listed]
    assert ids == sorted(ids, reverse=True)


async def test_filters(hub: RunningHub) -> None:
    await make_history(hub)
    assert [e["target"] for e in await events(hub, "?action=user.update")] == ["bob"]
    for prefix in ("user.", "user.*"):
        actions = {e["action"] for e in await events(hub, f"?action={quote(prefix)}")}
        assert actions == {"user.create", "user.update"}
    # LIKE wildcards in a prefix are plain characters
    assert await events(hub, "?action=%25.") == []
    assert await events(hub, "?action=u_er.") == []
    assert [e["action"] for e in await events(hub, "?target=g_1")] == ["group.create"]
    assert [e["action"] for e in await events(hub, "?target=ann&action=token.")] == ["token.create"]
    assert await events(hub, "?actor=nobody") == []
    assert {e["actor"] for e in await events(hub, "?actor=admin")} == {"admin"}
    # the first admin was made by the hub itself
    by_hub = await events(hub, "?actor=atrium")
    assert [(e["action"], e["target"]) for e in by_hub] == [("user.create", "admin")]
    # an event from the past is left out by since; times with a zone are converted
    past = datetime.datetime(2020, 1, 1)

    def backdate(session: Session) -> None:
        session.execute(
            update(AuditEvent).where(AuditEvent.action == "group.create").values(at=past)
        )

    await hub.db.run(backdate)
    recent = await events(hub, "?since=2021-01-01T00:00:00Z")
    assert "group.create" not in {e["action"] for e in recent}
    assert len(recent) == len(await events(hub)) - 1
    old = await events(hub, "?action=group.create&since=" + quote("2019-12-31T23:00:00-02:00"))
    assert old == []  # 01:00 UTC on 1 January 2020 is after the event
    old = await events(hub, "?action=group.create&since=2019-12-31")
    assert [e["at"][:10] for e in old] == ["2020-01-01"]
    assert await events(hub, "?since=2999-01-01") == []


async def test_pagination_is_opt_in(hub: RunningHub) -> None:
    await make_history(hub)
    everything = await events(hub)
    r = await hub.api("GET", "/audit?limit=2", headers=PAGINATED)
    page = r.json()
    assert [e["id"] for e in page["items"]] == [e["id"] for e in everything[:2]]
    meta = page["_pagination"]
    assert (meta["offset"], meta["limit"], meta["total"]) == (0, 2, len(everything))
    assert meta["next"]["offset"] == 2
    assert "limit=2" in meta["next"]["url"]
    last = await hub.api("GET", f"/audit?offset={len(everything) - 1}&limit=2", headers=PAGINATED)
    assert last.json()["_pagination"]["next"] is None
    assert len(last.json()["items"]) == 1
    filtered = await hub.api("GET", "/audit?action=user.", headers=PAGINATED)
    # admin (made at start-up), ann, bob; bob's update
    assert filtered.json()["_pagination"]["total"] == 4
    assert [e["id"] for e in await events(hub, "?offset=1&limit=1")] == [everything[1]["id"]]


async def test_who_may_read_it(hub: RunningHub) -> None:
    await make_history(hub)
    ann = await hub.token_for("ann")
    expect_error(await hub.api("GET", "/audit", token=ann), 403, "read:audit")
    expect_error(await hub.api("GET", "/audit", token=None), 403)
    auditor = await hub.token_for("bob", scopes=["read:audit"])
    assert len(await events(hub, token=auditor)) >= 5
    filtered = await hub.token_for("bob", scopes=["read:audit!user=ann"])
    expect_error(await hub.api("GET", "/audit", token=filtered), 403, "without a filter")
    # an admin's token without the scope does not read it
    narrow = await hub.token_for("admin", scopes=["admin:users"])
    expect_error(await hub.api("GET", "/audit", token=narrow), 403, "read:audit")


async def test_bad_queries(hub: RunningHub) -> None:
    for query, fragment in [
        ("?since=yesterday", "since must be an ISO 8601 time"),
        ("?since=" + "9" * 301, "since is too long"),
        ("?actor=" + "a" * 301, "actor is too long"),
        ("?limit=many", "limit must be an integer"),
        ("?offset=-1", "offset must not be negative"),
    ]:
        expect_error(await hub.api("GET", f"/audit{query}"), 400, fragment)


async def test_list_events_keeps_its_callers(hub: RunningHub) -> None:
    await make_history(hub)
    items, total = await hub.db.run(audit_ops.list_events, offset=0, limit=2, action="user.create")
    assert total == 3
    assert [e["target"] for e in items] == ["bob", "ann"]
    items, total = await hub.db.run(audit_ops.list_events)
    assert total == len(items) >= 5
