"""`hub-admin`, run as a real process against a running hub (REST) and a database (offline).

Every command runs in both modes, on SQLite and PostgreSQL (`target`), and the
resulting state is read back from the database the hub uses.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hub.db.engine import Database
from hub.db.models import APIToken, AuditEvent, Server, User
from hub.ops.identity import resolve_token
from hub.rbac.roles import RoleTable
from hub.timeutil import utcnow
from tests.conftest import HubFactory, RunningHub

CLI = [sys.executable, "-m", "hub.cli.main"]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error(self) -> str:
        """The one error line; fails if there is not exactly one, or a traceback."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("hub-admin: error: "), self.err
        assert "Traceback" not in self.err
        return lines[0]


# no config file of the person running the tests may take part (hub.cli.config)
NO_CONFIG_DIR = "/nonexistent/atrium-tests"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATRIUM_", "JUPYTERHUB_"))}
    env["XDG_CONFIG_HOME"] = NO_CONFIG_DIR
    env.update(extra)
    return env


async def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    # asyncio, not subprocess.run: the hub under test serves from this event loop
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env() if env is None else env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@dataclass
class Target:
    """Where the CLI points: a running hub (`rest`) or only its database (`offline`)."""

    mode: str
    db: Database
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    hub: RunningHub | None = None

    async def run(self, *argv: str) -> Result:
        return await run_cli(*self.args, *argv, env=self.env)

    async def users(self) -> dict[str, bool]:
        """Every user's name -> admin, read from the database."""

        def read(session: Session) -> dict[str, bool]:
            return {n: a for n, a in session.execute(select(User.name, User.admin))}

        return await self.db.run(read)

    async def token_ids(self, name: str) -> list[str]:
        def read(session: Session) -> list[str]:
            rows = session.scalars(
                select(APIToken.id).join(User, User.id == APIToken.user_id).where(User.name == name)
            )
            return [f"a{i}" for i in rows]

        return await self.db.run(read)

    async def whoami(self, token: str) -> tuple[str, bool, frozenset[str]] | None:
        """Who a token authenticates as (name, admin, scopes), or None if it does not."""

        def resolve(session: Session) -> tuple[str, bool, frozenset[str]] | None:
            req = resolve_token(session, RoleTable.from_config(), token)
            return None if req is None else (req.name, req.admin, req.scopes)

        return await self.db.run(resolve)


@pytest.fixture(params=["rest", "offline"])
async def target(
    request: pytest.FixtureRequest, hub_factory: HubFactory, db_url: str
) -> AsyncIterator[Target]:
    if request.param == "rest":
        hub = await hub_factory()
        env = clean_env(ATRIUM_URL=hub.url, ATRIUM_TOKEN=hub.admin_token)
        yield Target("rest", hub.db, env, hub=hub)
        return
    db = Database(db_url)
    try:
        yield Target("offline", db, clean_env(), args=["--db", db_url])
    finally:
        db.close()


# --- every command, both modes ------------------------------------------------


async def test_user_add_list_show(target: Target) -> None:
    r = await target.run("user", "add", "alice", "Bob")
    assert r.code == 0, r.err
    assert "Created user alice." in r.out
    assert "Created user bob." in r.out
    users = await target.users()
    assert users["alice"] is False
    assert users["bob"] is False

    r = await target.run("user", "list")
    assert r.code == 0, r.err
    header, *rows = r.out.splitlines()
    assert header.split() == ["NAME", "ADMIN", "SERVER", "LAST", "ACTIVITY", "GROUPS"]
    listed = {row.split()[0]: row.split()[1] for row in rows}
    assert listed["alice"] == "no"
    assert listed["bob"] == "no"
    # columns line up: ADMIN starts at the same place on every line
    at = header.index("ADMIN")
    assert all(row[at - 2 : at] == "  " and row[at] != " " for row in rows)

    r = await target.run("user", "list", "--json")
    assert r.code == 0, r.err
    assert {"alice", "bob"} <= {u["name"] for u in r.json()}

    r = await target.run("user", "show", "alice")
    assert r.code == 0, r.err
    assert "name:" in r.out
    assert "alice" in r.out
    assert "admin:" in r.out
    r = await target.run("--json", "user", "show", "alice")
    assert r.json()["name"] == "alice"
    assert r.json()["admin"] is False


