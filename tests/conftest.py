"""Fixtures: databases (SQLite and a real PostgreSQL server) and a running hub.

With CI=true, a test group whose system part is missing (PostgreSQL) fails
instead of being skipped, so CI can never pass by silently testing less.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from hub.app import AtriumApp, shut_down, start_background
from hub.db.engine import Database
from hub.db.migrate import upgrade
from hub.ops import tokens as token_ops
from hub.ops import users as user_ops
from hub.ops.context import HubContext
from hub.rbac.access import Requester
from hub.state import HubState
from tests.pg import PostgresServer
from tests.proxyproc import ProxyProc
from tests.unixusers import UnixUsers
from tests.waits import eventually

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing_part(what: str) -> None:
    """Skip locally, fail in CI: a missing system part must never pass CI."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available", pytrace=False)
    pytest.skip(f"{what} not available")


@contextlib.contextmanager
def running_postgres(prefix: str, fast_stop: bool = False) -> Iterator[PostgresServer]:
    """A PostgreSQL server of our own, removed afterwards (missing binaries: a missing part)."""
    import tempfile

    # not under pytest's 0700 root-owned temp dir: the postgres user must reach it
    root = Path(tempfile.mkdtemp(prefix=prefix))
    server = PostgresServer(root)
    try:
        server.start()
    except FileNotFoundError as e:
        missing_part(f"PostgreSQL ({e})")
    try:
        yield server
    finally:
        server.stop(fast=fast_stop)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres("atrium-pg-") as server:
        template = server.create_database("atrium_template")
        db = Database(template)
        upgrade(db.engine)
        db.close()
        yield server


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    db.close()
    return path


