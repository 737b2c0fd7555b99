"""Logs: text or JSON lines, and no token, password or cookie value ever in them."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from hub.log import JSONFormatter, RedactingFilter, bounded, redact
from tests.procs import AtriumProcess

SECRET = "f00dfeedcafe0123456789abcdef0123456789abcdef01"


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: token {SECRET}",
        f"Authorization: Bearer {SECRET}",
        f"GET /hub/api/users?token={SECRET}&x=1",
        f'{{"password": "{SECRET}"}}',
        f"password={SECRET}",
        f"client_secret={SECRET}",
        f"Cookie: atrium-session={SECRET}",
        f"postgresql://atrium:{SECRET}@db.example/atrium",
        f"{{'api_token': '{SECRET}'}}",
    ],
)
def test_redact_removes_secret_values(text: str) -> None:
    cleaned = redact(text)
    assert SECRET not in cleaned
    assert "[secret]" in cleaned


def test_redact_keeps_ordinary_text() -> None:
    text = "User ann started server ann/ in 1.2s"
    assert redact(text) == text


def test_bounded_escapes_and_shortens() -> None:
    assert bounded("a\nb\x1b[31m") == "a\\nb\\x1b[31m"
    assert bounded("\u202eevil") == "\\u202eevil"
    long = bounded("x" * 10_000)
    assert len(long) < 120
    assert long.endswith("(+9920 chars)")


def test_filter_scrubs_arguments_and_exceptions() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "token %s", (SECRET,), None)
    RedactingFilter().filter(record)
    assert SECRET not in record.getMessage()
    try:
        raise ValueError(f"bad password={SECRET}")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    RedactingFilter().filter(record)
    line = JSONFormatter().format(record)
    assert SECRET not in line
    entry = orjson.loads(line)
    assert entry["level"] == "error"
    assert "ValueError" in entry["exception"]


async def test_hub_logs_json_lines_without_secrets(tmp_path: Path) -> None:
    password = "correct-horse-battery-staple"
    hub = AtriumProcess(
        tmp_path,
        args=("--log-format", "json", "--log-level", "DEBUG"),
        env={"ATRIUM_ADMIN_PASSWORD": password},
    )
    await hub.start()
    client = AsyncHTTPClient()
    api = hub.url + "api"
    try:
        r = await client.fetch(
            HTTPRequest(
                f"{api}/users/admin/tokens",
                method="POST",
                body=orjson.dumps({"auth": {"username": "admin", "password": password}}),
            )
        )
        token = orjson.loads(r.body)["token"]
        await client.fetch(f"{api}/users", headers={"Authorization": f"token {token}"})
        await client.fetch(f"{api}/users?token={token}")
        bad = await client.fetch(
            HTTPRequest(
                f"{api}/users/admin/tokens",
                method="POST",
                body=orjson.dumps({"auth": {"username": "admin", "password": "wrong-" + password}}),
            ),
            raise_error=False,
        )
        assert bad.code == 403
        await client.fetch(
            f"{api}/users", headers={"Authorization": f"token not-a-{token}"}, raise_error=False
        )
    finally:
        assert await hub.stop() == 0
    lines = [line for line in hub.stderr.splitlines() if line.strip()]
    assert len(lines) >= 5
    entries = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    access = [e for e in entries if e["logger"] == "hub.access"]
    assert any(e.get("status") == 403 for e in access)
    assert any(e.get("path", "").startswith("/hub/api/users?token=[secret]") for e in access)
    assert token not in hub.stderr
    assert password not in hub.stderr
    assert re.search(r"[0-9a-f]{48}", hub.stderr) is None  # no token-shaped value at all
