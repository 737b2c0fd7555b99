"""Where `hub-admin` finds the hub and its token: flags, environment, config file.

Runs the real command against a running hub. A config file holding a token
(or a token file) that other users can read is refused, as ssh refuses such a
private key, and the token never appears in any output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunningHub
from tests.test_cli import clean_env, run_cli


def config(tmp_path: Path, text: str, mode: int = 0o600, name: str = "hub-admin.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """How settings are found does not depend on the database."""
    return sqlite_db_url


async def test_config_file_with_url_and_token(hub: RunningHub, tmp_path: Path) -> None:
    path = config(tmp_path, f'url = "{hub.url}"\ntoken = "{hub.admin_token}"\n')
    r = await run_cli("--json", "user", "show", "admin", env=clean_env(ATRIUM_CONFIG=str(path)))
    assert r.code == 0, r.err
    assert r.json()["name"] == "admin"


async def test_default_location_and_token_file(hub: RunningHub, tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    (home / "atrium").mkdir(parents=True)
    token_file = home / "atrium" / "token"
    token_file.write_text(hub.admin_token + "\n")
    token_file.chmod(0o600)
    # a config without a token may be readable by anyone
    config(home / "atrium", f'url = "{hub.url}"\ntoken_file = "token"\n', mode=0o644)
    env = clean_env(XDG_CONFIG_HOME=str(home))
    r = await run_cli("user", "show", "admin", env=env)
    assert r.code == 0, r.err

    token_file.chmod(0o640)
    r = await run_cli("user", "show", "admin", env=env)
    assert r.code == 2
    assert r.error == (
        f"hub-admin: error: the token file {token_file} holds an API token but other users "
        f"can read it (mode 0640); run `chmod 600 {token_file}`"
    )
    assert hub.admin_token not in r.out + r.err


async def test_precedence(hub: RunningHub, tmp_path: Path) -> None:
    path = config(tmp_path, f'url = "{hub.url}"\ntoken = "{hub.admin_token}"\n')
    wrong = "wrong-token-0123456789"
    # the environment's token wins over the file's, and the file still gives the URL
    env = clean_env(ATRIUM_CONFIG=str(path), ATRIUM_TOKEN=wrong)
    r = await run_cli("user", "show", "admin", env=env)
    assert r.code == 1
    assert "Missing or invalid credentials" in r.error
    assert wrong not in r.err
    # a flag wins over both
    r = await run_cli("--token", hub.admin_token, "user", "show", "admin", env=env)
    assert r.code == 0, r.err
    # the file's URL gives way to the environment's
    env = clean_env(ATRIUM_CONFIG=str(path), ATRIUM_URL="http://127.0.0.1:1/hub/")
    r = await run_cli("user", "show", "admin", env=env)
    assert r.code == 1
    assert "cannot reach the hub at http://127.0.0.1:1/hub/api" in r.error
    assert hub.admin_token not in r.out + r.err


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ('url = "http://h/"\ntoken = "{token}"\n', 0o644, "other users can read it (mode 0644)"),
        ('url = "http://h/"\ntoken = "{token}"\n', 0o604, "run `chmod 600 "),
        ('url = "http://h/\n', 0o600, "is not valid TOML"),
        ('url = "http://h/"\ntokn = "x"\n', 0o600, "unknown setting(s) tokn"),
        ("url = 5\n", 0o600, "url in the config file"),
        ('token = "{token}"\ntoken_file = "t"\n', 0o600, "sets both token and token_file"),
        ('url = "http://h/"\ntoken_file = "missing"\n', 0o600, "cannot read the token file"),
        ('url = "http://h/"\n', 0o600, "no API token: pass --token or set ATRIUM_TOKEN"),
        ('token = "{token}"\n', 0o600, "no hub to talk to"),
    ],
)
async def test_bad_config_files(tmp_path: Path, text: str, mode: int, message: str) -> None:
    secret = "config-secret-token-0123456789"
    path = config(tmp_path, text.replace("{token}", secret), mode)
    r = await run_cli("user", "list", env=clean_env(ATRIUM_CONFIG=str(path)))
    assert r.code == 2, r.err
    assert message in r.error
    assert str(path.parent) in r.error
    assert secret not in r.out + r.err


async def test_missing_explicit_config_and_offline_ignores_it(
    tmp_path: Path, sqlite_db_url: str
) -> None:
    missing = tmp_path / "nope.toml"
    r = await run_cli("user", "list", env=clean_env(ATRIUM_CONFIG=str(missing)))
    assert r.code == 2
    assert r.error == (
        f"hub-admin: error: cannot read the config file {missing}: No such file or directory"
    )
    # --db never reads the file
    r = await run_cli(
        "--db", sqlite_db_url, "user", "list", env=clean_env(ATRIUM_CONFIG=str(missing))
    )
    assert r.code == 0, r.err