@pytest.fixture
def sqlite_db_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh SQLite database at the current schema. Modules whose tests do not depend
    on the database backend use it as their `db_url`."""
    target = tmp_path / "atrium.sqlite"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


def behind_atrium_proxy(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """Hub settings for `hub_factory`: the built-in proxy on free ports, stopped with the
    hub, and the test spawner."""
    from tests.pg import free_port

    return {
        "proxy": "atrium",
        "proxy_cmd": [sys.executable, "-m", "hub.proxy", "--log-level=error"],
        "port": free_port(),
        "proxy_api_url": f"http://127.0.0.1:{free_port()}",
        "proxy_pid_file": str(tmp_path / "proxy.pid"),
        "proxy_stop_on_exit": True,
        "spawner_class": "tests.spawner.ProcessSpawner",
        **extra,
    }


_db_numbers = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the current schema, on each backend."""
    if request.param == "sqlite":
        target = tmp_path / "atrium.sqlite"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"t{os.getpid()}_{next(_db_numbers)}"
    from psycopg import connect

    with connect(server.admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE atrium_template')
    yield server.url(name)
    server.drop_database(name)


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


_DEFAULT = object()


@dataclass
class RunningHub:
    """A hub serving on a loopback port, with an admin token ready to use."""

    url: str  # http://127.0.0.1:PORT/hub/
    state: HubState
    admin_token: str
    app: AtriumApp
    _client: AsyncHTTPClient = field(default_factory=AsyncHTTPClient)

    @property
    def db(self) -> Database:
        return self.state.db

    @property
    def ctx(self) -> HubContext:
        return self.state.ctx

    async def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: Any = _DEFAULT,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Response:
        """Call `/hub/api<path>`; `body` is sent as JSON, `raw` as is."""
        all_headers = dict(headers or {})
        if token is _DEFAULT:
            token = self.admin_token
        if token is not None:
            all_headers.setdefault("Authorization", f"token {token}")
        payload = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        if payload is None and method in {"POST", "PUT", "PATCH"}:
            payload = b""
        request = HTTPRequest(
            self.url + "api" + path,
            method=method,
            headers=all_headers,
            body=payload,
            allow_nonstandard_methods=True,
            request_timeout=60,
        )
        r = await self._client.fetch(request, raise_error=False)
        return Response(r.code, r.body or b"", dict(r.headers))

    async def add_user(self, name: str, admin: bool = False, password: str | None = None) -> None:
        await self.db.run(user_ops.create_users, self.ctx, SYSTEM, [name], admin, password=password)

    async def token_for(self, name: str, scopes: list[str] | None = None, **body: Any) -> str:
        if scopes is not None:
            body["scopes"] = scopes
        model = await self.db.run(token_ops.create_token, self.ctx, None, name, body)
        return str(model["token"])


def _system_requester() -> Requester:
    from hub.rbac.roles import ADMIN_SCOPES

    return Requester.build("user", "system", 0, True, ADMIN_SCOPES)


SYSTEM = _system_requester()


def hub_argv(tmp_path: Path, db_url: str, **settings: Any) -> list[str]:
    # in-process hubs serve directly unless a test asks for a proxy
    settings.setdefault("proxy", "none")
    argv = [
        f"--Hub.db_url={db_url}",
        f"--Hub.cookie_secret_file={tmp_path / 'cookie_secret'}",
        f"--Hub.proxy_auth_token_file={tmp_path / 'proxy_token'}",
        "--Hub.initial_admin_password=admin-password-for-tests",
        f"--AtriumApp.config_file={tmp_path / 'hub_config.py'}",
        "--log-level=WARN",
    ]
    for key, value in settings.items():
        argv.append(f"--Hub.{key}={value}")
    return argv


def _ensure_test_admin(session: Any) -> None:
    from sqlalchemy import select

    from hub.db.models import User

    if session.scalar(select(User.id).where(User.name == "admin")) is None:
        session.add(User(name="admin", admin=True, cookie_id="test-admin-cookie"))


@dataclass
class HubFactory:
    tmp_path: Path
    db_url: str
    started: list[tuple[Any, HubState]] = field(default_factory=list)

    async def __call__(self, *, config: str = "", **settings: Any) -> RunningHub:
        """Start a hub; `settings` become `--Hub.key=value`, except lists and dicts (e.g.
        `load_roles=[...]`), which go to the config file as `c.Hub.key = ...` after
        `config`, the text of a config file (e.g. `c.ProcessSpawner.start_delay = 1`)."""
        from hub.web import listen

        structured = {k: v for k, v in settings.items() if isinstance(v, list | dict)}
        flags = {k: v for k, v in settings.items() if k not in structured}
        config += "".join(f"\nc.Hub.{k} = {v!r}\n" for k, v in structured.items())
        app = AtriumApp()
        # an explicit path that does not exist would be an error; an empty file is none
        (self.tmp_path / "hub_config.py").write_text(config)
        app.initialize(hub_argv(self.tmp_path, self.db_url, **flags))
        state, web_app, _admin = app.build()
        server, port = listen(
            web_app,
            "127.0.0.1",
            0,
            app.settings.max_body_size,
            # tests stand in for the proxy (X-Forwarded-Proto, X-Forwarded-For)
            behind_proxy=True,
            trusted_downstream=app.settings.trusted_downstream_ips,
        )
        self.started.append((server, state))
        state.orchestrator.hub_url = f"http://127.0.0.1:{port}"
        if state.proxy is not None:  # c.Hub.proxy set: start or adopt it, routes to this hub
            await state.proxy.start(f"http://127.0.0.1:{port}")
        start_background(state)  # the loop monitor, c.Culler, managed services
        # the first admin is a native account; hubs without native logins get one here
        # so that every test has an admin token
        await state.db.run(_ensure_test_admin)
        model = await state.db.run(token_ops.create_token, state.ctx, None, "admin", {})
        return RunningHub(
            f"http://127.0.0.1:{port}{app.settings.base_url}hub/", state, model["token"], app
        )

    async def close(self) -> None:
        for server, state in self.started:
            # user servers a test left running are stopped, so no process outlives its test
            await shut_down(server, state, stop_servers=True)


@pytest.fixture
async def hub_factory(tmp_path: Path, db_url: str) -> AsyncIterator[HubFactory]:
    factory = HubFactory(tmp_path, db_url)
    yield factory
    await factory.close()


@pytest.fixture
async def hub(hub_factory: HubFactory) -> RunningHub:
    """A hub with default settings on a fresh database (SQLite and PostgreSQL)."""
    return await hub_factory()


# --- helpers shared by the API tests --------------------------------------------------


def expect_error(r: Response, status: int, *fragments: str) -> str:
    """Assert `r` is a JSON error with this status; returns its message.

    Each of `fragments` must appear in the message (case-insensitive).
    """
    assert r.status == status, f"expected {status}, got {r.status}: {r.body[:300]!r}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"status", "message"}, body
    assert body["status"] == status
    message = body["message"]
    assert isinstance(message, str)
    assert message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in {message!r}"
    return message


BadInput = tuple[str, str, Any, int, str]  # method, path, body (bytes = raw), status, fragment


async def assert_bad_inputs_change_nothing(hub: RunningHub, cases: list[BadInput]) -> None:
    """Send every bad request; each must get its JSON error and none may change state."""
    before = await api_state(hub)
    failures = []
    for method, path, body, status, fragment in cases:
        raw = body if isinstance(body, bytes) else None
        r = await hub.api(method, path, None if raw is not None else body, raw=raw)
        try:
            expect_error(r, status, fragment)
        except AssertionError as e:
            failures.append(f"{method} {path[:80]} {str(body)[:60]}: {e}")
    assert not failures, "\n".join(failures)
    assert await api_state(hub) == before


async def api_state(hub: RunningHub) -> dict[str, Any]:
    """What an admin sees of users, groups and tokens; for 'nothing changed' checks."""
    users = (await hub.api("GET", "/users?include_stopped_servers=1")).json()
    groups = (await hub.api("GET", "/groups")).json()
    tokens = {}
    for user in users:
        listed = (await hub.api("GET", f"/users/{user['name']}/tokens")).json()["api_tokens"]
        # last_activity of a token moves when it is used, which is not a change of state
        tokens[user["name"]] = [{**t, "last_activity": None} for t in listed]
    return {"users": users, "groups": groups, "tokens": tokens}


class LogCapture(logging.Handler):
    """Every record the hub's loggers emit, raw (before any redacting filter)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        lines = []
        for record in self.records:
            lines.append(record.getMessage())
            if record.exc_info:
                lines.append(logging.Formatter().formatException(record.exc_info))
        return "\n".join(lines)

    def assert_no_secrets(self, *secrets: str) -> None:
        assert self.records, "nothing was logged: the capture is not working"
        text = self.text()
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:4]}...) appears in the log"


@pytest.fixture
def hub_logs() -> Iterator[LogCapture]:
    """Capture the hub's log records at DEBUG level, whatever the hub's log level."""
    capture = LogCapture()
    loggers = [logging.getLogger(name) for name in ("hub", "atrium", "tornado", "spawners")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)
    yield capture
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(capture)
        lg.setLevel(level)


@pytest.fixture
async def proxies() -> AsyncIterator[list[ProxyProc]]:
    """`atrium proxy` processes a test started; stopped (or killed, with their
    workers) afterwards."""
    from hub.proxy.supervisor import pid_alive

    started: list[ProxyProc] = []
    yield started
    for proxy in started:
        await proxy.stop()
        proxy.kill_all()
        for pid in proxy.workers:

            async def gone(pid: int = pid) -> bool:
                return not pid_alive(pid)

            await eventually(gone, timeout=10)


@pytest.fixture
def unix_users() -> Iterator[UnixUsers]:
    """Real Unix accounts (`atrtest*`), removed afterwards. Request it before fixtures
    that start servers, so its servers are stopped before the accounts go."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        missing_part("root and useradd (to create Unix users)")
    made = UnixUsers()
    yield made
    made.cleanup()


@pytest.fixture
def run_root() -> Iterator[Path]:
    """A runtime root the test users can reach (pytest's own temp dir is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="atrium-run-"))
    path.chmod(0o711)
    yield path / "run"
    shutil.rmtree(path, ignore_errors=True)


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """Where a browser test keeps its screenshots, kept after the run as test artifacts:
    `test-artifacts/<test file>/<test name>/` (emptied when the test starts)."""
    node = request.node
    where = ARTIFACTS / Path(node.path).stem / re.sub(r"[^\w.-]+", "_", node.name)
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    return where
