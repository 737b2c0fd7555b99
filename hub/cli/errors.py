"""The two ways a command fails, and the exit status each one gives."""

from __future__ import annotations


class CLIError(Exception):
    """An operation failed (the hub said no, or could not be reached): exit status 1."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class UsageError(CLIError):
    """The command line itself is wrong or incomplete: exit status 2."""

    exit_code = 2
