"""A person logs in with their Unix account in Chromium and gets a server running as it.

The PAM authenticator with the local spawner's system-users mode, through the
real proxy: a wrong password is refused on the page, the right one lands on
the hub, the server starts as the person's own Unix account (in their home
directory) and JupyterLab opens. Needs root, useradd, Chromium and Atrium in
/opt/atrium-test-sysusers (scripts/test.sh installs it); skipped elsewhere,
failed with CI=true.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.auth.login import WRONG
from tests.browser import browser_page, watch_console
from tests.conftest import HubFactory, behind_atrium_proxy, missing_part
from tests.test_auth_pam import PASSWORD, account
from tests.unixusers import UnixUsers

SYSVENV = Path("/opt/atrium-test-sysusers")
LOAD = 90_000  # ms: a server's first start on a busy machine


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


def uids_of(pid: int) -> set[int]:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    return {int(u) for u in line.split()[1:]}


async def test_a_unix_account_logs_in_and_its_server_runs_as_it(
    unix_users: UnixUsers, hub_factory: HubFactory, tmp_path: Path, run_root: Path, shots: Path
) -> None:
    if not (SYSVENV / "bin" / "atrium-singleuser").exists():
        missing_part(f"Atrium in {SYSVENV} (scripts/test.sh installs it)")
    name = account(unix_users)
    import pwd

    entry = pwd.getpwnam(name)
    marker = Path(entry.pw_dir) / "from-my-unix-home.txt"
    marker.write_text("mine\n")
    config = (
        "c.Hub.authenticator_class = 'pam'\n"
        "c.LocalProcessSpawner.mode = 'system-users'\n"
        f"c.LocalProcessSpawner.runtime_root = {str(run_root)!r}\n"
        f"c.LocalProcessSpawner.cmd = [{str(SYSVENV / 'bin' / 'atrium-singleuser')!r}]\n"
        "c.LocalProcessSpawner.start_timeout = 90\n"
    )
    hub = await hub_factory(
        **behind_atrium_proxy(
            tmp_path,
            spawner_class="spawners.local.LocalProcessSpawner",
            slow_spawn_timeout=90,
            title="Lab machines",
        ),
        config=config,
    )
    public = f"http://127.0.0.1:{hub.app.settings.port}"
    async with browser_page() as page:
        problems = watch_console(page)
        page.set_default_timeout(LOAD)
        await page.goto(f"{public}/hub/login")
        await page.get_by_label("Username").fill(name)
        await page.get_by_label("Password").fill("not-my-password")
        await page.screenshot(path=str(shots / "1-login.png"))
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_role("alert").wait_for()
        assert await page.get_by_role("alert").inner_text() == WRONG
        await page.screenshot(path=str(shots / "2-wrong-password.png"))

        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(re.compile(rf".*/hub/spawn/{name}.*"))
        await page.screenshot(path=str(shots / "3-logged-in.png"))
        await page.get_by_role("button", name="Start my server").click()
        await page.wait_for_url(re.compile(rf".*/user/{name}/lab.*"))
        await page.locator(".jp-DirListing-item", has_text=marker.name).wait_for()
        await page.screenshot(path=str(shots / "4-lab.png"))
        assert problems == []

    model = (await hub.api("GET", f"/users/{name}")).json()
    assert model["servers"][""]["ready"] is True
    pid = int(model["servers"][""]["state"]["pid"])
    assert uids_of(pid) == {entry.pw_uid}  # real, effective, saved: all the account's
    assert (await hub.api("DELETE", f"/users/{name}/server")).status in (202, 204)
