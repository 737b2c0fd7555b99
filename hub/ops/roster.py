"""Class roster import: create and update many users (and their groups) from a CSV file.

A roster is a CSV text with a header row. Columns (header case and spacing do
not matter, order does not matter): `username` (required), `full_name`,
`email`, `groups` (group names separated by `;`). For example::

    username,full_name,email,groups
    ann,Ann Lee,ann@example.org,physics-101;lab-a

`parse_roster` reads the text and refuses only structural problems (not CSV,
no username column, unknown columns, empty, too many rows, a line too long),
naming the line. Each row is then checked on its own: a row with a bad
username, email or group name, or a username already given on an earlier
line, is reported as an error and left out, while the other rows go ahead.

`plan_roster` reports what importing would do and changes nothing;
`apply_roster` does it in the caller's transaction. An import only ever adds:
missing users are created (never as admins), a full name or email given in the
file replaces a different one, users are added to the groups listed (missing
groups are created). Nothing is removed, and empty cells change nothing.

The REST handler (`hub.api.roster`), the admin panel's import page and
`hub-admin user import --db` all call these functions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from hub.db.models import Group, User, user_group_map
from hub.errors import BadRequest, Conflict, Forbidden
from hub.names import validate_group_name, validate_username
from hub.ops import audit, queries
from hub.ops.context import HubContext
from hub.rbac.access import Requester
from hub.rbac.scopes import ALL
from hub.timeutil import utcnow

COLUMNS = ("username", "full_name", "email", "groups")
MAX_ROWS = 10_000
MAX_LINE_CHARS = 8192
MAX_FULL_NAME_CHARS = 256
MAX_EMAIL_CHARS = 254  # the longest address SMTP can carry
MAX_GROUPS_PER_ROW = 100
GROUP_SEPARATOR = ";"
# names looked up per query (well under every database's bound-parameter limit)
_CHUNK = 500
REQUIRED_SCOPES = ("admin:users", "admin:groups")

Action = Literal["create", "update", "unchanged", "error"]


@dataclass(frozen=True)
class RosterRow:
    """One data row of a roster, as written in the file (cells stripped of spaces)."""

    line: int
    username: str
    full_name: str
    email: str
    groups: tuple[str, ...]


# --- parsing --------------------------------------------------------------------------


# other spellings spreadsheets use for the columns
ALIASES = {"user_name": "username", "fullname": "full_name", "e_mail": "email", "group": "groups"}


def column_key(header_cell: str) -> str:
    """`Full Name`, ` full-name ` and `FULL_NAME` all name the `full_name` column."""
    key = "_".join(header_cell.replace("-", " ").replace("_", " ").lower().split())
    return ALIASES.get(key, key)


def _quoted(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lines(text: str) -> Iterator[str]:
    """The physical lines of `text` (any line ending), refusing one that is too long."""
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        length = len(line.rstrip("\r\n"))
        if length > MAX_LINE_CHARS:
            raise BadRequest(
                f"line {number} is too long ({length} characters, at most {MAX_LINE_CHARS})"
            )
        yield line


def _header(cells: list[str], line: int) -> list[str]:
    keys = [column_key(c) for c in cells]
    for index, key in enumerate(keys, start=1):
        if not key:
            raise BadRequest(
                f"line {line}: column {index} of the header row has no name "
                f"(the columns are {', '.join(COLUMNS)})"
            )
    unknown = [cells[i].strip() for i, key in enumerate(keys) if key not in COLUMNS]
    if unknown:
        raise BadRequest(
            f"line {line} must be a header row naming the columns "
            f"({', '.join(COLUMNS)}); unknown column(s): "
            f"{', '.join(_quoted(u) for u in unknown[:10])}"
            + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        )
    for key in COLUMNS:
        if keys.count(key) > 1:
            raise BadRequest(f"line {line}: the column {key} appears more than once in the header")
    if "username" not in keys:
        raise BadRequest(
            f"line {line}: the header has no username column (found: {', '.join(keys)})"
        )
    return keys


def _split_groups(cell: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for part in cell.split(GROUP_SEPARATOR):
        name = part.strip()
        if name:
            seen.setdefault(name, None)
    return tuple(seen)


def decode_roster(data: bytes) -> str:
    """A roster file's bytes as text (UTF-8); BadRequest says what the file is instead."""
    if data.startswith(b"PK\x03\x04"):
        raise BadRequest(
            "this is a spreadsheet file (such as .xlsx), not CSV; "
            'save it as "CSV UTF-8" and try again'
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise BadRequest(
            f'line {line}: the roster is not UTF-8 text; save it as "CSV UTF-8" and try again'
        ) from None


def parse_roster(text: str) -> list[RosterRow]:
    """The data rows of a roster; BadRequest (naming the line) for structural problems."""
    if text.startswith("\ufeff"):
        text = text[1:]
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise BadRequest(f"line {line}: not a CSV text file (it contains NUL characters)")
    if not text.strip():
        raise BadRequest(
            "the roster is empty; it needs a header row naming its columns "
            f"({', '.join(COLUMNS)}) and a row per user"
        )
    reader = csv.reader(_lines(text), strict=True)
    keys: list[str] | None = None
    rows: list[RosterRow] = []
    last_line = 0
    try:
        for record in reader:
            first_line, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # blank lines (and rows of empty cells) are skipped
            if keys is None:
                keys = _header(record, first_line)
                continue
            if len(record) > len(keys):
                if any(cell.strip() for cell in record[len(keys) :]):
                    raise BadRequest(
                        f"line {first_line} has {len(record)} fields but the header has {len(keys)}"
                    )
                record = record[: len(keys)]
            if len(rows) >= MAX_ROWS:
                raise BadRequest(
                    f"the roster has more than {MAX_ROWS} rows (line {first_line}); "
                    "split it into smaller files"
                )
            cells = dict(zip(keys, (c.strip() for c in record), strict=False))
            rows.append(
                RosterRow(
                    line=first_line,
                    username=cells.get("username", ""),
                    full_name=cells.get("full_name", ""),
                    email=cells.get("email", ""),
                    groups=_split_groups(cells.get("groups", "")),
                )
            )
    except csv.Error as e:
        raise BadRequest(f"line {reader.line_num}: not valid CSV ({e})") from None
    if keys is None:
        raise BadRequest("the roster has no header row")
    if not rows:
        raise BadRequest("the roster has a header row but no users")
    return rows


# --- checking each row ----------------------------------------------------------------


def email_problem(email: str) -> str | None:
    """Why `email` is not a plausible address, or None. Only the shape is checked."""
    if len(email) > MAX_EMAIL_CHARS:
        return f"email is too long ({len(email)} characters, at most {MAX_EMAIL_CHARS})"
    if any(ch.isspace() or not ch.isprintable() for ch in email):
        return "email must not contain spaces or control characters"
    if email.count("@") != 1:
        return f"email {_quoted(email)} must contain exactly one @"
    local, domain = email.split("@")
    if not local or not domain:
        return f"email {_quoted(email)} needs a name before the @ and a domain after it"
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return f"email {_quoted(email)} has an invalid domain"
    return None


def full_name_problem(full_name: str) -> str | None:
    if len(full_name) > MAX_FULL_NAME_CHARS:
        return f"full name is too long ({len(full_name)} characters, at most {MAX_FULL_NAME_CHARS})"
    # format characters (right-to-left marks) belong in names; tabs and line breaks do not
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in full_name):
        return "full name must not contain control characters (tabs, line breaks)"
    return None


