"""What a native account's new password must be: long enough, not a common password,
not the username.

`check_new_password` is called wherever a native password is set: sign-up
(`hub.auth.native_pages`), a person changing their own, and an admin setting
one (`hub.ops.users.create_users`, `set_password`). Its `BadRequest` says what to
do instead, and becomes a 400 JSON error, a form error or a `hub-admin` message.

The common passwords are zxcvbn's list of the 30,000 most used ones (plus, if
configured, a file of the site's own, one a line), compared case-insensitively.
Following NIST SP 800-63B there are no composition rules (a digit, a symbol):
length and a block list do more for the same nuisance.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from hub.errors import BadRequest, ConfigError

# NIST SP 800-63B asks for at least 8 characters; 10 is taken because a hub password is
# often the only factor, and a stolen database is guessed offline. 15 (NIST's figure for
# single-factor passwords) is a lot to type on lab machines; sites can ask for it.
DEFAULT_MIN_LENGTH = 10
# bounds the hashing work and what a login form carries (hub.auth.login reads 1024)
MAX_LENGTH = 256
# shorter usernames are refused only as the whole password: "al" is in many good ones
MIN_NAME_IN_PASSWORD = 3
# a site's own list is read into memory: bounded
MAX_EXTRA_ENTRIES = 1_000_000


@functools.cache
def common_passwords() -> frozenset[str]:
    """zxcvbn's 30,000 most common passwords, lower case."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def load_extra_list(path: str) -> frozenset[str]:
    """A site's list of refused passwords, one a line ('' for none); ConfigError if the
    file cannot be read."""
    if not path:
        return frozenset()
    entries: set[str] = set()
    try:
        with Path(path).open(encoding="utf-8", errors="replace") as f:
            for line in f:
                word = line.strip()
                if word and not word.startswith("#"):
                    entries.add(_fold(word))
                    if len(entries) > MAX_EXTRA_ENTRIES:
                        raise ConfigError(
                            f"common_passwords_file {path} has more than "
                            f"{MAX_EXTRA_ENTRIES} entries"
                        )
    except OSError as e:
        raise ConfigError(f"common_passwords_file: cannot read {path}: {e.strerror or e}") from None
    return frozenset(entries)


@dataclass(frozen=True)
class PasswordRules:
    min_length: int = DEFAULT_MIN_LENGTH
    max_length: int = MAX_LENGTH
    extra_common: frozenset[str] = field(default_factory=frozenset)

    def problem(self, password: str, name: str) -> str | None:
        """Why `password` will not do for the account `name`, or None if it will."""
        if not isinstance(password, str) or not password:
            return "Choose a password."
        length = len(password)
        if length < self.min_length:
            return (
                f"The password is too short ({length} characters): use at least "
                f"{self.min_length}. A few unrelated words make a long password that is "
                "easy to remember."
            )
        if length > self.max_length:
            return f"The password is too long: use at most {self.max_length} characters."
        if any(ch in password for ch in "\x00\r\n"):
            return "The password cannot contain line breaks or NUL characters."
        folded = _fold(password)
        user = _fold(name.strip()) if name else ""
        if user and (folded == user or (len(user) >= MIN_NAME_IN_PASSWORD and user in folded)):
            return "The password must not contain the username. Choose something else."
        squeezed = folded.replace(" ", "")
        if folded in common_passwords() or squeezed in common_passwords():
            return (
                "This password is one of the most common ones and would be guessed "
                "quickly. Choose something less common."
            )
        if folded in self.extra_common or squeezed in self.extra_common:
            return "This password is on this hub's list of refused passwords. Choose another."
        return None


DEFAULT_RULES = PasswordRules()


def check_new_password(password: str, name: str, rules: PasswordRules | None = None) -> None:
    """BadRequest (saying what to do) unless `password` may be `name`'s new password."""
    problem = (rules or DEFAULT_RULES).problem(password, name)
    if problem is not None:
        raise BadRequest(problem)