async def test_user_add_admin(target: Target) -> None:
    r = await target.run("user", "add", "--admin", "root2")
    assert r.code == 0, r.err
    assert r.out.strip() == "Created admin root2."
    assert (await target.users())["root2"] is True


async def test_duplicate_user_is_409_and_changes_nothing(target: Target) -> None:
    assert (await target.run("user", "add", "alice")).code == 0
    before = await target.users()
    r = await target.run("user", "add", "--admin", "alice")
    assert r.code == 1
    assert "User alice already exists" in r.error
    if target.mode == "rest":
        assert "(HTTP 409)" in r.error
    assert await target.users() == before  # alice did not become an admin


async def test_add_some_existing_creates_the_rest(target: Target) -> None:
    assert (await target.run("user", "add", "alice")).code == 0
    r = await target.run("user", "add", "alice", "carol")
    assert r.code == 0, r.err
    assert r.out.strip() == "Created user carol."
    assert "Already existed, left unchanged: alice" in r.err
    assert {"alice", "carol"} <= set(await target.users())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a/b", "invalid username 'a/b': character '/' is not allowed"),
        ("<script>", "invalid username '<script>': must start with a letter or digit"),
        ("x" * 10_000, "username is too long (10000 characters, at most 128)"),
        ("a\x1b[31mb", "invalid username 'a\\x1b[31mb': character '\\x1b' is not allowed"),
    ],
)
async def test_invalid_usernames_are_refused(target: Target, name: str, message: str) -> None:
    before = await target.users()
    r = await target.run("user", "add", "fine", name)
    assert r.code == 1
    assert message in r.error
    assert "\x1b" not in r.err  # escaped, never sent to the terminal
    assert await target.users() == before  # all or nothing: "fine" was not created


async def test_empty_names_are_usage_errors(target: Target) -> None:
    for argv in (["user", "add", ""], ["user", "show", " "], ["token", "list", ""]):
        r = await target.run(*argv)
        assert r.code == 2, argv
        assert "must not be empty" in r.error


@pytest.mark.parametrize(
    "argv",
    [
        ["user", "show", "nobody"],
        ["user", "remove", "--yes", "nobody"],
        ["user", "set-admin", "nobody", "--on"],
        ["token", "create", "nobody"],
        ["token", "list", "nobody"],
        ["token", "revoke", "nobody", "a1"],
        ["user", "show", "a/b"],
        ["user", "show", ".."],
        ["user", "show", "a?b#c %2F"],
        ["user", "show", "x" * 10_000],
    ],
)
async def test_unknown_user_is_404(target: Target, argv: list[str]) -> None:
    before = await target.users()
    r = await target.run(*argv)
    assert r.code == 1
    if argv[:2] == ["token", "create"]:
        # JupyterHub's answer here, which does not tell missing users from forbidden ones
        assert "User nobody not found or no permissions to generate tokens" in r.error
    else:
        assert "No such user: " in r.error
        if target.mode == "rest":
            assert r.error.endswith("(HTTP 404)")
    assert len(r.error) < 300  # a long name is shortened, not echoed whole
    assert await target.users() == before


async def test_remove_needs_yes(target: Target) -> None:
    assert (await target.run("user", "add", "alice")).code == 0
    r = await target.run("user", "remove", "alice")
    assert r.code == 2
    assert "add --yes to confirm" in r.error
    assert "alice" in await target.users()

    r = await target.run("user", "remove", "alice", "--yes")
    assert r.code == 0, r.err
    assert r.out.strip() == "Removed user alice."
    assert "alice" not in await target.users()

    r = await target.run("user", "remove", "alice", "--yes")
    assert r.code == 1
    assert "No such user: alice" in r.error


