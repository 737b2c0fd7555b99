"""Class roster import: `hub.ops.roster.parse_roster` and `POST /hub/api/roster`.

Parsing is checked on its own (no database); the API on SQLite and PostgreSQL:
a dry run changes nothing, an import creates and updates users and groups and
records one audit event per changed user, rows with errors are reported and
left out, and bad files are refused with a 400 that names the line.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.models import AuditEvent, Role, User
from hub.errors import BadRequest
from hub.ops.roster import MAX_LINE_CHARS, MAX_ROWS, RosterRow, parse_roster
from tests.conftest import (
    HubFactory,
    Response,
    RunningHub,
    api_state,
    assert_bad_inputs_change_nothing,
    expect_error,
)

CSV = {"Content-Type": "text/csv; charset=utf-8"}

ROSTER = """\
username,full_name,email,groups
ann,Ann Lee,ann@example.org,physics-101;lab-a
Bob,Bob Stone,,physics-101
carl,,,
"""


async def post_roster(
    hub: RunningHub, text: str | bytes, query: str = "", token: Any = None, **kw: Any
) -> Response:
    raw = text.encode() if isinstance(text, str) else text
    extra = {} if token is None else {"token": token}
    return await hub.api("POST", f"/roster{query}", raw=raw, headers=CSV, **extra, **kw)


async def audit_events(hub: RunningHub, action: str) -> list[tuple[str, str, dict[str, Any]]]:
    def read(session: Session) -> list[tuple[str, str, dict[str, Any]]]:
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.target, AuditEvent.details)
            .where(AuditEvent.action == action)
            .order_by(AuditEvent.id)
        )
        return [(a, t, d) for a, t, d in rows]

    return await hub.db.run(read)


# --- parsing ------------------------------------------------------------------------


def test_parse_tolerates_bom_crlf_order_and_header_spelling() -> None:
    text = "\ufeffGroups , E-Mail,  Full Name ,USERNAME\r\n a; b ;;a ,x@y.org, Ann Lee ,Ann\r\n"
    assert parse_roster(text) == [RosterRow(2, "Ann", "Ann Lee", "x@y.org", ("a", "b"))]


def test_parse_only_username_blank_lines_and_trailing_empty_cells() -> None:
    text = "username\n\nann,,\n\n  \nbob\n"
    rows = parse_roster(text)
    assert [(r.line, r.username, r.full_name, r.groups) for r in rows] == [
        (3, "ann", "", ()),
        (6, "bob", "", ()),
    ]


def test_parse_quoted_fields_keep_commas_quotes_and_line_numbers() -> None:
    text = 'username,full_name\nann,"Lee, Ann ""Annie"""\nbob,"two\nlines"\ncid,C\n'
    rows = parse_roster(text)
    assert rows[0].full_name == 'Lee, Ann "Annie"'
    assert (rows[1].line, rows[1].full_name) == (3, "two\nlines")
    assert rows[2].line == 5


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the roster is empty"),
        (" \n\r\n", "the roster is empty"),
        ("username,full_name\n", "header row but no users"),
        ("full_name,email\nAnn,a@b.c\n", "line 1: the header has no username column"),
        ("username,phone,Shoe Size\nann,1,2\n", "unknown column(s): 'phone', 'Shoe Size'"),
        ("ann,Ann Lee\n", "line 1 must be a header row"),
        ("username,,email\n", "line 1: column 2 of the header row has no name"),
        ("username,User Name\n", "the column username appears more than once"),
        ('username,full_name\nann,"Ann\nbob,Bob\n', "not valid CSV (unexpected end of data)"),
        ('username,full_name\nann,"Ann"x\n', "line 2: not valid CSV"),
        ("username\nann\nbob,extra\n", "line 3 has 2 fields but the header has 1"),
        ("username\nann\x00\n", "line 2: not a CSV text file"),
        ("username\n" + "a" * (MAX_LINE_CHARS + 1) + "\n", "line 2 is too long"),
        ("username\n" + "u\n" * (MAX_ROWS + 1), f"more than {MAX_ROWS} rows (line {MAX_ROWS + 2})"),
    ],
)
def test_parse_refuses_structural_problems(text: str, fragment: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_roster(text)
    assert fragment in raised.value.message
    assert len(raised.value.message) < 300


def test_parse_takes_exactly_the_row_limit() -> None:
    rows = parse_roster("username\n" + "".join(f"u{i}\n" for i in range(MAX_ROWS)))
    assert len(rows) == MAX_ROWS


# --- the API --------------------------------------------------------------------------


async def test_dry_run_changes_nothing(hub: RunningHub) -> None:
    before = await api_state(hub)
    r = await post_roster(hub, ROSTER)
    assert r.status == 200, r.body
    plan = r.json()
    assert plan["applied"] is False
    assert plan["summary"] == {"create": 3, "update": 0, "unchanged": 0, "error": 0}
    assert plan["groups_created"] == ["physics-101", "lab-a"]
    ann, bob, carl = plan["rows"]
    assert ann == {
        "line": 2,
        "username": "ann",
        "action": "create",
        "changes": [
            "create user",
            "full name: '' -> 'Ann Lee'",
            "email: '' -> 'ann@example.org'",
            "create group physics-101",
            "add to group physics-101",
            "create group lab-a",
            "add to group lab-a",
        ],
        "message": "new user",
    }
    assert bob["username"] == "bob"  # normalised as at login
    assert bob["changes"] == [
        "create user",
        "full name: '' -> 'Bob Stone'",
        "add to group physics-101",
    ]
    assert carl["changes"] == ["create user"]
    assert await api_state(hub) == before
    assert await audit_events(hub, "roster.import") == []


async def test_apply_creates_users_groups_and_audit(hub: RunningHub) -> None:
    r = await post_roster(hub, ROSTER, "?apply=true")
    assert r.status == 200, r.body
    result = r.json()
    assert result["applied"] is True
    assert result["summary"] == {"create": 3, "update": 0, "unchanged": 0, "error": 0}
    ann = (await hub.api("GET", "/users/ann")).json()
    assert ann["user_info"] == {"full_name": "Ann Lee", "email": "ann@example.org"}
    assert ann["groups"] == ["lab-a", "physics-101"]
    assert ann["admin"] is False
    bob = (await hub.api("GET", "/users/bob")).json()
    assert bob["user_info"] == {"full_name": "Bob Stone", "email": ""}
    carl = (await hub.api("GET", "/users/carl")).json()
    assert carl["user_info"] is None
    assert carl["groups"] == []
    physics = (await hub.api("GET", "/groups/physics-101")).json()
    assert physics["users"] == ["ann", "bob"]

    events = await audit_events(hub, "roster.import")
    assert [(actor, target) for actor, target, _ in events] == [
        ("admin", "ann"),
        ("admin", "bob"),
        ("admin", "carl"),
    ]
    assert events[0][2]["line"] == 2
    assert "create user" in events[0][2]["changes"]
    created = await audit_events(hub, "group.create")
    assert [t for _, t, _ in created] == ["physics-101", "lab-a"]

    # the same file again changes nothing, and records nothing
    again = (await post_roster(hub, ROSTER, "?apply=true")).json()
    assert again["summary"] == {"create": 0, "update": 0, "unchanged": 3, "error": 0}
    assert {row["message"] for row in again["rows"]} == {"already up to date"}
    assert again["groups_created"] == []
    assert len(await audit_events(hub, "roster.import")) == 3


async def test_updates_add_and_never_remove(hub: RunningHub) -> None:
    await post_roster(hub, ROSTER, "?apply=true")
    update = "username,full_name,email,groups\nann,,ann@new.example,lab-b\nbob,Robert Stone,,\n"
    r = await post_roster(hub, update, "?apply=true")
    assert r.status == 200, r.body
    ann, bob = r.json()["rows"]
    assert ann["action"] == "update"
    assert ann["changes"] == [
        "email: 'ann@example.org' -> 'ann@new.example'",
        "create group lab-b",
        "add to group lab-b",
    ]
    assert ann["message"] == "3 changes"
    assert bob["changes"] == ["full name: 'Bob Stone' -> 'Robert Stone'"]
    model = (await hub.api("GET", "/users/ann")).json()
    # an empty cell leaves the full name, and groups not listed stay
    assert model["user_info"] == {"full_name": "Ann Lee", "email": "ann@new.example"}
    assert model["groups"] == ["lab-a", "lab-b", "physics-101"]
    assert (await hub.api("GET", "/users/bob")).json()["groups"] == ["physics-101"]


async def test_row_errors_are_reported_and_the_rest_applied(hub: RunningHub) -> None:
    text = (
        "username,full_name,email,groups\n"
        "ann,Ann,,g1\n"
        "a/b,Slash,,\n"
        "ANN,Ann again,,\n"
        "cid,Cid,not-an-email,\n"
        "dee,Dee,d@e@f,\n"
        "eve,Eve,,bad group\n"
        "fay,Fay\tTab,,\n"
        "gus,Gus,gus@example.org,g1\n"
        "," + "x" * 200 + ",,\n"
    )
    r = await post_roster(hub, text, "?apply=true")
    assert r.status == 200, r.body
    result = r.json()
    reports = {row["line"]: row for row in result["rows"]}
    assert result["summary"] == {"create": 2, "update": 0, "unchanged": 0, "error": 7}
    assert reports[2]["action"] == reports[9]["action"] == "create"
    expected = {
        3: "invalid username 'a/b': character '/' is not allowed",
        4: "ann is already on line 2",
        5: "email 'not-an-email' must contain exactly one @",
        6: "email 'd@e@f' must contain exactly one @",
        7: "invalid group name 'bad group': character",
        8: "full name must not contain control characters",
        10: "username must not be empty",
    }
    for line, fragment in expected.items():
        assert reports[line]["action"] == "error"
        assert fragment in reports[line]["message"], reports[line]
        assert reports[line]["changes"] == []
    names = {u["name"] for u in (await hub.api("GET", "/users")).json()}
    assert names == {"admin", "ann", "gus"}
    assert (await hub.api("GET", "/users/ann")).json()["user_info"]["full_name"] == "Ann"
    assert [t for _, t, _ in await audit_events(hub, "roster.import")] == ["ann", "gus"]


async def test_skip_errors_false_applies_nothing(hub: RunningHub) -> None:
    before = await api_state(hub)
    text = "username,groups\nann,g1\na/b,\n"
    r = await post_roster(hub, text, "?apply=true&skip_errors=false")
    assert r.status == 200, r.body
    assert r.json()["applied"] is False
    assert r.json()["summary"]["error"] == 1
    assert await api_state(hub) == before
    r = await post_roster(hub, "username,groups\nann,g1\n", "?apply=true&skip_errors=false")
    assert r.json()["applied"] is True
    assert (await hub.api("GET", "/users/ann")).json()["groups"] == ["g1"]


async def test_names_are_stored_as_given_and_returned_as_json(hub: RunningHub) -> None:
    names = {
        "ann": "<script>alert(1)</script>",
        "bob": 'O\'Brien "Bobby"',
        "cid": "\u202eevil\u202c \u05d3\u05e0\u05d4",
        "dee": "Zoë Ünal 山田",
    }
    lines = ["username,full_name"]
    for user, full in names.items():
        lines.append(f'{user},"{full.replace(chr(34), chr(34) * 2)}"')
    r = await post_roster(hub, "\n".join(lines) + "\n", "?apply=true")
    assert r.status == 200, r.body
    assert r.headers["Content-Type"].startswith("application/json")
    # served as JSON that no browser may sniff into a page ...
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.json()["summary"]["create"] == 4
    for user, full in names.items():
        model = (await hub.api("GET", f"/users/{user}")).json()
        assert model["user_info"]["full_name"] == full  # ... and stored exactly as given
    cid = next(row for row in r.json()["rows"] if row["username"] == "cid")
    # the change is shown with the direction marks escaped
    assert "\\u202e" in cid["changes"][1]


async def test_json_body_and_curl_defaults(hub: RunningHub) -> None:
    r = await hub.api("POST", "/roster", {"csv": "username\nann\n"})
    assert r.status == 200, r.body
    assert r.json()["rows"][0]["action"] == "create"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = await hub.api("POST", "/roster?apply=1", raw=b"username\nann\n", headers=form)
    assert r.status == 200, r.body
    assert r.json()["applied"] is True
    r = await hub.api(
        "POST", "/roster", raw=b'{"csv": "username\\nann\\n"}',
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert r.json()["rows"][0]["action"] == "unchanged"


async def test_bad_rosters_are_400_and_change_nothing(hub: RunningHub) -> None:
    await hub.add_user("ann")
    too_many = "username\n" + "".join(f"u{i}\n" for i in range(MAX_ROWS + 1))
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/roster?apply=true", b"", 400, "the roster is empty"),
        ("POST", "/roster?apply=true", b"username,phone\nbob,1\n", 400, "unknown column(s)"),
        ("POST", "/roster?apply=true", b'username\n"bob\n', 400, "not valid CSV"),
        ("POST", "/roster?apply=true", b"username\nbob,x\n", 400, "line 2 has 2 fields"),
        (
            "POST",
            "/roster?apply=true",
            b"username\nbob\xff\n",
            400,
            "line 2: the roster is not UTF-8",
        ),
        ("POST", "/roster?apply=true", too_many.encode(), 400, "more than 10000 rows"),
        ("POST", "/roster?apply=true", {"csv": 5}, 400, "csv must be the roster's text"),
        ("POST", "/roster?apply=true", {"csv": "username\nbob\n", "x": 1}, 400, "unknown field"),
        ("POST", "/roster?apply=true", {"csv": "username\nbob\x00\n"}, 400, "NUL"),
        ("POST", "/roster?apply=true", b"{not json", 400, "not valid JSON"),
        ("POST", "/roster?apply=true", [1], 400, "line 1 must be a header row"),
    ]
    await assert_bad_inputs_change_nothing(hub, cases)
    before = await api_state(hub)
    for headers, fragment in [
        ({"Content-Type": "multipart/form-data; boundary=x"}, "send the roster as text/csv"),
        ({"Content-Type": "text/csv; charset=latin-1"}, "must be UTF-8, not latin-1"),
    ]:
        r = await hub.api("POST", "/roster?apply=true", raw=b"username\nbob\n", headers=headers)
        expect_error(r, 400, fragment)
    assert await api_state(hub) == before


async def test_who_may_import(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        config="c.Hub.load_roles = [\n"
        "  {'name': 'users-only', 'scopes': ['admin:users']},\n"
        "  {'name': 'registrar', 'scopes': ['admin:users', 'admin:groups']},\n"
        "]\n"
    )
    for name in ("pat", "uma", "reg"):
        await hub.add_user(name)

    def grant(session: Session) -> None:
        for user_name, role_name in (("uma", "users-only"), ("reg", "registrar")):
            user = session.scalar(select(User).where(User.name == user_name))
            role = session.scalar(select(Role).where(Role.name == role_name))
            assert user is not None
            assert role is not None
            user.roles.append(role)

    await hub.db.run(grant)
    pat = await hub.token_for("pat")
    uma = await hub.token_for("uma")
    # a token without the scopes, even an admin's, cannot import either
    narrow = await hub.token_for("admin", scopes=["admin:users"])
    before = await api_state(hub)
    text = "username,full_name,groups\nzed,Zed,g\n"
    expect_error(await post_roster(hub, text, "?apply=true", token=pat), 403, "requires any of")
    expect_error(
        await post_roster(hub, text, "?apply=true", token=uma), 403, "admin:users and admin:groups"
    )
    expect_error(await post_roster(hub, text, token=narrow), 403, "admin:groups")
    expect_error(await hub.api("POST", "/roster", raw=text.encode(), token=None), 403)
    assert await api_state(hub) == before

    # a registrar may import, but not change an admin
    reg = await hub.token_for("reg")
    admin_row = text + "admin,The Boss,\n"
    r = await post_roster(hub, admin_row, "?apply=true", token=reg)
    assert r.status == 200, r.body
    zed, boss = r.json()["rows"]
    assert zed["action"] == "create"
    assert boss["action"] == "error"
    assert "only admins can modify admins" in boss["message"]
    assert (await hub.api("GET", "/users/admin")).json()["user_info"] is None
    # listing an admin who needs no change is fine
    r = await post_roster(hub, "username\nadmin\n", token=reg)
    assert r.json()["rows"][0]["action"] == "unchanged"
