"""Services (`c.Hub.services`): managed and external, proxied at /services/<name>/,
with their tokens, roles and OAuth login, and the config's bad input.

The service is `tests/hubservice.py`, a real process; its OAuth side is JupyterHub 6's
own `HubOAuthenticated` (run with `.scratch/jupyterhub-venv`'s Python, see
scripts/test.sh), so a service written for JupyterHub logs people in unchanged.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from hub.errors import ConfigError
from hub.proxy.supervisor import pid_alive
from hub.services import parse_services
from tests.conftest import HubFactory, RunningHub, behind_atrium_proxy, missing_part
from tests.pg import free_port
from tests.procs import AtriumProcess
from tests.test_pages import PASSWORD
from tests.visitor import Visitor
from tests.waits import eventually

REPO = Path(__file__).resolve().parent.parent
SERVICE = str(REPO / "tests" / "hubservice.py")
JUPYTERHUB_PYTHON = REPO / ".scratch" / "jupyterhub-venv" / "bin" / "python"
TOKEN = "external-service-token-0123456789"


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    """SQLite only: the database backend does not matter here."""
    return sqlite_db_url


@pytest.fixture
def jupyterhub_python() -> str:
    if not JUPYTERHUB_PYTHON.exists():
        missing_part("JupyterHub 6 (.scratch/jupyterhub-venv, see scripts/test.sh)")
    return str(JUPYTERHUB_PYTHON)


def managed(name: str, python: str = sys.executable, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": f"http://127.0.0.1:{free_port()}",
        "command": [python, SERVICE],
        **extra,
    }


async def get(url: str, token: str = "") -> HTTPResponse:
    headers = {"Authorization": f"token {token}"} if token else {}
    return await AsyncHTTPClient().fetch(
        url, headers=headers, raise_error=False, request_timeout=10
    )


def public(hub: RunningHub) -> str:
    return f"http://127.0.0.1:{hub.app.settings.port}"


async def answering(url: str) -> None:
    async def up() -> bool:
        try:
            return (await get(url)).code == 200
        except OSError:  # nothing listens yet
            return False

    await eventually(up, timeout=60)  # a bound for a busy machine


# --- the config ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("whoami", "must be a dict"),
        ({"url": "http://127.0.0.1:9"}, "needs a name"),
        ({"name": "a/b"}, "needs a name"),
        ({"name": "x" * 65}, "needs a name"),
        ({"name": "s", "colour": "red"}, "no such field(s): colour"),
        ({"name": "s", "url": "ftp://127.0.0.1/"}, "url must be an http"),
        ({"name": "s", "url": "http://127.0.0.1:99999"}, "bad port"),
        ({"name": "s", "command": "  "}, "command must be a list"),
        ({"name": "s", "command": ["python", 3]}, "command must be a list"),
        ({"name": "s", "api_token": "short"}, "at least 16 characters"),
        ({"name": "s", "environment": {"A": 1}}, "environment must be a dict"),
        ({"name": "s", "admin": "yes"}, "admin must be True or False"),
        ({"name": "s", "oauth_client_id": "mine"}, "must start with 'service-'"),
        ({"name": "s", "oauth_client_allowed_scopes": ["fly"]}, "fly"),
        ({"name": "s", "url": "http://127.0.0.1:9"}, "needs its api_token"),
        (
            {"name": "s", "api_token": TOKEN, "oauth_client_id": "service-s"},
            "needs oauth_redirect_uri",
        ),
        ({"name": "s", "info": {"when": object()}}, "services[0] (s)"),
    ],
)
def test_bad_service_settings_are_refused(spec: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_services([spec])
    assert fragment in str(e.value)
    assert TOKEN not in str(e.value)


def test_services_must_differ() -> None:
    one = {"name": "a", "api_token": TOKEN}
    for other, fragment in [
        ({"name": "a"}, "another service has this name"),
        ({"name": "b", "api_token": TOKEN}, "same api_token"),
        (
            {
                "name": "b",
                "url": "http://127.0.0.1:9",
                "api_token": TOKEN + "x",
                "oauth_client_id": "service-a",
            },
            "same oauth_client_id",
        ),
    ]:
        with pytest.raises(ConfigError, match="services\\[1\\]") as e:
            parse_services([{**one, "url": "http://127.0.0.1:8"}, other])
        assert fragment in str(e.value)


def test_a_bad_service_stops_the_hub_with_a_message(tmp_path: Path) -> None:
    config = tmp_path / "hub_config.py"
    config.write_text(
        f"c.Hub.services = [{{'name': 'ext', 'api_token': {TOKEN!r}, 'url': 'gopher://x'}}]\n"
    )
    db = tmp_path / "atrium.sqlite"
    r = subprocess.run(
        [sys.executable, "-m", "hub.app", f"--config={config}", f"--Hub.db_url=sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 2
    assert "services[0] (ext): url must be an http:// or https:// URL" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert TOKEN not in r.stderr + r.stdout
    assert not db.exists()  # refused before the database was touched


async def test_load_roles_naming_an_unknown_service_is_refused(hub_factory: HubFactory) -> None:
    with pytest.raises(ConfigError, match="names unknown service 'nope'"):
        await hub_factory(
            services=[{"name": "known", "api_token": TOKEN}],
            load_roles=[{"name": "r", "scopes": ["list:users"], "services": ["nope"]}],
        )


# --- managed services ---------------------------------------------------------------


async def test_a_managed_service_runs_with_its_token_and_roles(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    spec = managed("probe", environment={"SERVICE_EXTRA": "from the config"})
    hub = await hub_factory(
        **behind_atrium_proxy(tmp_path),
        services=[spec],
        load_roles=[{"name": "lister", "scopes": ["list:users"], "services": ["probe"]}],
    )
    base = f"{public(hub)}/services/probe/"
    await answering(base + "env")

    env = orjson.loads((await get(base + "env")).body)
    assert env["JUPYTERHUB_SERVICE_NAME"] == "probe"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/services/probe/"
    assert env["JUPYTERHUB_SERVICE_URL"] == spec["url"]
    assert env["JUPYTERHUB_API_URL"].endswith("/hub/api")
    assert env["JUPYTERHUB_CLIENT_ID"] == "service-probe"
    assert env["JUPYTERHUB_OAUTH_CALLBACK_URL"] == "/services/probe/oauth_callback"
    assert orjson.loads(env["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == ["access:services!service=probe"]
    assert env["JUPYTERHUB_API_TOKEN"] == "<set>"
    assert "JUPYTERHUB_ACTIVITY_URL" not in env  # a service reports no activity
    assert env["SERVICE_EXTRA"] == "from the config"

    # its token is the service's, with its role's scopes
    seen = orjson.loads((await get(base + "api")).body)
    assert seen["status"] == 200
    assert seen["model"]["kind"] == "service"
    assert seen["model"]["name"] == "probe"
    assert "list:users" in seen["model"]["scopes"]

    # the API: the whole model for an admin, nothing for a user without the scopes
    r = await hub.api("GET", "/services")
    assert r.status == 200
    model = r.json()["probe"]
    assert model["kind"] == "service"
    assert model["roles"] == ["lister"]
    assert model["url"] == spec["url"]
    assert model["prefix"] == "/services/probe/"
    assert model["command"] == spec["command"]
    assert model["pid"] > 0
    assert pid_alive(model["pid"])
    assert (await hub.api("GET", "/services/probe")).json() == model
    await hub.add_user("ann", password=PASSWORD)
    ann = await hub.token_for("ann")
    r = await hub.api("GET", "/services/probe", token=ann)
    assert r.status == 403
    r = await hub.api("GET", "/services/nope")
    assert r.status == 404
    assert r.json()["message"] == "No such service: nope"


async def test_a_managed_service_that_dies_is_started_again_and_stops_with_the_hub(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub = await hub_factory(**behind_atrium_proxy(tmp_path), services=[managed("probe")])
    base = f"{public(hub)}/services/probe/"
    await answering(base + "env")
    first = (await hub.api("GET", "/services/probe")).json()["pid"]
    os.kill(first, signal.SIGKILL)

    async def again() -> bool:
        pid = (await hub.api("GET", "/services/probe")).json()["pid"]
        return pid not in (0, first) and (await get(base + "env")).code == 200

    await eventually(again, timeout=60)
    second = (await hub.api("GET", "/services/probe")).json()["pid"]
    supervisor = hub.state.service_supervisor
    assert supervisor is not None
    assert supervisor.running["probe"].starts == 2

    await supervisor.stop()
    assert not pid_alive(second)
    assert (await hub.api("GET", "/services/probe")).json()["pid"] == 0
    assert supervisor.running["probe"].starts == 2  # not started again after the stop


async def test_a_hub_killed_outright_leaves_no_service_behind(tmp_path: Path) -> None:
    spec = managed("probe")
    config = tmp_path / "hub_config.py"
    config.write_text(f"c.Hub.services = [{spec!r}]\n")
    hub = AtriumProcess(
        tmp_path, args=(f"--config={config}", "--Hub.proxy=none"), proxy_ports=False
    )
    await hub.start()
    pid = 0
    try:
        await answering(f"{spec['url']}/services/probe/env")
        pid = int(orjson.loads((await get(f"{spec['url']}/services/probe/env")).body)["PID"])
        assert pid_alive(pid)
        await hub.stop(signal.SIGKILL)

        async def gone() -> bool:
            return not pid_alive(pid)

        await eventually(gone, timeout=30)
    finally:
        if hub.proc is not None and hub.proc.returncode is None:
            await hub.stop(signal.SIGKILL)
        if pid and pid_alive(pid):  # the service this test made, left behind: a failure
            os.kill(pid, signal.SIGKILL)


# --- external services --------------------------------------------------------------


async def test_an_external_service_is_proxied_and_its_token_works(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    port = free_port()
    hub = await hub_factory(
        **behind_atrium_proxy(tmp_path),
        services=[
            {"name": "ext", "url": f"http://127.0.0.1:{port}", "api_token": TOKEN},
            {"name": "api-only", "api_token": TOKEN + "-2"},
        ],
    )
    assert hub.state.service_supervisor is None  # nothing for the hub to run
    # the service runs on its own, configured as its operator would
    env = {
        **os.environ,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/ext/",
        "JUPYTERHUB_API_URL": f"{hub.url}api",
        "JUPYTERHUB_API_TOKEN": TOKEN,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SERVICE, env=env, stdin=subprocess.DEVNULL
    )
    try:
        base = f"{public(hub)}/services/ext/"
        await answering(base + "api")
        seen = orjson.loads((await get(base + "api")).body)
        assert seen["model"]["name"] == "ext"
        routes = (await hub.api("GET", "/proxy")).json()
        assert routes["/services/ext"]["target"] == f"http://127.0.0.1:{port}"
        assert routes["/services/ext"]["service"] == "ext"
        assert not any("api-only" in prefix for prefix in routes)  # no url: not proxied
        # the hub's next check of the proxy leaves the service's route be
        proxy = hub.state.proxy
        assert proxy is not None
        changes = await proxy.reconcile()
        assert changes.added == changes.removed == []

        r = await get(f"{hub.url}api/user", TOKEN + "-2")
        assert r.code == 200
        assert orjson.loads(r.body)["name"] == "api-only"
        assert (await get(f"{hub.url}api/user", TOKEN + "-3")).code == 403
        # a service with no role may not list users
        assert (await get(f"{hub.url}api/users", TOKEN)).code == 403
    finally:
        proc.kill()
        await proc.wait()


async def test_services_removed_from_the_config_are_gone_with_their_tokens(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    first = await hub_factory(
        services=[
            {"name": "keep", "api_token": TOKEN},
            {"name": "drop", "api_token": TOKEN + "-drop"},
        ]
    )
    assert (await get(f"{first.url}api/user", TOKEN + "-drop")).code == 200
    second = await hub_factory(services=[{"name": "keep", "api_token": TOKEN + "-new"}])
    assert set((await second.api("GET", "/services")).json()) == {"keep"}
    assert (await get(f"{second.url}api/user", TOKEN + "-drop")).code == 403
    assert (await get(f"{second.url}api/user", TOKEN)).code == 403  # replaced
    assert (await get(f"{second.url}api/user", TOKEN + "-new")).code == 200


# --- OAuth: people log in to a service with their hub account ------------------------


async def log_in(visitor: Visitor, hub: RunningHub, name: str) -> None:
    page = await visitor.follow(f"{public(hub)}/hub/login")
    page = await visitor.submit(page, {"username": name, "password": PASSWORD})
    assert page.status == 200, page.text[:300]


async def test_people_log_in_to_a_service_through_the_hub(
    hub_factory: HubFactory, tmp_path: Path, jupyterhub_python: str
) -> None:
    # the people exist before the hub whose config gives ann a role
    first = await hub_factory()
    for name in ("ann", "bo"):
        await first.add_user(name, password=PASSWORD)
    hub = await hub_factory(
        **behind_atrium_proxy(tmp_path),
        services=[
            managed("whoami", jupyterhub_python),
            managed("quick", jupyterhub_python, oauth_no_confirm=True),
        ],
        load_roles=[
            {
                "name": "service-users",
                "scopes": ["access:services!service=whoami", "access:services!service=quick"],
                "users": ["ann"],
            }
        ],
    )
    for service in ("whoami", "quick"):
        await answering(f"{public(hub)}/services/{service}/env")

    ann = Visitor()
    await log_in(ann, hub, "ann")
    # her hub pages link the services she may open
    home = await ann.follow(f"{public(hub)}/hub/home")
    assert '<a href="/services/whoami/">whoami</a>' in home.text
    assert '<a href="/services/quick/">quick</a>' in home.text
    # the service sends her to the hub, which asks her to confirm once
    page = await ann.follow(f"{public(hub)}/services/whoami/")
    assert page.status == 200
    assert "Service whoami" in page.text
    assert "asks to know who you are" in page.text
    page = await ann.submit(page, {}, action_has="oauth2/authorize")
    assert page.status == 200, page.text[:300]
    assert page.url.startswith(f"{public(hub)}/services/whoami/"), (page.url, page.text[:500])
    seen = orjson.loads(page.body)
    assert (seen["name"], seen["kind"]) == ("ann", "user")
    # the service's token for her is scoped to what it asked for, not all she may do
    print("token scopes", seen["scopes"])
    assert "access:services!service=whoami" in seen["scopes"]
    assert not any(
        s.startswith(("servers", "tokens", "access:services!service=quick")) for s in seen["scopes"]
    )
    # a service with oauth_no_confirm does not ask
    page = await ann.follow(f"{public(hub)}/services/quick/")
    assert page.status == 200, page.text[:300]
    assert orjson.loads(page.body)["name"] == "ann"

    # bo holds no access:services: the hub refuses and the service learns nothing
    bo = Visitor()
    await log_in(bo, hub, "bo")
    assert "/services/" not in (await bo.follow(f"{public(hub)}/hub/home")).text
    page = await bo.follow(f"{public(hub)}/services/quick/")
    assert page.status == 403
    assert "access:services" in page.text
    assert "Traceback" not in page.text