async def test_running_servers_listed_and_offline_remove_refused(target: Target) -> None:
    assert (await target.run("user", "add", "busy")).code == 0

    def start(session: Session) -> None:
        user = session.scalar(select(User).where(User.name == "busy"))
        assert user is not None
        session.add(Server(user_id=user.id, name="", started=utcnow(), url="http://127.0.0.1:9"))

    await target.db.run(start)
    r = await target.run("user", "list", "--state", "ready")
    assert [line.split()[:3] for line in r.out.splitlines()[1:]] == [["busy", "no", "ready"]]
    if target.mode == "rest":
        return  # through the hub, removing a user stops their servers first
    # offline, nothing can stop a server, so the user stays
    r = await target.run("user", "remove", "--yes", "busy")
    assert r.code == 1
    assert "busy has running servers; stop them first" in r.error
    assert "busy" in await target.users()


async def test_set_admin_on_and_off(target: Target) -> None:
    assert (await target.run("user", "add", "carol")).code == 0
    r = await target.run("user", "set-admin", "carol", "--on")
    assert r.code == 0, r.err
    assert r.out.strip() == "carol is now an admin."
    assert (await target.users())["carol"] is True

    r = await target.run("--json", "user", "set-admin", "carol", "--off")
    assert r.code == 0, r.err
    assert r.json()["admin"] is False
    assert (await target.users())["carol"] is False


async def test_token_create_list_revoke(target: Target) -> None:
    assert (await target.run("user", "add", "dave")).code == 0
    r = await target.run(
        "token",
        "create",
        "dave",
        "--note",
        "for the grader",
        "--scope",
        "read:users:name!user=dave",
        "--scope",
        "users:activity!user=dave",
    )
    assert r.code == 0, r.err
    token = r.out.strip()
    assert token
    assert "\n" not in token
    assert "It is shown only this once." in r.err
    who = await target.whoami(token)
    assert who is not None
    assert who[0] == "dave"
    assert "read:users:name!user=dave" in who[2]
    assert "users:activity!user=dave" in who[2]
    assert "read:users!user=dave" not in who[2]

    r = await target.run("token", "list", "dave")
    assert r.code == 0, r.err
    (token_id,) = await target.token_ids("dave")
    assert token_id in r.out
    assert "for the grader" in r.out
    assert "read:users:name" in r.out
    assert token not in r.out

    r = await target.run("--json", "token", "list", "dave")
    listed = r.json()
    assert [t["id"] for t in listed] == [token_id]
    assert "token" not in listed[0]

    r = await target.run("token", "revoke", "dave", token_id)
    assert r.code == 0, r.err
    assert r.out.strip() == f"Revoked token {token_id} of dave."
    assert await target.token_ids("dave") == []
    assert await target.whoami(token) is None

    r = await target.run("token", "revoke", "dave", token_id)
    assert r.code == 1
    assert f"No such token {token_id} for user dave" in r.error


async def test_token_create_json_and_expiry(target: Target) -> None:
    assert (await target.run("user", "add", "erin")).code == 0
    r = await target.run("token", "create", "erin", "--expires-in", "3600", "--json")
    assert r.code == 0, r.err
    model = r.json()
    assert model["user"] == "erin"
    assert model["expires_at"]
    assert model["scopes"] == ["inherit"]
    assert await target.whoami(model["token"]) is not None
    r = await target.run("token", "list", "erin")
    assert model["expires_at"][:19] + "Z" in r.out
    assert model["token"] not in r.out


async def test_token_bad_scope_creates_nothing(target: Target) -> None:
    assert (await target.run("user", "add", "fay")).code == 0
    r = await target.run("token", "create", "fay", "--scope", "read:nonsense")
    assert r.code == 1
    assert "read:nonsense" in r.error
    assert await target.token_ids("fay") == []