@dataclass(frozen=True)
class _Checked:
    row: RosterRow
    name: str = ""
    groups: tuple[str, ...] = ()
    error: str = ""


def _check(row: RosterRow, first_line: dict[str, int]) -> _Checked:
    try:
        name = validate_username(row.username)
    except BadRequest as e:
        return _Checked(row, error=e.message)
    if name in first_line:
        return _Checked(row, name, error=f"{name} is already on line {first_line[name]}")
    first_line[name] = row.line
    problem = full_name_problem(row.full_name) or (email_problem(row.email) if row.email else None)
    if problem:
        return _Checked(row, name, error=problem)
    if len(row.groups) > MAX_GROUPS_PER_ROW:
        return _Checked(row, name, error=f"at most {MAX_GROUPS_PER_ROW} groups per user")
    groups: dict[str, None] = {}
    for raw in row.groups:
        try:
            groups.setdefault(validate_group_name(raw), None)
        except BadRequest as e:
            return _Checked(row, name, error=e.message)
    return _Checked(row, name, tuple(groups))


# --- planning -------------------------------------------------------------------------


@dataclass
class _Plan:
    reports: list[dict[str, Any]] = field(default_factory=list)
    new_users: list[dict[str, Any]] = field(default_factory=list)
    # existing users' rows to change: (user, full_name, email)
    changed: list[tuple[User, str, str]] = field(default_factory=list)
    memberships: list[tuple[str, str]] = field(default_factory=list)  # (user, group)
    new_groups: list[str] = field(default_factory=list)
    group_ids: dict[str, int] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    # one audit event per changed user: (name, details)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def result(self, applied: bool) -> dict[str, Any]:
        summary = {"create": 0, "update": 0, "unchanged": 0, "error": 0}
        for report in self.reports:
            summary[report["action"]] += 1
        return {
            "applied": applied,
            "rows": self.reports,
            "summary": summary,
            "groups_created": list(self.new_groups),
        }


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _check_requester(req: Requester) -> None:
    if not all(req.parsed.get(s) == ALL for s in REQUIRED_SCOPES):
        raise Forbidden("Importing a roster needs the admin:users and admin:groups scopes")


