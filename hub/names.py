"""What counts as a valid user, group and server name.

Names end up in URLs (`/user/<name>/`), file paths, Kubernetes labels and HTML,
so the rules are strict: letters and digits of any script, plus `. _ - @ +`,
starting with a letter or digit. Usernames are normalised (NFKC, lower case)
so that `Ann` and `ann` are one person.
"""

from __future__ import annotations

import unicodedata

from hub.errors import BadRequest
from hub.log import bounded

MAX_NAME_LEN = 128
MAX_SERVER_NAME_LEN = 64
_NAME_PUNCT = frozenset("._-@+")
_SERVER_PUNCT = frozenset("._-")


def _quoted(text: str) -> str:
    """A name or character in quotes, so a space or a dot in it can be seen."""
    return f"'{bounded(text, 40)}'"


def _check(kind: str, value: object, punct: frozenset[str], limit: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{kind} must be a string")
    if not value:
        raise BadRequest(f"{kind} must not be empty")
    if len(value) > limit:
        raise BadRequest(f"{kind} is too long ({len(value)} characters, at most {limit})")
    if value in {".", ".."}:
        raise BadRequest(f"invalid {kind}: {value!r}")
    first = value[0]
    if not (first.isalnum()):
        raise BadRequest(f"invalid {kind} {_quoted(value)}: must start with a letter or digit")
    for ch in value:
        if ch in punct:
            continue
        category = unicodedata.category(ch)
        if category[0] in "LN" or (category[0] == "M" and ch != first):
            continue
        raise BadRequest(
            f"invalid {kind} {_quoted(value)}: character {_quoted(ch)} is not allowed "
            f"(use letters, digits and {' '.join(sorted(punct))})"
        )
    return value


def normalize_username(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest("username must be a string")
    return unicodedata.normalize("NFKC", value).lower()


def validate_username(value: object) -> str:
    """Normalise and check a username; BadRequest says what is wrong."""
    return _check("username", normalize_username(value), _NAME_PUNCT, MAX_NAME_LEN)


def validate_group_name(value: object) -> str:
    if isinstance(value, str):
        value = unicodedata.normalize("NFKC", value)
    return _check("group name", value, _NAME_PUNCT, MAX_NAME_LEN)


def validate_server_name(value: object) -> str:
    """Named servers appear in URLs: letters, digits and `. _ -` only."""
    if value == "":
        return ""
    return _check("server name", value, _SERVER_PUNCT, MAX_SERVER_NAME_LEN)