async def test_revoke_refuses_a_token_value(target: Target) -> None:
    assert (await target.run("user", "add", "gus")).code == 0
    token = (await target.run("token", "create", "gus")).out.strip()
    r = await target.run("token", "revoke", "gus", token)
    assert r.code == 2
    assert "TOKEN_ID must be a token id such as a12" in r.error
    assert token not in r.err + r.out
    assert len(await target.token_ids("gus")) == 1


async def test_user_list_filters_and_paging(target: Target) -> None:
    r = await target.run("user", "add", "ann", "bea", "cid", "dan", "eve")
    assert r.code == 0, r.err

    async def names(*argv: str) -> list[str]:
        r = await target.run("--json", "user", "list", *argv)
        assert r.code == 0, r.err
        return [u["name"] for u in r.json() if u["name"] != "admin"]

    assert await names("--sort", "name") == ["ann", "bea", "cid", "dan", "eve"]
    assert await names("--sort=-name") == ["eve", "dan", "cid", "bea", "ann"]
    assert await names("--name-filter", "E") == ["bea", "eve"]
    assert await names("--sort=-name", "--limit", "2") == ["eve", "dan"]
    assert await names("--sort=-name", "--offset", "3") == ["bea", "ann"]
    assert await names("--state", "active") == []
    assert await names("--state", "inactive", "--sort", "name") == [
        "ann",
        "bea",
        "cid",
        "dan",
        "eve",
    ]
    r = await target.run("user", "list", "--name-filter", "zzz")
    assert r.code == 0
    assert r.out == ""
    assert "No users found." in r.err


# --- usage errors (no hub needed) ----------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["user"], "user: the following arguments are required: SUBCOMMAND"),
        (["user", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["user", "add"], "user add: the following arguments are required: NAME"),
        (["user", "show"], "the following arguments are required: NAME"),
        (["user", "set-admin", "x"], "one of the arguments --on --off is required"),
        (["user", "set-admin", "x", "--on", "--off"], "not allowed with argument"),
        (["user", "list", "--limit", "0"], "argument --limit: must be greater than zero"),
        (["user", "list", "--limit", "lots"], "argument --limit: must be a whole number"),
        (["user", "list", "--sort", "age"], "argument --sort: invalid choice: 'age'"),
        (["user", "list", "--state", "sleepy"], "argument --state: invalid choice"),
        (["user", "list", "--bogus"], "unrecognized arguments: --bogus"),
        (["token", "create", "x", "--expires-in", "-5"], "argument --expires-in"),
        (["token", "revoke", "x"], "the following arguments are required: TOKEN_ID"),
        (["token", "revoke", "x", "not-an-id"], "TOKEN_ID must be a token id"),
        (["user", "list"], "no hub to talk to: pass --url (or set ATRIUM_URL, or url in "),
        (["--url", "http://127.0.0.1:1/hub/", "user", "list"], "no API token"),
        (["--url", "ftp://example.org/", "--token", "t" * 20, "user", "list"], "http://"),
        (["--url", "http://[::1/", "--token", "t" * 20, "user", "list"], "not a valid URL"),
        (["--db", "sqlite:///x", "--url", "http://h/", "user", "list"], "cannot be combined"),
    ],
)
async def test_usage_errors(argv: list[str], message: str) -> None:
    r = await run_cli(*argv)
    assert r.code == 2, r.err
    assert message in r.error
    assert r.out == ""