def _report(checked: _Checked, action: Action, changes: list[str], message: str) -> dict[str, Any]:
    return {
        "line": checked.row.line,
        "username": checked.name or checked.row.username,
        "action": action,
        "changes": changes,
        "message": message,
    }


def _plan(session: Session, req: Requester, rows: Sequence[RosterRow]) -> _Plan:
    _check_requester(req)
    first_line: dict[str, int] = {}
    checked = [_check(row, first_line) for row in rows]
    names = [c.name for c in checked if not c.error]
    users: dict[str, User] = {}
    for chunk in _chunks(names):
        query = select(User).where(User.name.in_(chunk)).options(selectinload(User.groups))
        users.update((u.name, u) for u in session.scalars(query))
    wanted_groups = sorted({g for c in checked if not c.error for g in c.groups})
    plan = _Plan()
    for chunk in _chunks(wanted_groups):
        rows_found = session.execute(select(Group.id, Group.name).where(Group.name.in_(chunk)))
        plan.group_ids.update((name, gid) for gid, name in rows_found)
    plan.user_ids = {name: user.id for name, user in users.items()}
    planned_groups: set[str] = set()
    full_admin = req.is_full_admin()
    for c in checked:
        if c.error:
            plan.reports.append(_report(c, "error", [], c.error))
            continue
        row, user = c.row, users.get(c.name)
        current_groups = {g.name for g in user.groups} if user is not None else set()
        old_name = user.full_name if user is not None else ""
        old_email = user.email if user is not None else ""
        new_name = row.full_name if row.full_name and row.full_name != old_name else None
        new_email = row.email if row.email and row.email != old_email else None
        joins = [g for g in c.groups if g not in current_groups]
        changing = new_name is not None or new_email is not None or bool(joins)
        if user is not None and user.admin and changing and not full_admin:
            plan.reports.append(
                _report(c, "error", [], f"{c.name} is an admin; only admins can modify admins")
            )
            continue
        changes: list[str] = []
        if user is None:
            changes.append("create user")
        if new_name is not None:
            changes.append(f"full name: {_quoted(old_name, 300)} -> {_quoted(new_name, 300)}")
        if new_email is not None:
            changes.append(f"email: {_quoted(old_email, 300)} -> {_quoted(new_email, 300)}")
        for group in joins:
            if group not in plan.group_ids and group not in planned_groups:
                planned_groups.add(group)
                plan.new_groups.append(group)
                changes.append(f"create group {group}")
            changes.append(f"add to group {group}")
        if user is None:
            action: Action = "create"
            message = "new user"
            plan.new_users.append({"name": c.name, "full_name": row.full_name, "email": row.email})
        elif changes:
            action = "update"
            message = f"{len(changes)} change{'s' if len(changes) != 1 else ''}"
            plan.changed.append((user, new_name or old_name, new_email or old_email))
        else:
            action = "unchanged"
            message = "already up to date"
        plan.memberships.extend((c.name, g) for g in joins)
        if changes:
            plan.events.append((c.name, {"line": row.line, "changes": changes}))
        plan.reports.append(_report(c, action, changes, message))
    return plan


