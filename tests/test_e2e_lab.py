"""A person, a browser, JupyterLab: the whole path through the real parts.

Chromium logs in at the hub, starts the server, lands in JupyterLab (through
the built-in proxy and the hub's OAuth), makes a notebook, runs `print(6*7)`,
sees 42, saves; the server is stopped and started again and the notebook is
still there with its output. Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from tests.browser import LAB_TIMEOUT, browser_page, run_in_new_notebook
from tests.conftest import HubFactory, behind_atrium_proxy
from tests.test_pages import PASSWORD
from tests.waits import eventually


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


async def test_log_in_run_a_cell_save_restart(hub_factory: HubFactory, tmp_path: Path) -> None:
    # the hub's defaults: the local spawner (one-account mode, servers forked from its
    # template) running atrium-singleuser; the Start button always shows the progress page
    users = tmp_path / "users"
    config = (
        f"c.LocalProcessSpawner.users_root = {str(users)!r}\n"
        "c.LocalProcessSpawner.allow_root = True\n"  # the tests run as root
        "c.LocalProcessSpawner.start_timeout = 90\n"
    )
    hub = await hub_factory(
        **behind_atrium_proxy(
            tmp_path,
            spawner_class="spawners.local.LocalProcessSpawner",
            slow_spawn_timeout=90,
            spawn_page_wait=0,
        ),
        config=config,
    )
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    await hub.add_user("ann", password=PASSWORD)
    shots = tmp_path / "shots"
    shots.mkdir()
    async with browser_page() as page:
        await page.goto(f"{public}/hub/login")
        await page.get_by_label("Username").fill("ann")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(re.compile(r".*/hub/spawn/ann.*"))
        await page.get_by_role("button", name="Start my server").click()
        # the progress page, following the start as it goes
        await page.wait_for_url(re.compile(r".*/hub/spawn-pending/ann.*"))
        await page.get_by_text("Server requested").wait_for()
        await page.screenshot(path=str(shots / "0-progress.png"))
        await page.wait_for_url(re.compile(r".*/user/ann/lab.*"), timeout=LAB_TIMEOUT)

        # JupyterLab's launcher: a new Python notebook, a cell run
        assert (
            await run_in_new_notebook(page, "print(6*7)", shots, "1-launcher.png", "2-ran.png")
            == "42"
        )
        await page.locator('.jp-NotebookPanel-toolbar [data-command="docmanager:save"]').click()
        await page.get_by_role("button", name="Rename and Save").click()
        notebook = users / "ann" / "home" / "Untitled.ipynb"

        async def saved_with_output() -> bool:
            try:
                cells = orjson.loads(notebook.read_bytes())["cells"]
            except (FileNotFoundError, orjson.JSONDecodeError):
                return False  # not written yet, or being written right now
            return any(
                o.get("text") == ["42\n"] or o.get("text") == "42\n"
                for c in cells
                for o in c.get("outputs", [])
            )

        try:
            await eventually(saved_with_output, timeout=30)
        finally:
            await page.screenshot(path=str(shots / "2b-saved.png"))

        # stop the server, start it again: the notebook and its output are still there
        assert (await hub.api("DELETE", "/users/ann/server")).status in (202, 204)
        await page.goto(f"{public}/hub/spawn/ann")
        await page.get_by_role("button", name="Start my server").click()
        await page.wait_for_url(re.compile(r".*/user/ann/lab.*"), timeout=LAB_TIMEOUT)
        await page.goto(f"{public}/user/ann/lab/tree/Untitled.ipynb")
        output = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
        await output.wait_for(timeout=LAB_TIMEOUT)
        assert (await output.inner_text()).strip() == "42"
        await page.screenshot(path=str(shots / "3-reopened.png"))
