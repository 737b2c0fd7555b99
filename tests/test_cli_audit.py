"""`hub-admin audit`: the audit log through a hub and offline, SQLite and PostgreSQL."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from hub.db.models import AuditEvent
from tests import test_cli
from tests.conftest import RunningHub
from tests.test_cli import Target, run_cli

# the CLI's targets (a hub, or only its database), as in tests/test_cli.py
target = test_cli.target


async def history(t: Target) -> None:
    assert (await t.run("user", "add", "ann", "bob")).code == 0
    assert (await t.run("group", "create", "lab", "ann")).code == 0
    assert (await t.run("user", "set-admin", "bob", "--on")).code == 0


async def test_newest_first_and_filters(target: Target) -> None:
    await history(target)
    r = await target.run("audit")
    assert r.code == 0, r.err
    header, *rows = r.out.splitlines()
    assert header.split() == ["AT", "ACTOR", "ACTION", "TARGET", "DETAILS"]
    assert [row.split()[2:4] for row in rows[:4]] == [
        ["user.update", "bob"],
        ["group.create", "lab"],
        ["user.create", "bob"],
        ["user.create", "ann"],
    ]
    assert '{"admin": true}' in rows[0]
    actor = rows[0].split()[1]
    if target.mode == "rest":
        assert actor == "admin"
    else:
        assert actor.startswith("hub-admin:")

    async def listed(*argv: str) -> list[tuple[str, str]]:
        r = await target.run("--json", "audit", *argv)
        assert r.code == 0, r.err
        return [(e["action"], e["target"]) for e in r.json()]

    assert await listed("--action", "user.create", "--limit", "1") == [("user.create", "bob")]
    assert await listed("--action", "group.") == [("group.create", "lab")]
    assert await listed("--target", "bob") == [("user.update", "bob"), ("user.create", "bob")]
    assert await listed("--actor", actor, "--action", "user.update") == [("user.update", "bob")]
    assert await listed("--actor", "nobody") == []
    assert len(await listed("--since", "1h")) >= 4

    def backdate(session: Session) -> None:
        old = datetime.datetime(2020, 1, 1)
        session.execute(update(AuditEvent).where(AuditEvent.target == "ann").values(at=old))

    await target.db.run(backdate)
    assert ("user.create", "ann") not in await listed("--since", "7d")
    assert ("user.create", "ann") in await listed("--since", "2019-12-31T00:00:00+00:00")
    assert ("user.create", "ann") not in await listed("--since", "2020-01-01T00:00:01Z")
    r = await target.run("audit", "--actor", "nobody")
    assert r.out == ""
    assert "No audit events found." in r.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "--since", "yesterday"], "argument --since: must be a time such as"),
        (["audit", "--since", "5y"], "argument --since: must be a time such as"),
        (["audit", "--limit", "0"], "argument --limit: must be greater than zero"),
        (["audit", "--action", ""], "argument --action: must not be empty"),
        (["audit", "list"], "unrecognized arguments: list"),
    ],
)
async def test_usage_errors(target: Target, argv: list[str], message: str) -> None:
    r = await target.run(*argv)
    assert r.code == 2
    assert message in r.error
    assert r.out == ""


async def test_needs_read_audit(hub: RunningHub) -> None:
    await hub.add_user("ann")
    ann = await hub.token_for("ann")
    r = await run_cli("--url", hub.url, "--token", ann, "audit")
    assert r.code == 1
    assert "requires any of [read:audit] (HTTP 403)" in r.error
    # an admin's token limited to read:audit is enough
    reader = await hub.token_for("admin", scopes=["read:audit"])
    r = await run_cli("--url", hub.url, "--token", reader, "--json", "audit", "--limit", "2")
    assert r.code == 0, r.err
    assert len(r.json()) == 2