async def test_help_and_version() -> None:
    r = await run_cli("--help")
    assert r.code == 0
    assert "user" in r.out
    assert "token" in r.out
    assert "Exit status" in r.out
    r = await run_cli("user", "remove", "--help")
    assert r.code == 0
    assert "--yes" in r.out
    # the installed command is the same program
    installed = Path(sys.executable).with_name("hub-admin")
    proc = await asyncio.create_subprocess_exec(
        str(installed), "--version", stdout=asyncio.subprocess.PIPE, env=clean_env()
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode().startswith("hub-admin ")


# --- REST: connection, credentials, permissions --------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_rest_accepts_hub_api_and_base_urls(hub: RunningHub) -> None:
    base = hub.url.removesuffix("hub/")
    for url in (hub.url, hub.url.rstrip("/"), hub.url + "api", hub.url + "api/", base):
        r = await run_cli(
            "--url", url, "--token", hub.admin_token, "--json", "user", "show", "admin"
        )
        assert r.code == 0, (url, r.err)
        assert r.json()["admin"] is True


async def test_rest_environment_and_flag_precedence(hub: RunningHub) -> None:
    jupyterhub = clean_env(JUPYTERHUB_API_URL=hub.url + "api", JUPYTERHUB_API_TOKEN=hub.admin_token)
    r = await run_cli("user", "show", "admin", env=jupyterhub)
    assert r.code == 0, r.err
    # ATRIUM_* wins over JUPYTERHUB_*, and a flag over both
    wrong = dict(jupyterhub, ATRIUM_TOKEN="wrong-token-value")
    r = await run_cli("user", "show", "admin", env=wrong)
    assert r.code == 1
    assert "Missing or invalid credentials" in r.error
    r = await run_cli("--token", hub.admin_token, "user", "show", "admin", env=wrong)
    assert r.code == 0, r.err


async def test_rest_bad_revoked_and_expired_tokens(hub: RunningHub) -> None:
    async def as_token(token: str) -> Result:
        return await run_cli("--url", hub.url, "--token", token, "user", "add", "mallory")

    bad = "not-a-real-token-0123456789"
    r = await as_token(bad)
    assert r.code == 1
    assert r.error == (
        "hub-admin: error: Missing or invalid credentials; check the API token "
        "(--token or ATRIUM_TOKEN) (HTTP 403)"
    )
    assert bad not in r.err + r.out

    revoked = await hub.token_for("admin", note="to revoke")
    listed = await run_cli(
        "--url", hub.url, "--token", hub.admin_token, "--json", "token", "list", "admin"
    )
    (token_id,) = [t["id"] for t in listed.json() if t["note"] == "to revoke"]
    r = await run_cli(
        "--url", hub.url, "--token", hub.admin_token, "token", "revoke", "admin", token_id
    )
    assert r.code == 0, r.err
    assert "Missing or invalid credentials" in (await as_token(revoked)).error

    expired = await hub.token_for("admin", expires_in=1)
    await asyncio.sleep(1.2)
    assert "Missing or invalid credentials" in (await as_token(expired)).error

    check = await hub.api("GET", "/users/mallory")
    assert check.status == 404  # none of the refused requests created anything


async def test_rest_non_admin_cannot_set_admin(hub: RunningHub) -> None:
    await hub.add_user("bob")
    await hub.add_user("carol")
    bob = await hub.token_for("bob")
    r = await run_cli("--url", hub.url, "--token", bob, "user", "set-admin", "carol", "--on")
    assert r.code == 1
    assert "Action is not authorized with current scopes" in r.error
    assert "(HTTP 403)" in r.error
    assert (await hub.api("GET", "/users/carol")).json()["admin"] is False
    r = await run_cli("--url", hub.url, "--token", bob, "user", "set-admin", "bob", "--on")
    assert r.code == 1
    assert "(HTTP 403)" in r.error
    assert (await hub.api("GET", "/users/bob")).json()["admin"] is False


async def test_rest_user_manager_cannot_grant_admin(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        config="c.Hub.load_roles = [{'name': 'manager', 'scopes': ['admin:users']}]\n"
    )
    await hub.add_user("mgr")
    await hub.add_user("pat")

    def grant(session: Session) -> None:
        from hub.db.models import Role

        role = session.scalar(select(Role).where(Role.name == "manager"))
        user = session.scalar(select(User).where(User.name == "mgr"))
        assert role is not None
        assert user is not None
        user.roles.append(role)

    await hub.db.run(grant)
    mgr = await hub.token_for("mgr")
    env = clean_env(ATRIUM_URL=hub.url, ATRIUM_TOKEN=mgr)
    r = await run_cli("user", "add", "quinn", env=env)
    assert r.code == 0, r.err  # a manager may add users ...
    r = await run_cli("user", "set-admin", "pat", "--on", env=env)
    assert r.code == 1  # ... but not make admins
    assert "Only admins can grant admin permissions (HTTP 403)" in r.error
    assert (await hub.api("GET", "/users/pat")).json()["admin"] is False


async def test_rest_hub_not_reachable() -> None:
    port = free_port()
    r = await run_cli("--url", f"http://127.0.0.1:{port}/hub/", "--token", "t" * 20, "user", "list")
    assert r.code == 1
    assert r.error == (
        f"hub-admin: error: cannot reach the hub at http://127.0.0.1:{port}/hub/api: "
        "connection refused (is the hub running?)"
    )


async def test_rest_timeout_and_wrong_path(hub: RunningHub) -> None:
    # a listener that never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        r = await run_cli(
            "--url", f"http://127.0.0.1:{port}/", "--token", "t" * 20, "--timeout", "0.5",
            "user", "list",
        )  # fmt: skip
    assert r.code == 1
    assert "no answer within 0.5 seconds" in r.error
    # the hub's host with a path that is not the hub
    wrong = hub.url.replace("/hub/", "/elsewhere/")
    r = await run_cli("--url", wrong, "--token", hub.admin_token, "user", "list")
    assert r.code == 1
    assert "No such API endpoint" in r.error
    assert "(HTTP 404)" in r.error


