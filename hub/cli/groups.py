"""`hub-admin group list|show|create|delete|add|remove`.

Groups hold users (and roles, given in the hub's config). `add` and `remove`
change members; users must exist, and a user already in (or not in) the group
is fine. `delete` removes the group, never its users, and needs `--yes`.
"""

from __future__ import annotations

import argparse
import json

from hub.cli.errors import UsageError
from hub.cli.output import clip, listed, printable
from hub.cli.parsing import SubParsers, nonempty
from hub.cli.runtime import Runtime


def register(commands: SubParsers, parents: list[argparse.ArgumentParser]) -> None:
    noun = commands.add_parser(
        "group", parents=parents, help="list, create and delete groups; change their members"
    )
    verbs = noun.add_subparsers(dest="verb", metavar="SUBCOMMAND", required=True)

    p = verbs.add_parser("list", parents=parents, help="list groups with their members")
    p.set_defaults(run=list_groups)

    p = verbs.add_parser("show", parents=parents, help="show one group")
    p.add_argument("group", type=nonempty, metavar="GROUP")
    p.set_defaults(run=show_group)

    p = verbs.add_parser("create", parents=parents, help="create a group, with members if given")
    p.add_argument("group", type=nonempty, metavar="GROUP")
    p.add_argument("users", nargs="*", type=nonempty, metavar="USER", help="first members")
    p.set_defaults(run=create_group)

    p = verbs.add_parser(
        "delete",
        parents=parents,
        help="delete a group, not its users (needs --yes)",
        description="Delete a group. Its members stay users, but lose the roles the group "
        "gave them. There is no undo, so the command does nothing unless --yes is given.",
    )
    p.add_argument("group", type=nonempty, metavar="GROUP")
    p.add_argument("--yes", action="store_true", help="confirm the deletion")
    p.set_defaults(run=delete_group)

    p = verbs.add_parser("add", parents=parents, help="add users to a group")
    p.add_argument("group", type=nonempty, metavar="GROUP")
    p.add_argument("users", nargs="+", type=nonempty, metavar="USER")
    p.set_defaults(run=add_members)

    p = verbs.add_parser("remove", parents=parents, help="take users out of a group")
    p.add_argument("group", type=nonempty, metavar="GROUP")
    p.add_argument("users", nargs="+", type=nonempty, metavar="USER")
    p.set_defaults(run=remove_members)


def list_groups(args: argparse.Namespace, rt: Runtime) -> None:
    groups = rt.backend.list_groups()
    if rt.out.json_mode:
        rt.out.json(groups)
        return
    if not groups:
        rt.out.note("No groups found.")
        return
    rt.out.table(
        ["NAME", "MEMBERS", "USERS"],
        [[g.get("name", "?"), len(g.get("users") or []), listed(g.get("users"))] for g in groups],
    )


def show_group(args: argparse.Namespace, rt: Runtime) -> None:
    group = rt.backend.get_group(args.group)
    if rt.out.json_mode:
        rt.out.json(group)
        return
    users = group.get("users") or []
    properties = group.get("properties")
    rt.out.fields(
        [
            ("name", group.get("name", args.group)),
            ("members", len(users)),
            ("users", listed(users)),
            ("roles", listed(group.get("roles"))),
            (
                "properties",
                clip(printable(json.dumps(properties, sort_keys=True)), 200) if properties else "-",
            ),
        ]
    )


def create_group(args: argparse.Namespace, rt: Runtime) -> None:
    group = rt.backend.create_group(args.group, args.users)
    if rt.out.json_mode:
        rt.out.json(group)
        return
    members = group.get("users") or []
    with_members = f" with {len(members)} member{'s' if len(members) != 1 else ''}"
    rt.out.line(f"Created group {group.get('name', args.group)}{with_members if members else ''}.")


def delete_group(args: argparse.Namespace, rt: Runtime) -> None:
    if not args.yes:
        raise UsageError(
            f"deleting the group {args.group} cannot be undone (its users stay); "
            "add --yes to confirm"
        )
    rt.backend.delete_group(args.group)
    if rt.out.json_mode:
        rt.out.json({"name": args.group, "deleted": True})
    else:
        rt.out.line(f"Deleted group {args.group}.")


def _change(args: argparse.Namespace, rt: Runtime, add: bool) -> None:
    group = rt.backend.change_members(args.group, args.users, add)
    if rt.out.json_mode:
        rt.out.json(group)
        return
    name = group.get("name", args.group)
    members = group.get("users") or []
    count = f"{len(members)} member{'s' if len(members) != 1 else ''}"
    who = ", ".join(args.users)
    if add:
        rt.out.line(f"Added {who} to {name} (now {count}).")
    else:
        rt.out.line(f"Removed {who} from {name} (now {count}).")


def add_members(args: argparse.Namespace, rt: Runtime) -> None:
    _change(args, rt, add=True)


def remove_members(args: argparse.Namespace, rt: Runtime) -> None:
    _change(args, rt, add=False)
