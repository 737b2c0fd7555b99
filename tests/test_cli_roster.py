"""`hub-admin user import ROSTER.csv`, through a hub and offline, SQLite and PostgreSQL.

A dry run prints a line per row and a summary and changes nothing; `--apply`
imports all or nothing unless `--skip-errors`; any row with an error gives
exit status 1; a malformed file is refused with the line it is on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.models import Group, User
from tests import test_cli
from tests.test_cli import CLI, Result, Target

# the CLI's targets (a hub, or only its database), as in tests/test_cli.py
target = test_cli.target

ROSTER = """\
username,full_name,email,groups
ann,Ann Lee,ann@example.org,physics-101;lab-a
Bob,Bob Stone,,physics-101
"""


async def state(t: Target) -> dict[str, tuple[str, str, list[str]]]:
    """Every user's (full name, email, groups), read from the database."""

    def read(session: Session) -> dict[str, tuple[str, str, list[str]]]:
        users = session.scalars(select(User).order_by(User.name))
        return {u.name: (u.full_name, u.email, [g.name for g in u.groups]) for u in users}

    return await t.db.run(read)


async def groups(t: Target) -> list[str]:
    def read(session: Session) -> list[str]:
        return list(session.scalars(select(Group.name).order_by(Group.name)))

    return await t.db.run(read)


def write(tmp_path: Path, text: str | bytes, name: str = "roster.csv") -> str:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


async def test_dry_run_then_apply(target: Target, tmp_path: Path) -> None:
    path = write(tmp_path, ROSTER)
    before = await state(target)
    r = await target.run("user", "import", path)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["LINE", "USER", "ACTION", "DETAILS"]
    assert lines[1].split()[:3] == ["2", "ann", "create"]
    assert "full name: '' -> 'Ann Lee'; email: '' -> 'ann@example.org'" in lines[1]
    assert lines[2].split()[:3] == ["3", "bob", "create"]
    assert lines[-1] == (
        "Dry run: 2 to create, 0 to update, 0 unchanged, 0 errors; "
        "2 new groups (physics-101, lab-a)."
    )
    assert "Nothing was changed: add --apply to import the roster." in r.err
    assert await state(target) == before

    r = await target.run("user", "import", path, "--apply")
    assert r.code == 0, r.err
    assert r.out.splitlines()[-1] == (
        "Imported: 2 created, 0 updated, 0 unchanged, 0 errors; 2 new groups (physics-101, lab-a)."
    )
    after = await state(target)
    assert after["ann"] == ("Ann Lee", "ann@example.org", ["lab-a", "physics-101"])
    assert after["bob"] == ("Bob Stone", "", ["physics-101"])
    assert await groups(target) == ["lab-a", "physics-101"]

    r = await target.run("--json", "user", "import", path, "--apply")
    assert r.code == 0, r.err
    assert r.json()["summary"] == {"create": 0, "update": 0, "unchanged": 2, "error": 0}


async def test_errors_apply_nothing_unless_skipped(target: Target, tmp_path: Path) -> None:
    path = write(tmp_path, "username,email\nann,ann@example.org\nb/c,\ndee,not-an-email\n")
    r = await target.run("user", "import", path)
    assert r.code == 1
    assert "error" in r.out
    assert "invalid username 'b/c'" in r.out
    assert "2 rows have errors (lines 3, 4); fix them, or import the other rows" in r.error
    assert "ann" not in await state(target)

    before = await state(target)
    r = await target.run("user", "import", path, "--apply")
    assert r.code == 1
    assert "nothing was imported: 2 rows have errors (lines 3, 4)" in r.error
    assert "add --skip-errors" in r.error
    assert await state(target) == before

    r = await target.run("user", "import", path, "--apply", "--skip-errors")
    assert r.code == 1
    assert r.out.splitlines()[-1].startswith(
        "Imported: 1 created, 0 updated, 0 unchanged, 2 errors"
    )
    assert "imported the other rows, but 2 rows have errors (lines 3, 4)" in r.error
    assert (await state(target))["ann"] == ("", "ann@example.org", [])
    assert "dee" not in await state(target)


async def test_stdin(target: Target) -> None:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *target.args,
        "user",
        "import",
        "-",
        "--apply",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=target.env,
    )
    out, err = await asyncio.wait_for(proc.communicate(ROSTER.encode("utf-8-sig")), 120)
    assert proc.returncode == 0, err
    assert "Imported: 2 created" in out.decode()
    assert "ann" in await state(target)


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("", 1, "the roster is empty"),
        ("username,phone\nann,1\n", 1, "line 1 must be a header row naming the columns"),
        ('username,full_name\nann,"Ann\n', 1, "not valid CSV"),
        ("username\nann,extra\n", 1, "line 2 has 2 fields but the header has 1"),
        (b"username\nann\n\xff\xfe\n", 1, "line 3: the roster is not UTF-8 text"),
        ("email\nann@example.org\n", 1, "line 1: the header has no username column"),
    ],
)
async def test_malformed_rosters_change_nothing(
    target: Target, tmp_path: Path, text: str | bytes, code: int, message: str
) -> None:
    before = await state(target)
    r = await target.run("user", "import", write(tmp_path, text), "--apply", "--skip-errors")
    assert r.code == code
    assert message in r.error
    if target.mode == "rest" and isinstance(text, str):
        assert r.error.endswith("(HTTP 400)")
    assert r.out == ""
    assert await state(target) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["user", "import"], "the following arguments are required: ROSTER.csv"),
        (["user", "import", "/no/such/roster.csv"], "cannot read /no/such/roster.csv"),
        (["user", "import", "-", "--skip-errors"], "--skip-errors only makes sense with --apply"),
        (["user", "import", "x.csv", "--force"], "unrecognized arguments: --force"),
    ],
)
async def test_usage_errors(target: Target, argv: list[str], message: str) -> None:
    before = await state(target)
    r: Result = await target.run(*argv)
    assert r.code == 2, r.err
    assert message in r.error
    assert await state(target) == before
