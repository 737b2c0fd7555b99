"""Logging for the hub and the CLI: text or one JSON object per line, secrets scrubbed.

`setup_logging` installs a handler on the root logger. Every record passes a
`RedactingFilter` which removes token, password and cookie values, whatever
code logged them, so a careless log call cannot leak a credential.
`bounded` shortens and escapes user-supplied strings before they reach a log.
"""

from __future__ import annotations

import datetime
import logging
import re
import sys
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]

# Patterns for secrets that may appear inside log messages.
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization: token abc / bearer abc / Basic abc
    (re.compile(r"(?i)\b(token|bearer|basic)(\s{1,8})[A-Za-z0-9._~+/=-]{6,}"), r"\1\2[secret]"),
    # token=abc, password=abc, cookie values, in query strings, JSON or reprs
    (
        re.compile(
            r"(?i)([\"']?(?:api_token|token|access_token|refresh_token|password|secret|"
            r"client_secret|code|auth|cookie|set-cookie)[\"']?\s*[=:]\s*[\"']?)"
            r"[^\"'&\s,;}]{3,}"
        ),
        r"\1[secret]",
    ),
    # database URLs with a password: scheme://user:password@host
    # (bounded repeats keep every pattern linear in the length of the text)
    (
        re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^:/@\s]{1,256}:)[^@\s]{1,512}@"),
        r"\1[secret]@",
    ),
]


def redact(text: str) -> str:
    """Remove secret values from a string meant for a log."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def bounded(value: object, limit: int = 80) -> str:
    """A user-supplied value made safe for a log line: printable and short."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    if len(text) > limit:
        text = f"{text[:limit]}…(+{len(text) - limit} chars)"
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with secrets removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # exception text is formatted later; scrub its args too
            exc = record.exc_info[1]
            exc.args = tuple(redact(str(a)) if isinstance(a, str) else a for a in exc.args)
        record.msg = cleaned
        record.args = None
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("status", "method", "path", "duration_ms", "user", "request_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


TEXT_FORMAT = "[%(levelname)1.1s %(asctime)s.%(msecs)03d %(name)s] %(message)s"


def setup_logging(level: str | int = "INFO", fmt: LogFormat = "text") -> None:
    """Configure the root logger for the hub process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_atrium", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._atrium = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    # tornado's access log is replaced by our own request log line
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
