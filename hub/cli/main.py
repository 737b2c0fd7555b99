"""The `hub-admin` entry point: build the parser, run one command, report failure in one line.

Exit status: 0 on success, 1 when the operation failed (the hub or database
refused it, or could not be reached), 2 for a usage error (unknown command,
missing or bad arguments, no hub or token configured, removal without --yes).
Errors are one line on stderr, `hub-admin: error: ...`, never a traceback and
never a credential.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from hub import __version__
from hub.cli import audit, completion, groups, servers, signups, tokens, users
from hub.cli.errors import CLIError
from hub.cli.output import PROG, Output
from hub.cli.parsing import Parser, global_options
from hub.cli.runtime import Runtime

# each noun module adds its subcommands; a new noun goes here
NOUNS: Sequence[Callable[..., None]] = (
    users.register,
    groups.register,
    servers.register,
    tokens.register,
    audit.register,
    signups.register,
    completion.register,
)

EPILOG = """\
Connect with --url and a token in ATRIUM_TOKEN (or --token, or url and token_file
in ~/.config/atrium/hub-admin.toml or $ATRIUM_CONFIG), or work on the database
directly with --db. Exit status: 0 done, 1 the operation failed, 2 the command
line was wrong. Run `hub-admin COMMAND SUBCOMMAND --help` for details.
"""


def build_parser() -> Parser:
    common = global_options()
    parser = Parser(
        prog=PROG,
        description="Manage an Atrium hub's users, groups, servers and API tokens.",
        epilog=EPILOG,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="noun", metavar="COMMAND", required=True)
    for register in NOUNS:
        register(commands, [common])
    return parser


def _scrub(message: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, "[secret]")
    return message


def main(argv: Sequence[str] | None = None) -> int:
    # library log records (e.g. the database layer's warnings) must not add lines to
    # the one-line errors; a handler on the root logger keeps logging's fallback quiet
    logging.getLogger().addHandler(logging.NullHandler())
    errors = Output()
    rt: Runtime | None = None
    try:
        args = build_parser().parse_args(argv)
        rt = Runtime(args)
        args.run(args, rt)
        sys.stdout.flush()
        return 0
    except CLIError as e:
        errors.error(_scrub(e.message, rt.secrets() if rt else _argv_secrets(argv)))
        return e.exit_code
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        errors.error("interrupted")
        return 130
    except BrokenPipeError:
        # the reader went away (`hub-admin user list | head`); say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as e:
        from hub.log import redact

        detail = redact(_scrub(str(e), rt.secrets() if rt else []))
        errors.error(f"unexpected {type(e).__name__}: {detail}")
        return 1
    finally:
        if rt is not None:
            # closing must not hide the command's result
            with contextlib.suppress(Exception):
                rt.close()


def _argv_secrets(argv: Sequence[str] | None) -> list[str]:
    """A --token value, for scrubbing errors raised before the arguments were parsed."""
    words = list(sys.argv[1:] if argv is None else argv)
    found = [w.split("=", 1)[1] for w in words if w.startswith("--token=")]
    found += [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--token"]
    env = [os.environ.get(n, "") for n in ("ATRIUM_TOKEN", "JUPYTERHUB_API_TOKEN")]
    return [s.strip() for s in [*found, *env] if len(s.strip()) >= 8]


if __name__ == "__main__":
    sys.exit(main())
