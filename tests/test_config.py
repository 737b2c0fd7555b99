"""Configuration: every setting documented and generated, files and flags, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config, PyFileConfigLoader

from hub.app import AtriumApp
from hub.command import configurable_classes
from tests.procs import run_atrium


def configurable_traits() -> list[tuple[str, str, str]]:
    """(class, trait, help) for every setting a config file can set."""
    out = []
    for cls in [AtriumApp, *configurable_classes()[1:]]:
        for name, trait in sorted(cls.class_traits(config=True).items()):
            owner = next(c for c in cls.__mro__ if name in c.__dict__)
            if owner.__module__.startswith("traitlets"):
                continue  # traitlets' own Application settings
            out.append((cls.__name__, name, trait.help))
    return out


def test_there_are_settings_to_check() -> None:
    names = {f"{c}.{t}" for c, t, _ in configurable_traits()}
    assert {"Hub.port", "Hub.db_url", "Hub.log_format", "Spawner.start_timeout"} <= names
    assert {"Authenticator.allowed_users", "NativeAuthenticator.admin_users"} <= names


@pytest.mark.parametrize(("cls", "name", "help_text"), configurable_traits())
def test_every_setting_has_help(cls: str, name: str, help_text: str) -> None:
    assert len(help_text or "") > 10, f"c.{cls}.{name} needs help text"


async def test_generate_config_lists_every_setting(tmp_path: Path) -> None:
    code, out, err = await run_atrium("generate-config", "--output", "-", cwd=tmp_path)
    assert code == 0, err
    for cls, name, _ in configurable_traits():
        assert f"# c.{cls}.{name} = " in out, f"c.{cls}.{name} missing from generate-config"


async def test_generated_config_loads_and_keeps_defaults(tmp_path: Path) -> None:
    code, out, err = await run_atrium("generate-config", cwd=tmp_path)
    assert code == 0, err
    assert "Wrote atrium_config.py" in out
    loaded = PyFileConfigLoader("atrium_config.py", path=str(tmp_path)).load_config()
    assert loaded == Config()  # everything is commented out
    code, out, err = await run_atrium("generate-config", cwd=tmp_path)
    assert code == 2
    assert "exists; use --force" in err
    code, out, err = await run_atrium("generate-config", "--force", cwd=tmp_path)
    assert code == 0, err


def test_config_file_then_flags_win(tmp_path: Path) -> None:
    (tmp_path / "c.py").write_text("c.Hub.port = 9100\nc.Hub.base_url = '/jh'\n")
    app = AtriumApp()
    app.initialize([f"--config={tmp_path / 'c.py'}", "--port=9200"])
    assert app.settings.port == 9200
    assert app.settings.base_url == "/jh/"


def test_db_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATRIUM_DB_URL", "postgresql://u:pw@db.example/atrium")
    monkeypatch.chdir(tmp_path)
    app = AtriumApp()
    app.initialize([])
    assert app.settings.db_url == "postgresql://u:pw@db.example/atrium"


BAD = [
    (["--port", "abc"], "expected an int"),
    (["--port", "70000"], "between 0 and 65535"),
    (["--base-url", "no-slash"], "must start with '/'"),
    (["--base-url", "/a b/"], "plain path"),
    (["--db", "mysql://u@h/d"], "use SQLite or PostgreSQL"),
    (["--db", "not a url"], "not a database URL"),
    (["--db", "sqlite://"], "an in-memory SQLite database would lose every user"),
    (["--db", "sqlite:///:memory:"], "an in-memory SQLite database would lose every user"),
    (["--log-format", "xml"], "'text', 'json'"),
    (["--log-level", "LOUD"], "log_level"),
    (["--Hub.db_pool_size=0"], "at least 1"),
    (["--Hub.slow_spawn_timeout=-1"], "must be positive"),
    (["--Hub.spawn_page_wait=-1"], "must be seconds in [0, 3600]"),
    (["--Hub.token_expires_in_max_seconds=-5"], "must not be negative"),
    (["--Hub.auth_cache_ttl=-1"], "must not be negative"),
    (["--Hub.prot=8000"], "did you mean c.Hub.port"),
    (["--Hub.proxy=nginx"], "proxy"),
    (["--Hub.concurrent_spawn_limit=-1"], "must not be negative"),
    (["--Hub.active_server_limit=-3"], "must not be negative"),
    (["--Hub.proxy_workers=65"], "proxy_workers must be between 0"),
    (["--Hub.proxy_workers=-1"], "proxy_workers must be between 0"),
    (["--Hub.proxy_api_url=ftp://x"], "proxy_api_url must be an http:// URL"),
    (["--Hub.hub_connect_url=hub:8081"], "hub_connect_url must be an http:// or https:// URL"),
    (["--Hub.hub_connect_url=http://hub:8081/hub/"], "without a path"),
    (["--Hub.proxy_api_url="], "c.Hub.proxy_api_url is empty"),
    (["--Hub.cookie_max_age_days=0"], "must be positive"),
    (["--Hub.csp_frame_ancestors='self'; script-src *"], "csp_frame_ancestors must be"),
    (["--Hub.spawner_class=no.such.Module"], "spawner_class"),
    (["--config", "missing.py"], "config file not found"),
    (["frobnicate"], "unexpected argument"),
    (["--bogus"], "--bogus"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
async def test_bad_settings_fail_with_one_clear_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    port = [] if "--port" in args else ["--port", "0"]
    code, out, err = await run_atrium(*port, *args, cwd=tmp_path, timeout=30)
    assert code != 0
    assert message in err
    assert "Traceback" not in out + err
    assert not (tmp_path / "atrium.sqlite").exists()  # nothing was created


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("c.Hub.port = \n", "SyntaxError"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("c.Hub.port = 'eighty'\n", "expected an int"),
        ("c.Hub.load_roles = [{'name': 'x', 'scopes': ['no:such:scope']}]\n", "unknown scope"),
        ("c.Hub.load_roles = [{'scopes': ['read:users']}]\n", "needs a name"),
        (
            "c.Hub.load_roles = [{'name': 'x', 'scopes': []}, {'name': 'x', 'scopes': []}]\n",
            "role 'x' is defined twice",
        ),
    ],
)
async def test_bad_config_files_fail_clearly(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "atrium_config.py").write_text("c.Hub.port = 0\n" + content)
    code, out, err = await run_atrium(cwd=tmp_path, timeout=30)
    assert code == 2
    assert message in err
    assert "Traceback" not in out + err


EXAMPLES = Path(__file__).resolve().parent.parent / "config"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_configs_load(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file in config/ loads, and its authenticators accept their settings."""
    from hub.auth.registry import load_authenticators

    monkeypatch.setenv("ATRIUM_OAUTH_CLIENT_SECRET", "example-secret")
    app = AtriumApp()
    app.initialize(
        [
            f"--AtriumApp.config_file={EXAMPLES / example}",
            f"--Hub.db_url=sqlite:///{tmp_path / 'example.sqlite'}",
        ]
    )
    auth = load_authenticators(
        app.settings.authenticator_specs(), app.config, app.settings.ip, b"k" * 32
    )
    assert auth.authenticators


def test_where_servers_reach_the_hub() -> None:
    from hub.app import hub_connect_url
    from hub.settings import Hub

    assert hub_connect_url(Hub(hub_ip="0.0.0.0"), 8081) == "http://127.0.0.1:8081"  # noqa: S104
    assert hub_connect_url(Hub(proxy="none", ip="10.1.2.3"), 8000) == "http://10.1.2.3:8000"
    pinned = Hub(hub_ip="0.0.0.0", hub_connect_url="http://hub:8081/")  # noqa: S104
    assert hub_connect_url(pinned, 8081) == "http://hub:8081"
