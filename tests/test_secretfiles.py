"""The cookie secret and proxy token: created private, reused, refused when exposed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub import secretfiles
from hub.errors import ConfigError
from tests.procs import AtriumProcess, run_atrium


def test_created_with_mode_0600_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(secretfiles.COOKIE_SECRET_ENV, raising=False)
    monkeypatch.delenv(secretfiles.PROXY_TOKEN_ENV, raising=False)
    cookie, proxy = tmp_path / "cookie", tmp_path / "proxy"
    first = secretfiles.load_secrets(cookie, proxy)
    assert cookie.stat().st_mode & 0o777 == 0o600
    assert proxy.stat().st_mode & 0o777 == 0o600
    assert len(first.cookie_secret) == 32
    assert first.proxy_token != first.cookie_secret.hex()
    assert secretfiles.load_secrets(cookie, proxy) == first


def test_environment_wins_over_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(secretfiles.COOKIE_SECRET_ENV, "ab" * 32)
    monkeypatch.setenv(secretfiles.PROXY_TOKEN_ENV, "proxy-token-from-env")
    got = secretfiles.load_secrets(tmp_path / "cookie", tmp_path / "proxy")
    assert got.cookie_secret == bytes.fromhex("ab" * 32)
    assert got.proxy_token == "proxy-token-from-env"
    assert not (tmp_path / "cookie").exists()


@pytest.mark.parametrize(
    ("value", "message"), [("not-hex!", "must be hex"), ("abcd", "at least 32 bytes")]
)
def test_bad_cookie_secret_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv(secretfiles.COOKIE_SECRET_ENV, value)
    with pytest.raises(ConfigError, match=message):
        secretfiles.load_secrets(tmp_path / "cookie", tmp_path / "proxy")


def test_empty_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(secretfiles.COOKIE_SECRET_ENV, raising=False)
    path = tmp_path / "cookie"
    path.write_text("")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is empty"):
        secretfiles.load_secrets(path, tmp_path / "proxy")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o666])
async def test_hub_refuses_a_secret_file_others_can_read(tmp_path: Path, mode: int) -> None:
    env = {secretfiles.COOKIE_SECRET_ENV: "", secretfiles.PROXY_TOKEN_ENV: ""}
    secret = tmp_path / "atrium_cookie_secret"
    secret.write_text("cd" * 32 + "\n")
    secret.chmod(mode)
    code, out, err = await run_atrium("--port", "0", cwd=tmp_path, env=env, timeout=30)
    assert code == 2
    assert "readable by group or others" in err
    assert f"chmod 600 {secret.name}" in err
    assert "cd" * 32 not in out + err  # the secret itself is never printed
    assert not (tmp_path / "atrium.sqlite").exists()


async def test_first_start_creates_private_files(tmp_path: Path) -> None:
    env = {secretfiles.COOKIE_SECRET_ENV: "", secretfiles.PROXY_TOKEN_ENV: ""}
    hub = AtriumProcess(tmp_path, env=env)
    await hub.start()
    try:
        for name in ("atrium_cookie_secret", "atrium_proxy_token", "atrium.sqlite"):
            mode = os.stat(tmp_path / name).st_mode & 0o777
            assert mode == 0o600, f"{name} has mode {mode:o}"
    finally:
        assert await hub.stop() == 0
    secret = (tmp_path / "atrium_cookie_secret").read_text().strip()
    assert secret not in hub.stdout + hub.stderr
