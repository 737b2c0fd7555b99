"""`hub-admin user import ROSTER.csv`: create and update users from a class roster.

The roster is a CSV file with a header row naming its columns: `username`
(required), `full_name`, `email`, `groups` (separated by `;`); `-` reads it
from stdin. The format and the rules are in `hub.ops.roster`.

By default nothing changes: the command prints what importing would do, a
line per row, and a summary. `--apply` imports it, all or nothing: when any
row has an error, nothing is imported. `--apply --skip-errors` imports the
rows without errors and leaves the others out. Whenever a row has an error
the exit status is 1, so a script notices.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hub.cli.backend import Model
from hub.cli.errors import CLIError, UsageError
from hub.cli.parsing import SubParsers
from hub.cli.runtime import Runtime
from hub.errors import BadRequest

# far above any class roster; the hub refuses bodies over its own max_body_size
MAX_ROSTER_BYTES = 32 * 1024 * 1024


def register(verbs: SubParsers, parents: list[argparse.ArgumentParser]) -> None:
    p = verbs.add_parser(
        "import",
        parents=parents,
        help="create and update users from a CSV roster (a dry run unless --apply)",
        description="Create and update users, and add them to groups, from a CSV roster "
        "with a header row: username (required), full_name, email, groups (separated by ;). "
        "Users are never removed, made admins or taken out of groups. Without --apply this "
        "only prints what would change. --apply imports nothing if any row has an error, "
        "unless --skip-errors is given. Exit status 1 when any row has an error.",
    )
    p.add_argument("roster", metavar="ROSTER.csv", help="the roster file, or - for stdin")
    p.add_argument("--apply", action="store_true", help="import it (default: a dry run)")
    p.add_argument(
        "--skip-errors",
        action="store_true",
        help="with --apply, import the rows without errors even if other rows have some",
    )
    p.set_defaults(run=import_roster)


def read_roster(path: str) -> str:
    """The roster's text; a usage error if the file cannot be read, a failure if it
    is not UTF-8 text."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_ROSTER_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_ROSTER_BYTES + 1)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_ROSTER_BYTES:
        raise CLIError(f"{path} is larger than {MAX_ROSTER_BYTES // (1024 * 1024)} MiB")
    from hub.ops.roster import decode_roster

    try:
        return decode_roster(data)
    except BadRequest as e:
        raise CLIError(e.message) from None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _error_lines(rows: list[Model]) -> str:
    lines = [str(r.get("line", "?")) for r in rows if r.get("action") == "error"]
    shown = ", ".join(lines[:10]) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")
    return f"line{'s' if len(lines) != 1 else ''} {shown}"


def summary_line(result: Model) -> str:
    counts: dict[str, Any] = result.get("summary") or {}
    created = list(result.get("groups_created") or [])
    groups = f"; {_plural(len(created), 'new group')} ({', '.join(created)})" if created else ""
    errors = _plural(int(counts.get("error", 0)), "error")
    if result.get("applied"):
        return (
            f"Imported: {counts.get('create', 0)} created, {counts.get('update', 0)} updated, "
            f"{counts.get('unchanged', 0)} unchanged, {errors}{groups}."
        )
    return (
        f"Dry run: {counts.get('create', 0)} to create, {counts.get('update', 0)} to update, "
        f"{counts.get('unchanged', 0)} unchanged, {errors}{groups}."
    )


def import_roster(args: argparse.Namespace, rt: Runtime) -> None:
    if args.skip_errors and not args.apply:
        raise UsageError("--skip-errors only makes sense with --apply")
    text = read_roster(args.roster)
    from hub.cli.rest import HubError

    try:
        result = rt.backend.import_roster(text, args.apply, args.skip_errors)
    except HubError as e:
        if e.status == 413:
            raise CLIError(
                f"{e.message}; split the roster into smaller files, or raise the hub's "
                "c.Hub.max_body_size"
            ) from None
        raise
    rows: list[Model] = list(result.get("rows") or [])
    if rt.out.json_mode:
        rt.out.json(result)
    else:
        rt.out.table(
            ["LINE", "USER", "ACTION", "DETAILS"],
            [
                [
                    r.get("line", "?"),
                    r.get("username", ""),
                    r.get("action", "?"),
                    "; ".join(r.get("changes") or []) or r.get("message", ""),
                ]
                for r in rows
            ],
            clip_last=False,
        )
        rt.out.line(summary_line(result))
    errors = int((result.get("summary") or {}).get("error", 0))
    if not errors:
        if not args.apply and not rt.out.json_mode:
            rt.out.note("Nothing was changed: add --apply to import the roster.")
        return
    where = _error_lines(rows)
    have = f"{_plural(errors, 'row')} {'has' if errors == 1 else 'have'} errors ({where})"
    if not args.apply:
        raise CLIError(f"{have}; fix them, or import the other rows with --apply --skip-errors")
    if not result.get("applied"):
        raise CLIError(
            f"nothing was imported: {have}; fix them, or add --skip-errors to import the other rows"
        )
    raise CLIError(f"imported the other rows, but {have} and were left out")
