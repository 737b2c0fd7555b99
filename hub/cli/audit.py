"""`hub-admin audit`: the hub's audit log, newest first.

Filters: `--actor NAME`, `--action ACTION` (one action such as `user.create`,
or a noun's actions with a trailing dot: `user.`), `--target NAME`, `--since`
(an ISO 8601 time, or an age such as `30m`, `12h`, `7d`, `2w`), `--limit`.
Through the hub it needs the `read:audit` scope (admins have it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re

from hub.cli.backend import AuditQuery
from hub.cli.output import clip, printable, when
from hub.cli.parsing import SubParsers, nonempty, positive_int
from hub.cli.runtime import Runtime

DEFAULT_LIMIT = 50
AGE = re.compile(r"([0-9]{1,6})([mhdw])")
AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_value(text: str) -> str:
    """`--since`: an age (`7d`) or an ISO 8601 time, as an ISO time in UTC."""
    text = text.strip()
    age = AGE.fullmatch(text)
    now = datetime.datetime.now(datetime.UTC)
    if age:
        moment = now - datetime.timedelta(**{AGE_UNITS[age[2]]: int(age[1])})
    else:
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "must be a time such as 2024-09-01T08:00:00Z or an age such as 30m, 12h, 7d, 2w"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def register(commands: SubParsers, parents: list[argparse.ArgumentParser]) -> None:
    p = commands.add_parser(
        "audit",
        parents=parents,
        help="show the audit log (who changed what, newest first)",
        description="Show the hub's audit log, newest first: who created, changed, blocked "
        "or deleted users, groups, tokens and servers. Through the hub this needs the "
        "read:audit scope.",
    )
    p.add_argument("--actor", type=nonempty, metavar="NAME", help="only what NAME did")
    p.add_argument(
        "--action",
        type=nonempty,
        metavar="ACTION",
        help="only this action (user.create), or a noun's actions with a trailing dot (user.)",
    )
    p.add_argument("--target", type=nonempty, metavar="NAME", help="only what was done to NAME")
    p.add_argument(
        "--since",
        type=since_value,
        metavar="TIME",
        help="only events since TIME: 2024-09-01T08:00:00Z, or an age such as 12h or 7d",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIMIT,
        help=f"show at most this many events (default: {DEFAULT_LIMIT})",
    )
    p.set_defaults(run=show_audit)


def _details(details: object) -> str:
    if not details:
        return "-"
    text = json.dumps(details, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return clip(printable(text), 100)


def show_audit(args: argparse.Namespace, rt: Runtime) -> None:
    query = AuditQuery(
        actor=args.actor,
        action=args.action,
        target=args.target,
        since=args.since,
        limit=args.limit,
    )
    events = rt.backend.list_audit(query)
    if rt.out.json_mode:
        rt.out.json(events)
        return
    if not events:
        rt.out.note("No audit events found.")
        return
    rt.out.table(
        ["AT", "ACTOR", "ACTION", "TARGET", "DETAILS"],
        [
            [
                when(e.get("at")),
                e.get("actor", ""),
                e.get("action", ""),
                e.get("target") or "-",
                _details(e.get("details")),
            ]
            for e in events
        ],
        clip_last=False,
    )
