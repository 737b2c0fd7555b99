"""What the hub prints on its first start: where to log in, the admin's password once,
the admin panel and token page, and how to use hub-admin."""

from __future__ import annotations

import pytest

from hub.bootstrap import InitialAdmin
from hub.welcome import print_welcome

URL = "http://127.0.0.1:8000/hub/"


def test_first_start(capsys: pytest.CaptureFixture[str]) -> None:
    print_welcome(URL, InitialAdmin("admin", "pw-shown-once", created=True))
    out = capsys.readouterr().out
    assert f"Atrium is running at {URL}" in out
    assert "Password:    pw-shown-once    (shown only this once)" in out
    assert f"Log in:      {URL}login" in out
    assert f"Admin panel: {URL}admin" in out
    assert f"API token:   {URL}token" in out
    assert f"{URL}api/users/admin/tokens" in out
    assert f"--url {URL} --token TOKEN user list" in out


def test_configured_password_is_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    print_welcome(URL, InitialAdmin("admin", None, created=True))
    out = capsys.readouterr().out
    assert "Password:    the one you configured" in out


def test_later_starts_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    print_welcome(URL, InitialAdmin("admin", None, created=False))
    assert capsys.readouterr().out == ""