async def test_rest_not_a_hub_and_redirects() -> None:
    """A server that is not a hub gets a clear message, and redirects never carry the token."""
    from tornado import web
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    seen: list[str] = []

    class Page(web.RequestHandler):
        def get(self) -> None:
            self.finish("<html>a login page</html>")

    class Moved(web.RequestHandler):
        def get(self) -> None:
            self.redirect(f"http://127.0.0.1:{port}/elsewhere/hub/api/users", status=302)

    class Elsewhere(web.RequestHandler):
        def get(self) -> None:
            seen.append(self.request.headers.get("Authorization", ""))
            self.finish("[]")

    app = web.Application(
        [
            (r"/page/hub/api/users", Page),
            (r"/moved/hub/api/users", Moved),
            (r"/elsewhere/hub/api/users", Elsewhere),
        ]
    )
    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server = HTTPServer(app)
    server.add_sockets(sockets)
    try:
        token = "t" * 20
        r = await run_cli(
            "--url", f"http://127.0.0.1:{port}/page/", "--token", token, "user", "list"
        )
        assert r.code == 1
        assert r.error == (
            f"hub-admin: error: the server at http://127.0.0.1:{port}/page/hub/api "
            "did not answer like a hub API; check the hub URL"
        )
        r = await run_cli(
            "--url", f"http://127.0.0.1:{port}/moved/", "--token", token, "user", "list"
        )
        assert r.code == 1
        assert "redirected to http://127.0.0.1:" in r.error
        assert seen == []  # the token did not follow the redirect
    finally:
        server.stop()
        await server.close_all_connections()


async def test_rest_walks_every_page(hub_factory: HubFactory) -> None:
    hub = await hub_factory(api_page_default_limit=2, api_page_max_limit=2)
    for name in ("u1", "u2", "u3", "u4", "u5"):
        await hub.add_user(name)
    env = clean_env(ATRIUM_URL=hub.url, ATRIUM_TOKEN=hub.admin_token)
    r = await run_cli("--json", "user", "list", env=env)
    assert [u["name"] for u in r.json()] == ["admin", "u1", "u2", "u3", "u4", "u5"]
    r = await run_cli("--json", "user", "list", "--limit", "3", "--offset", "2", env=env)
    assert [u["name"] for u in r.json()] == ["u2", "u3", "u4"]