def _check_groups_editable(ctx: HubContext, rows: Sequence[RosterRow]) -> None:
    """A roster naming groups is refused when the identity provider manages them."""
    if any(row.groups for row in rows):
        ctx.check_membership_editable()


def plan_roster(
    session: Session, ctx: HubContext, req: Requester, rows: Sequence[RosterRow]
) -> dict[str, Any]:
    """What importing `rows` would do, row by row; changes nothing."""
    _check_groups_editable(ctx, rows)
    return _plan(session, req, rows).result(applied=False)


def apply_roster(
    session: Session, ctx: HubContext, req: Requester, rows: Sequence[RosterRow]
) -> dict[str, Any]:
    """Import `rows` in the caller's transaction (rows with errors are left out) and
    record one `roster.import` audit event per user changed."""
    _check_groups_editable(ctx, rows)
    plan = _plan(session, req, rows)
    try:
        _execute(session, req, plan)
    except IntegrityError:
        raise Conflict(
            "A user or group in the roster was created at the same time; import it again"
        ) from None
    return plan.result(applied=True)


def _execute(session: Session, req: Requester, plan: _Plan) -> None:
    now = utcnow()
    if plan.new_groups:
        made = [Group(name=name, properties={}) for name in plan.new_groups]
        session.add_all(made)
        session.flush()
        plan.group_ids.update((g.name, g.id) for g in made)
        audit.record_many(session, req.name, "group.create", plan.new_groups, source="roster")
    for user, full_name, email in plan.changed:
        user.full_name = full_name
        user.email = email
    session.flush()
    if plan.new_users:
        from hub.ops.users import new_cookie_id

        created = session.execute(
            insert(queries.users).returning(queries.users.c.id, queries.users.c.name),
            [
                {
                    **spec,
                    "admin": False,
                    "blocked": False,
                    "created": now,
                    "cookie_id": new_cookie_id(),
                    "password_hash": None,
                }
                for spec in plan.new_users
            ],
        ).all()
        plan.user_ids.update((name, uid) for uid, name in created)
    if plan.memberships:
        session.execute(
            insert(user_group_map),
            [
                {"user_id": plan.user_ids[user], "group_id": plan.group_ids[group]}
                for user, group in plan.memberships
            ],
        )
    audit.record_each(session, req.name, "roster.import", plan.events)


def import_roster(
    session: Session,
    ctx: HubContext,
    req: Requester,
    text: str,
    *,
    apply: bool = False,
    skip_errors: bool = True,
) -> dict[str, Any]:
    """Parse and plan, or apply, a roster in one unit of work.

    With `apply` and not `skip_errors`, nothing is applied when any row is an
    error (the answer is then the plan, with `applied` false).
    """
    rows = parse_roster(text)
    if not apply:
        return plan_roster(session, ctx, req, rows)
    if not skip_errors:
        preview = plan_roster(session, ctx, req, rows)
        if preview["summary"]["error"]:
            return preview
    return apply_roster(session, ctx, req, rows)
