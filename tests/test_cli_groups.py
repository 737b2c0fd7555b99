"""`hub-admin group list|show|create|delete|add|remove`, through a hub and offline.

On SQLite and PostgreSQL; memberships are read back from the database. Bad
input (unknown group or user, bad names, a missing --yes) exits non-zero with
one line and changes nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub.db.models import Group
from tests import test_cli
from tests.test_cli import Target

# the CLI's targets (a hub, or only its database), as in tests/test_cli.py
target = test_cli.target


async def memberships(t: Target) -> dict[str, list[str]]:
    def read(session: Session) -> dict[str, list[str]]:
        query = select(Group).options(selectinload(Group.users)).order_by(Group.name)
        return {g.name: [u.name for u in g.users] for g in session.scalars(query)}

    return await t.db.run(read)


async def test_create_list_show_change_delete(target: Target) -> None:
    assert (await target.run("user", "add", "ann", "bob", "cid")).code == 0
    r = await target.run("group", "create", "physics-101", "ann", "Bob")
    assert r.code == 0, r.err
    assert r.out.strip() == "Created group physics-101 with 2 members."
    r = await target.run("group", "create", "empty")
    assert r.out.strip() == "Created group empty."
    assert await memberships(target) == {"empty": [], "physics-101": ["ann", "bob"]}

    r = await target.run("group", "list")
    assert r.code == 0, r.err
    header, *rows = r.out.splitlines()
    assert header.split() == ["NAME", "MEMBERS", "USERS"]
    assert [row.split() for row in rows] == [
        ["physics-101", "2", "ann,", "bob"],
        ["empty", "0", "-"],
    ]
    r = await target.run("--json", "group", "list")
    assert {g["name"]: g["users"] for g in r.json()} == {"physics-101": ["ann", "bob"], "empty": []}

    r = await target.run("group", "show", "physics-101")
    assert r.code == 0, r.err
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in r.out.splitlines())}
    assert fields["name"] == "physics-101"
    assert fields["members"] == "2"
    assert fields["users"] == "ann, bob"

    r = await target.run("group", "add", "physics-101", "cid", "ann")
    assert r.code == 0, r.err
    assert r.out.strip() == "Added cid, ann to physics-101 (now 3 members)."
    r = await target.run("--json", "group", "remove", "physics-101", "ann")
    assert r.code == 0, r.err
    assert r.json()["users"] == ["bob", "cid"]
    assert (await memberships(target))["physics-101"] == ["bob", "cid"]

    r = await target.run("group", "delete", "physics-101", "--yes")
    assert r.code == 0, r.err
    assert r.out.strip() == "Deleted group physics-101."
    assert await memberships(target) == {"empty": []}
    assert {"ann", "bob", "cid"} <= set(await target.users())  # its users stay

    r = await target.run("group", "delete", "empty", "--yes")
    assert r.code == 0
    r = await target.run("group", "list")
    assert r.out == ""
    assert "No groups found." in r.err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["group", "show", "nope"], 1, "No such group: nope"),
        (["group", "delete", "nope", "--yes"], 1, "No such group: nope"),
        (["group", "add", "nope", "ann"], 1, "No such group: nope"),
        (["group", "remove", "nope", "ann"], 1, "No such group: nope"),
        (["group", "add", "lab", "ann", "ghost"], 1, "No such user(s): ghost"),
        (["group", "create", "lab"], 1, "Group lab already exists"),
        (["group", "create", "new", "ghost"], 1, "No such user(s): ghost"),
        (["group", "create", "a/b"], 1, "invalid group name 'a/b': character '/' is not allowed"),
        (["group", "create", "<b>"], 1, "must start with a letter or digit"),
        (["group", "delete", "lab"], 2, "add --yes to confirm"),
        (["group", "add", "lab"], 2, "the following arguments are required: USER"),
        (["group", "remove"], 2, "the following arguments are required: GROUP, USER"),
        (["group", "show", ""], 2, "must not be empty"),
        (["group", "rename", "lab"], 2, "invalid choice: 'rename'"),
        (["group"], 2, "group: the following arguments are required: SUBCOMMAND"),
    ],
)
async def test_bad_input_changes_nothing(
    target: Target, argv: list[str], code: int, message: str
) -> None:
    assert (await target.run("user", "add", "ann")).code == 0
    assert (await target.run("group", "create", "lab", "ann")).code == 0
    before = await memberships(target)
    r = await target.run(*argv)
    assert r.code == code, r.err
    assert message in r.error
    if target.mode == "rest" and code == 1:
        assert "(HTTP 4" in r.error
    assert r.out == ""
    assert await memberships(target) == before