async def test_rest_token_never_in_output(hub: RunningHub) -> None:
    env = clean_env(ATRIUM_URL=hub.url, ATRIUM_TOKEN=hub.admin_token)
    outputs = [
        await run_cli(*argv, env=env)
        for argv in (
            ["user", "list"],
            ["user", "show", "admin", "--json"],
            ["token", "list", "admin", "--json"],
            ["user", "show", "nobody"],
            ["token", "revoke", "admin", hub.admin_token],
        )
    ]
    for r in outputs:
        assert hub.admin_token not in r.out + r.err


# --- offline: schema checks, audit, a hub using what it made -------------------


async def test_offline_creates_an_admin_the_hub_accepts(hub: RunningHub) -> None:
    db = ["--db", hub.db.url]
    r = await run_cli(*db, "user", "add", "--admin", "ops")
    assert r.code == 0, r.err
    r = await run_cli(*db, "token", "create", "ops", "--note", "made offline")
    assert r.code == 0, r.err
    # the running hub takes the token made offline, for an admin
    me = await hub.api("GET", "/user", token=r.out.strip())
    assert me.status == 200
    assert me.json()["name"] == "ops"
    assert me.json()["admin"] is True

    def audit(session: Session) -> list[tuple[str, str, str]]:
        rows = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.target).order_by(AuditEvent.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

    # the audit log names the person who ran hub-admin
    events = [(actor, action) for actor, action, t in await hub.db.run(audit) if t == "ops"]
    assert [action for _, action in events] == ["user.create", "token.create"]
    (actor,) = {actor for actor, _ in events}
    assert actor.startswith("hub-admin:")
    assert len(actor) > len("hub-admin:")


async def test_offline_refuses_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.sqlite"
    r = await run_cli("--db", f"sqlite:///{path}", "user", "list")
    assert r.code == 1
    assert r.error == f"hub-admin: error: no database file at {path}"
    assert not path.exists()  # not created by mistake


_empty_numbers = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        (tmp_path / "empty.sqlite").touch()
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    server = request.getfixturevalue("postgres")
    name = f"empty_{os.getpid()}_{next(_empty_numbers)}"
    yield server.create_database(name)
    server.drop_database(name)


async def test_offline_refuses_an_empty_database(empty_db_url: str) -> None:
    r = await run_cli("--db", empty_db_url, "user", "add", "--admin", "x")
    assert r.code == 1
    assert "has no Atrium schema" in r.error
    assert "atrium upgrade-db --db" in r.error
    db = Database(empty_db_url)
    try:
        assert await db.run(lambda s: s.execute(text("SELECT 1")).scalar()) == 1
        from sqlalchemy import inspect

        assert inspect(db.engine).get_table_names() == []  # no schema made silently
    finally:
        db.close()


async def test_offline_refuses_other_schemas(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.run(lambda s: s.execute(text("UPDATE alembic_version SET version_num = 'ffff'")))
        r = await run_cli("--db", db_url, "user", "list")
        assert r.code == 1
        assert "revision ffff, which this version of Atrium does not know" in r.error

        await db.run(lambda s: s.execute(text("DROP TABLE alembic_version")))
        r = await run_cli("--db", db_url, "user", "list")
        assert r.code == 1
        assert "has tables but no Atrium schema version" in r.error
    finally:
        db.close()


async def test_offline_database_not_reachable() -> None:
    port = free_port()
    r = await run_cli("--db", f"postgresql://atrium:pw-secret@127.0.0.1:{port}/x", "user", "list")
    assert r.code == 1
    assert r.error.startswith("hub-admin: error: cannot open the database postgresql+psycopg://")
    assert "pw-secret" not in r.err
    r = await run_cli("--db", "mysql://h/x", "user", "list")
    assert r.code == 1
    assert "unsupported database" in r.error
