"""Command-line parsing shared by every command: the parser class, global options, types.

Usage errors raise `UsageError` (exit status 2, one line on stderr) instead of
argparse's usage dump. Global options (`--url`, `--token`, `--db`, `--json`,
`--timeout`) are accepted before or after the command words. The completion
script (`hub.cli.completion`) is generated from the parser these build.
"""

from __future__ import annotations

import argparse
from typing import NoReturn, TypeAlias

from hub.cli.errors import UsageError

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        words = self.prog.split(" ", 1)
        where = f"{words[1]}: " if len(words) > 1 else ""
        raise UsageError(f"{where}{message} (see `{self.prog} --help`)")


def global_options() -> argparse.ArgumentParser:
    """The options every command takes; SUPPRESS lets them appear at any level."""
    parent = Parser(add_help=False)
    group = parent.add_argument_group("connection and output")
    group.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="the hub's URL, e.g. http://127.0.0.1:8000/hub/ or its API URL "
        "(default: $ATRIUM_URL, then $JUPYTERHUB_API_URL)",
    )
    group.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="API token for the hub (default: $ATRIUM_TOKEN, then $JUPYTERHUB_API_TOKEN); "
        "prefer the variable, other local users can see command lines",
    )
    group.add_argument(
        "--db",
        metavar="DB_URL",
        default=argparse.SUPPRESS,
        help="work offline on this database (sqlite:///atrium.sqlite, postgresql://...) "
        "instead of through a running hub",
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help="seconds to wait for the hub (default: 30); for server start and stop, "
        "seconds each server may take to be ready or stopped (default: 300)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print results as JSON, for scripts",
    )
    return parent


def nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value
