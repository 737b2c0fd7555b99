"""`hub-admin token create|list|revoke`.

A new token is printed once: alone on stdout (so `TOKEN=$(hub-admin token
create NAME)` works), with its details on stderr. Nothing else ever prints a
token; lists show token ids (`a12`), which is what `revoke` takes.
"""

from __future__ import annotations

import argparse
import re

from hub.cli.errors import UsageError
from hub.cli.output import clip, listed, printable, when
from hub.cli.parsing import SubParsers, nonempty, positive_int
from hub.cli.runtime import Runtime

TOKEN_ID = re.compile(r"[a-z]?[0-9]{1,18}")


def register(commands: SubParsers, parents: list[argparse.ArgumentParser]) -> None:
    noun = commands.add_parser(
        "token", parents=parents, help="create, list and revoke users' API tokens"
    )
    verbs = noun.add_subparsers(dest="verb", metavar="SUBCOMMAND", required=True)

    p = verbs.add_parser(
        "create",
        parents=parents,
        help="create an API token for a user (printed once)",
        description="Create an API token for USER. The token is printed once, alone on "
        "stdout (TOKEN=$(hub-admin token create USER) works); its id and scopes go to stderr. "
        "With --json, the whole token model, token included, goes to stdout.",
    )
    p.add_argument("user", type=nonempty, metavar="USER")
    p.add_argument("--note", help="what the token is for")
    p.add_argument(
        "--expires-in", type=positive_int, metavar="SECONDS", help="lifetime (default: none)"
    )
    p.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        metavar="SCOPE",
        help="a scope to grant, e.g. read:users; repeat for more (default: all of USER's)",
    )
    p.set_defaults(run=create_token)

    p = verbs.add_parser(
        "list", parents=parents, help="list a user's API tokens (not their values)"
    )
    p.add_argument("user", type=nonempty, metavar="USER")
    p.set_defaults(run=list_tokens)

    p = verbs.add_parser("revoke", parents=parents, help="revoke one of a user's API tokens")
    p.add_argument("user", type=nonempty, metavar="USER")
    p.add_argument("token_id", metavar="TOKEN_ID", help="the token's id, as `token list` shows")
    p.set_defaults(run=revoke_token)


def create_token(args: argparse.Namespace, rt: Runtime) -> None:
    model = rt.backend.create_token(args.user, args.note, args.expires_in, args.scopes)
    if rt.out.json_mode:
        rt.out.json(model)
        return
    rt.out.line(str(model.get("token", "")))
    rt.out.note(
        f"Created token {model.get('id')} for {model.get('user', args.user)} "
        f"(scopes: {listed(model.get('scopes'))}; "
        f"expires: {when(model.get('expires_at'), 'never')}). "
        "It is shown only this once."
    )


def list_tokens(args: argparse.Namespace, rt: Runtime) -> None:
    tokens = rt.backend.list_tokens(args.user)
    if rt.out.json_mode:
        rt.out.json(tokens)
        return
    if not tokens:
        rt.out.note(f"{printable(args.user)} has no API tokens.")
        return
    rt.out.table(
        ["ID", "NOTE", "SCOPES", "CREATED", "EXPIRES", "LAST USED"],
        [
            [
                t.get("id", "?"),
                t.get("note") or "-",
                clip(listed(t.get("scopes")), 40),
                when(t.get("created")),
                when(t.get("expires_at"), "never"),
                when(t.get("last_activity"), "never"),
            ]
            for t in tokens
        ],
    )


def revoke_token(args: argparse.Namespace, rt: Runtime) -> None:
    token_id: str = args.token_id.strip()
    if token_id.isdigit():
        token_id = f"a{token_id}"
    if not TOKEN_ID.fullmatch(token_id):
        # never echo it: it may be the token itself, pasted by mistake
        raise UsageError(
            "TOKEN_ID must be a token id such as a12, as `hub-admin token list USER` shows "
            "(not the token itself)"
        )
    rt.backend.revoke_token(args.user, token_id)
    if rt.out.json_mode:
        rt.out.json({"user": args.user, "id": token_id, "revoked": True})
    else:
        rt.out.line(f"Revoked token {token_id} of {args.user}.")
