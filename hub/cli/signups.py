"""`hub-admin signup list|approve|reject`, `hub-admin totp reset` and
`hub-admin user set-password`: native accounts.

Sign-up requests (from `/hub/signup`, with `c.NativeAuthenticator.enable_signup`)
wait for an admin: `approve` makes each named user with the password they
chose, `reject` deletes the request. `totp reset` turns off a user's two-step
login when they lost their authenticator app. Through a hub these call
`/hub/api/signups` and `/hub/api/users/NAME/totp`; with `--db` they run the same
units of work (`hub.auth.signups`, `hub.auth.totp`) on the database.

`user set-password NAME` gives a native account a password (a first one, or a
new one when it was forgotten) and ends the user's logins: typed twice at a
terminal, read from the first line of standard input otherwise, or made up with
`--generate` and printed once. It must pass the hub's password rules (offline:
the default rules, as the config file is not read).

`approve` and `reject` take several names; each is reported on its own line,
and the command exits with status 1 if any of them failed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from hub.cli.backend import PAGE_SIZE, Model
from hub.cli.errors import CLIError, UsageError
from hub.cli.output import when
from hub.cli.parsing import SubParsers, nonempty
from hub.cli.runtime import Runtime


def register(commands: SubParsers, parents: list[argparse.ArgumentParser]) -> None:
    noun = commands.add_parser(
        "signup",
        aliases=["signups"],
        parents=parents,
        help="list, approve and reject requests for native accounts",
    )
    verbs = noun.add_subparsers(dest="verb", metavar="SUBCOMMAND", required=True)
    p = verbs.add_parser(
        "list", parents=parents, help="list the sign-up requests waiting, oldest first"
    )
    p.set_defaults(run=list_signups)
    p = verbs.add_parser(
        "approve",
        parents=parents,
        help="approve requests: the users are made with the passwords they chose",
    )
    p.add_argument("names", nargs="+", type=nonempty, metavar="NAME")
    p.set_defaults(run=decide, approve=True)
    p = verbs.add_parser("reject", parents=parents, help="reject requests (they are deleted)")
    p.add_argument("names", nargs="+", type=nonempty, metavar="NAME")
    p.set_defaults(run=decide, approve=False)

    noun = commands.add_parser(
        "totp", parents=parents, help="reset a native user's two-step login (TOTP)"
    )
    verbs = noun.add_subparsers(dest="verb", metavar="SUBCOMMAND", required=True)
    p = verbs.add_parser(
        "reset",
        parents=parents,
        help="turn off a user's two-step login (a lost phone)",
        description="Turn off NAME's two-step login: their password alone logs them in "
        "until they turn it on again on their Two-step login page.",
    )
    p.add_argument("name", type=nonempty, metavar="NAME")
    p.set_defaults(run=reset_totp)


def register_user_verbs(verbs: SubParsers, parents: list[argparse.ArgumentParser]) -> None:
    """`hub-admin user set-password` (called by `hub.cli.users`)."""
    p = verbs.add_parser(
        "set-password",
        parents=parents,
        help="give a native account a password; their logins end",
        description="Give NAME a password (at least 10 characters by default, not a common "
        "one, not containing the name): typed twice at a terminal, else the first line of "
        "standard input, or --generate to make one up and print it once. Every login of "
        "NAME ends.",
    )
    p.add_argument("name", type=nonempty, metavar="NAME")
    p.add_argument("--generate", action="store_true", help="make up a password and print it")
    p.set_defaults(run=set_password)


def _read_password(generate: bool) -> str:
    import sys

    if generate:
        from hub.secrets_hash import new_password

        return new_password()
    if not sys.stdin.isatty():
        line = sys.stdin.readline(4096)
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        import getpass

        password = getpass.getpass("New password: ")
        if getpass.getpass("The same again: ") != password:
            raise UsageError("the two passwords are not the same")
    if not password:
        raise UsageError("no password given (type one, pipe one in, or use --generate)")
    return password


def set_password(args: argparse.Namespace, rt: Runtime) -> None:
    password = _read_password(args.generate)
    if rt.offline:
        from hub.auth import account
        from hub.auth.passwords import check_new_password
        from hub.errors import BadRequest
        from hub.names import validate_username
        from hub.secrets_hash import hash_password

        try:
            check_new_password(password, validate_username(args.name))
        except BadRequest as e:
            raise CLIError(e.message) from None
        _offline(rt, account.set_by_admin, args.name, hash_password(password), None)
    else:
        from hub.cli.rest import RestBackend

        backend = rt.backend
        assert isinstance(backend, RestBackend)
        backend.request("PUT", _path("/users/", args.name) + "/password", {"password": password})
    if rt.out.json_mode:
        shown = {"password": password} if args.generate else {}
        rt.out.json({"name": args.name, "password_set": True, **shown})
    elif args.generate:
        rt.out.line(password)
        rt.out.note(f"The password of {args.name} is set (shown once, above); their logins ended.")
    else:
        rt.out.line(f"The password of {args.name} is set; their logins ended.")


def _path(prefix: str, name: str) -> str:
    return prefix + quote(name, safe="")


def _offline(rt: Runtime, fn: Callable[..., Any], *args: Any) -> Any:
    from hub.cli.offline import OfflineBackend

    backend = rt.backend
    assert isinstance(backend, OfflineBackend)
    return backend._run(fn, backend.req, *args)


def _rest(rt: Runtime, method: str, path: str) -> Any:
    from hub.cli.rest import RestBackend

    backend = rt.backend
    assert isinstance(backend, RestBackend)
    return backend.request(method, path)[1]


def _all_requests(rt: Runtime) -> list[Model]:
    if rt.offline:
        from hub.auth.signups import list_requests

        items: list[Model] = []
        while True:
            page, total = _offline(rt, list_requests, len(items), PAGE_SIZE)
            items.extend(page)
            if not page or len(items) >= total:
                return items
    items = []
    while True:
        page = _rest(rt, "GET", f"/signups?offset={len(items)}&limit={PAGE_SIZE}")
        if not isinstance(page, list) or not all(isinstance(p, dict) for p in page):
            raise CLIError("the hub answered with something other than a list of objects")
        items.extend(page)
        if not page:
            return items


def list_signups(args: argparse.Namespace, rt: Runtime) -> None:
    items = _all_requests(rt)
    if rt.out.json_mode:
        rt.out.json(items)
        return
    if not items:
        rt.out.note("No sign-up request is waiting.")
        return
    rt.out.table(
        ["NAME", "FULL NAME", "EMAIL", "ASKED", "FROM"],
        [
            [
                r.get("name", "?"),
                r.get("full_name") or "-",
                r.get("email") or "-",
                when(r.get("created")),
                r.get("address") or "-",
            ]
            for r in items
        ],
    )


def _decide_one(rt: Runtime, name: str, approve: bool) -> None:
    if rt.offline:
        from hub.auth import signups

        if approve:
            _offline(rt, signups.approve, name, None)
        else:
            _offline(rt, signups.reject, name)
        return
    _rest(rt, "POST" if approve else "DELETE", _path("/signups/", name))


def decide(args: argparse.Namespace, rt: Runtime) -> None:
    failed: list[str] = []
    results: list[Model] = []
    for name in args.names:
        try:
            _decide_one(rt, name, args.approve)
        except CLIError as e:
            if len(args.names) == 1:
                raise
            rt.out.note(f"Could not {'approve' if args.approve else 'reject'} {name}: {e.message}")
            failed.append(name)
            results.append({"name": name, "done": False, "error": e.message})
            continue
        results.append({"name": name, "done": True})
        if not rt.out.json_mode:
            verb = "Approved" if args.approve else "Rejected"
            what = "the account is ready" if args.approve else "the request is deleted"
            rt.out.line(f"{verb} {name}: {what}.")
    if rt.out.json_mode:
        rt.out.json(results)
    if failed:
        raise CLIError(
            f"{len(failed)} of {len(args.names)} could not be decided: {', '.join(failed)}"
        )


def reset_totp(args: argparse.Namespace, rt: Runtime) -> None:
    if rt.offline:
        from hub.auth.totp import reset_by_admin

        _offline(rt, reset_by_admin, args.name)
    else:
        _rest(rt, "DELETE", _path("/users/", args.name) + "/totp")
    if rt.out.json_mode:
        rt.out.json({"name": args.name, "totp": False})
    else:
        rt.out.line(f"Two-step login is off for {args.name}; their password alone logs them in.")
