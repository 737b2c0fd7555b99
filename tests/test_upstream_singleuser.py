"""JupyterHub's own `jupyterhub-singleuser` (JupyterHub 6, unchanged) under Atrium.

The server reads the environment contract, checks API tokens against
`/hub/api/user`, logs browsers in through the hub's OAuth provider and reports
activity: if any of that differed from JupyterHub's, this is where it shows.
Runs through the built-in proxy; `scripts/test.sh` puts JupyterHub 6 and
jupyter_server into `.scratch/jupyterhub-venv`.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.browser import browser_page
from tests.conftest import HubFactory, behind_atrium_proxy, missing_part
from tests.test_pages import PASSWORD

REPO = Path(__file__).resolve().parent.parent
SINGLEUSER = REPO / ".scratch" / "jupyterhub-venv" / "bin" / "jupyterhub-singleuser"


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


@pytest.fixture
def singleuser() -> str:
    python = SINGLEUSER.parent / "python"
    if not SINGLEUSER.exists():
        missing_part("jupyterhub-singleuser (.scratch/jupyterhub-venv, see scripts/test.sh)")
    return str(python)


async def test_jupyterhub_singleuser_runs_under_atrium(
    hub_factory: HubFactory, tmp_path: Path, singleuser: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "hello.txt").write_text("hi")
    cmd = [
        str(SINGLEUSER),
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={home}",
        "--ServerApp.allow_root=True",
        "--ServerApp.log_level=WARN",
    ]
    config = f"c.ProcessSpawner.cmd = {cmd!r}\nc.ProcessSpawner.start_timeout = 60\n"
    config += (
        "c.ProcessSpawner.environment = {"
        f"'HOME': {str(home)!r}, 'JUPYTER_RUNTIME_DIR': {str(tmp_path / 'rt')!r}, "
        f"'JUPYTER_DATA_DIR': {str(tmp_path / 'data')!r}, "
        f"'JUPYTER_CONFIG_DIR': {str(tmp_path / 'cfg')!r}}}\n"
    )
    hub = await hub_factory(**behind_atrium_proxy(tmp_path, slow_spawn_timeout=60), config=config)
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    await hub.add_user("ann", password=PASSWORD)
    await hub.add_user("bo", password=PASSWORD)
    assert (await hub.api("POST", "/users/ann/server")).status == 201

    # API clients: ann's token opens her server's API, bo's does not
    client = AsyncHTTPClient()
    ann = await hub.token_for("ann")
    bo = await hub.token_for("bo")
    r = await client.fetch(
        f"{public}/user/ann/api/contents/hello.txt",
        headers={"Authorization": f"token {ann}"},
        raise_error=False,
    )
    assert r.code == 200, r.body[:300]
    assert orjson.loads(r.body)["content"] == "hi"
    r = await client.fetch(
        f"{public}/user/ann/api/contents/hello.txt",
        headers={"Authorization": f"token {bo}"},
        raise_error=False,
    )
    assert r.code == 403

    # a browser: to the hub's login through OAuth, and back into ann's server
    async with browser_page() as page:
        # a page (not the API, which answers 403 instead of redirecting)
        await page.goto(f"{public}/user/ann/files/hello.txt")
        await page.wait_for_url(re.compile(r".*/hub/login\?next=.*"))
        await page.get_by_label("Username").fill("ann")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(f"{public}/user/ann/files/hello.txt", timeout=30_000)
        assert await page.inner_text("body") == "hi"
        await page.screenshot(path=str(tmp_path / "upstream-singleuser.png"))

    # the server reported activity with its token
    model = (await hub.api("GET", "/users/ann")).json()
    assert model["servers"][""]["last_activity"]
