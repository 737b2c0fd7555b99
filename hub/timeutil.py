"""UTC time helpers: naive UTC in the database, ISO 8601 with 'Z' on the wire."""

from __future__ import annotations

import datetime


def utcnow() -> datetime.datetime:
    """Now, as naive UTC (the form stored in the database)."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def isoformat(value: datetime.datetime | None) -> str | None:
    """JupyterHub's timestamp form: `2024-01-31T12:00:00.000000Z`."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: object) -> datetime.datetime:
    """Parse an ISO 8601 timestamp from a client into naive UTC.

    Raises ValueError with a message fit for the client.
    """
    if not isinstance(text, str) or not text or len(text) > 64:
        raise ValueError("timestamp must be an ISO 8601 string")
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {text[:64]!r}") from None
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value
