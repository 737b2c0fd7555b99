"""`hub-admin user list|add|remove|show|set-admin|rename|block|unblock|import|set-password`.

`import` (a class roster) lives in `hub.cli.roster`, `set-password` (native accounts)
in `hub.cli.signups`.
"""

from __future__ import annotations

import argparse

from hub.cli import roster, signups
from hub.cli.backend import USER_SORTS, USER_STATES, Model, UserListQuery
from hub.cli.errors import UsageError
from hub.cli.output import listed, printable, when, yes_no
from hub.cli.parsing import SubParsers, nonempty, nonnegative_int, positive_int
from hub.cli.runtime import Runtime

SORT_CHOICES = [*USER_SORTS, *(f"-{k}" for k in USER_SORTS)]


def register(commands: SubParsers, parents: list[argparse.ArgumentParser]) -> None:
    noun = commands.add_parser("user", parents=parents, help="list, add, remove and change users")
    verbs = noun.add_subparsers(dest="verb", metavar="SUBCOMMAND", required=True)

    p = verbs.add_parser("list", parents=parents, help="list users (every page by default)")
    p.add_argument("--state", choices=USER_STATES, help="only users whose servers are so")
    p.add_argument("--name-filter", metavar="TEXT", help="only names containing TEXT")
    p.add_argument(
        "--sort",
        choices=SORT_CHOICES,
        default="id",
        metavar="KEY",
        help="id, name, last_activity or server; reverse with a leading -, as in --sort=-name",
    )
    p.add_argument("--offset", type=nonnegative_int, default=0, help="skip this many users")
    p.add_argument("--limit", type=positive_int, help="show at most this many users")
    p.set_defaults(run=list_users)

    p = verbs.add_parser("add", parents=parents, help="create one or more users")
    p.add_argument("names", nargs="+", type=nonempty, metavar="NAME")
    p.add_argument("--admin", action="store_true", help="make them admins")
    p.set_defaults(run=add_users)

    p = verbs.add_parser(
        "remove",
        parents=parents,
        help="delete a user with their tokens (needs --yes)",
        description="Delete a user and their tokens. Their servers must be stopped first. "
        "There is no undo, so the command does nothing unless --yes is given.",
    )
    p.add_argument("name", type=nonempty, metavar="NAME")
    p.add_argument("--yes", action="store_true", help="confirm the removal")
    p.set_defaults(run=remove_user)

    p = verbs.add_parser("show", parents=parents, help="show one user")
    p.add_argument("name", type=nonempty, metavar="NAME")
    p.set_defaults(run=show_user)

    p = verbs.add_parser("set-admin", parents=parents, help="grant or take away admin rights")
    p.add_argument("name", type=nonempty, metavar="NAME")
    switch = p.add_mutually_exclusive_group(required=True)
    switch.add_argument("--on", dest="admin", action="store_true", help="make NAME an admin")
    switch.add_argument("--off", dest="admin", action="store_false", help="make NAME a user")
    p.set_defaults(run=set_admin)

    p = verbs.add_parser(
        "rename",
        parents=parents,
        help="give a user a new name",
        description="Rename a user; their tokens, groups and roles follow. A user whose "
        "server is running or starting cannot be renamed (its URL carries the name): "
        "stop it first.",
    )
    p.add_argument("name", type=nonempty, metavar="OLD")
    p.add_argument("new_name", type=nonempty, metavar="NEW")
    p.set_defaults(run=rename_user)

    p = verbs.add_parser(
        "block",
        parents=parents,
        help="block a user: log them out, disable their tokens, stop their servers",
        description="Block a user: they can no longer log in, every login of theirs ends, "
        "their API tokens stop working (until unblocked) and their servers are stopped. "
        "With --db, servers cannot be stopped (only the hub can): stop them with "
        "`hub-admin server stop --user NAME` through the hub.",
    )
    p.add_argument("name", type=nonempty, metavar="NAME")
    p.set_defaults(run=block_user, blocked=True)

    p = verbs.add_parser(
        "unblock",
        parents=parents,
        help="let a blocked user log in again",
        description="Unblock a user: they may log in again and their API tokens work "
        "again. Logins ended by the block stay ended.",
    )
    p.add_argument("name", type=nonempty, metavar="NAME")
    p.set_defaults(run=block_user, blocked=False)

    roster.register(verbs, parents)
    signups.register_user_verbs(verbs, parents)


def server_state(user: Model) -> str:
    """The default server's state, and how many named servers are active."""
    servers = user.get("servers")
    named = [k for k in servers if k] if isinstance(servers, dict) else []
    if user.get("server"):
        state = "ready"
    elif user.get("pending"):
        state = f"{printable(user['pending'])} pending"
    else:
        state = "-"
    if named:
        state += f" (+{len(named)} named)"
    return state


def list_users(args: argparse.Namespace, rt: Runtime) -> None:
    query = UserListQuery(
        state=args.state,
        name_filter=args.name_filter,
        sort=args.sort,
        offset=args.offset,
        limit=args.limit,
    )
    users = rt.backend.list_users(query)
    if rt.out.json_mode:
        rt.out.json(users)
        return
    if not users:
        rt.out.note("No users found.")
        return
    rt.out.table(
        ["NAME", "ADMIN", "SERVER", "LAST ACTIVITY", "GROUPS"],
        [
            [
                u.get("name", "?"),
                yes_no(u.get("admin")),
                server_state(u),
                when(u.get("last_activity")),
                listed(u.get("groups")),
            ]
            for u in users
        ],
    )


def add_users(args: argparse.Namespace, rt: Runtime) -> None:
    created = rt.backend.create_users(args.names, args.admin)
    if rt.out.json_mode:
        rt.out.json(created)
        return
    for user in created:
        role = "admin" if user.get("admin") else "user"
        rt.out.line(f"Created {role} {user.get('name')}.")
    from hub.names import normalize_username

    made = {u.get("name") for u in created}
    skipped = sorted({normalize_username(n) for n in args.names} - made)
    if skipped:
        rt.out.note(f"Already existed, left unchanged: {', '.join(skipped)}")


def remove_user(args: argparse.Namespace, rt: Runtime) -> None:
    if not args.yes:
        raise UsageError(
            f"removing {args.name} deletes the user and their tokens for good; add --yes to confirm"
        )
    rt.backend.delete_user(args.name)
    if rt.out.json_mode:
        rt.out.json({"name": args.name, "removed": True})
    else:
        rt.out.line(f"Removed user {args.name}.")


def show_user(args: argparse.Namespace, rt: Runtime) -> None:
    user = rt.backend.get_user(args.name)
    if rt.out.json_mode:
        rt.out.json(user)
        return
    raw_info = user.get("user_info")
    info: Model = raw_info if isinstance(raw_info, dict) else {}
    pairs: list[tuple[str, object]] = [
        ("name", user.get("name", args.name)),
        ("full name", info.get("full_name") or "-"),
        ("email", info.get("email") or "-"),
        ("admin", yes_no(user.get("admin"))),
        ("blocked", yes_no(user.get("blocked"))),
        ("roles", listed(user.get("roles"))),
        ("groups", listed(user.get("groups"))),
        ("created", when(user.get("created"))),
        ("last activity", when(user.get("last_activity"))),
        ("server", server_state(user)),
    ]
    servers = user.get("servers")
    if isinstance(servers, dict):
        for name, server in sorted(servers.items()):
            label = f"server {name!r}" if name else "default server"
            pairs.append((label, _describe_server(server)))
    rt.out.fields(pairs)


def _describe_server(server: object) -> str:
    if not isinstance(server, dict):
        return "?"
    if server.get("ready"):
        state = "ready"
    elif server.get("pending"):
        state = f"{server['pending']} pending"
    else:
        state = "stopped"
    return f"{state}, {server.get('url', '')}, last activity {when(server.get('last_activity'))}"


def set_admin(args: argparse.Namespace, rt: Runtime) -> None:
    user = rt.backend.update_user(args.name, {"admin": args.admin})
    if rt.out.json_mode:
        rt.out.json(user)
        return
    name = user.get("name", args.name)
    rt.out.line(f"{name} is now an admin." if user.get("admin") else f"{name} is not an admin.")


def rename_user(args: argparse.Namespace, rt: Runtime) -> None:
    user = rt.backend.update_user(args.name, {"name": args.new_name})
    if rt.out.json_mode:
        rt.out.json(user)
        return
    rt.out.line(f"Renamed {args.name} to {user.get('name', args.new_name)}.")


def block_user(args: argparse.Namespace, rt: Runtime) -> None:
    user = rt.backend.update_user(args.name, {"blocked": args.blocked})
    name = str(user.get("name", args.name))
    raw_servers = user.get("servers")
    servers: Model = raw_servers if isinstance(raw_servers, dict) else {}
    running = sorted(servers)
    if rt.out.json_mode:
        rt.out.json(user)
    elif not args.blocked:
        rt.out.line(f"Unblocked {name}.")
    else:
        rt.out.line(f"Blocked {name}.")
    if args.blocked and running:
        shown = ", ".join(repr(s) if s else "the default server" for s in running)
        if rt.offline:
            rt.out.note(
                f"{name}'s servers are still running ({shown}): only the hub can stop them; "
                f"run `hub-admin server stop --user {name}` through the hub."
            )
        elif all(isinstance(s, dict) and s.get("pending") == "stop" for s in servers.values()):
            rt.out.note(f"{name}'s servers are still stopping ({shown}).")
        else:
            rt.out.note(f"{name}'s servers did not all stop ({shown}); see the hub's log.")
