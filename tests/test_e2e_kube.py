"""A student, a browser, JupyterLab in a pod: the hub with the Kubernetes spawner on the
fake API server and its simulated node (`tests.kube`), behind Atrium's proxy.

Chromium logs in as a student; the spawn page offers the server profiles open to
them (not the one for group 'ml'); they choose one and start; the progress page
shows the pod's events; they land in JupyterLab, open a notebook and run
`print(6*7)`. The pod has the chosen profile's image and resources. An admin's view
of the student's spawn page offers the student's profiles, not the admin's, and the
GPU profile once the student is in 'ml'. Stopping from the home page deletes the
pod. Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from spawners.kubernetes import client, informer
from tests.browser import LAB_TIMEOUT, browser_page, run_in_new_notebook
from tests.conftest import HubFactory, behind_atrium_proxy
from tests.kube import start_fake_kube
from tests.test_kube_hub import node_config
from tests.test_pages import PASSWORD, Browser

ADMIN_PASSWORD = "admin-password-for-tests"  # the hub_factory's first admin
STUDENT = "sam"
PROFILES: list[dict[str, Any]] = [
    {
        "display_name": "Small",
        "description": "1 CPU, 1 GB",
        "slug": "small",
        "default": True,
        "kubespawner_override": {"image": "atrium/lab:small", "cpu_limit": 1, "mem_limit": "1G"},
    },
    {
        "display_name": "Large",
        "description": "2 CPUs, 4 GB",
        "slug": "large",
        "kubespawner_override": {
            "image": "atrium/lab:large",
            "cpu_limit": 2,
            "cpu_guarantee": 0.5,
            "mem_limit": "4G",
        },
    },
    {
        "display_name": "GPU",
        "description": "1 GPU",
        "slug": "gpu",
        "allowed_groups": ["ml"],
        "kubespawner_override": {
            "image": "atrium/lab:gpu",
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
        },
    },
]
# The progress page moves on to the server by itself once it is ready; this keeps what
# its event list showed in the tab's sessionStorage, to be read after the move.
RECORD_EVENTS = """
document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("events");
  if (!list) return;
  const save = () => {
    const kept = JSON.parse(sessionStorage.getItem("shown-events") || "[]");
    for (const item of list.children) {
      if (!kept.includes(item.textContent)) kept.push(item.textContent);
    }
    sessionStorage.setItem("shown-events", JSON.stringify(kept));
  };
  save();
  new MutationObserver(save).observe(list, { childList: true });
});
"""


@pytest.fixture
def db_url(sqlite_db_url: str) -> str:
    return sqlite_db_url


def offered(page: str) -> list[str]:
    """The profile slugs a spawn page's form offers, in order."""
    return re.findall(r'<input type="radio" name="profile" id="profile-\d+" value="([^"]*)"', page)


async def spawn_page(browser: Browser, user: str) -> str:
    r = await browser.request("GET", f"/hub/spawn/{user}")
    assert r.code == 200, r.body[:500]
    return str(r.body.decode())


async def test_a_student_chooses_a_profile_and_runs_a_cell_in_a_pod(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    async with start_fake_kube(tmp_path / "node") as kube:
        config = (
            node_config(kube)
            + f"c.KubeSpawner.profile_list = {PROFILES!r}\n"
            + "c.KubeSpawner.start_timeout = 90\n"
        )
        hub = await hub_factory(
            **behind_atrium_proxy(
                tmp_path,
                spawner_class="tests.test_kube_pods.NodeSpawner",
                slow_spawn_timeout=90,
                spawn_page_wait=0,
            ),
            config=config,
        )
        public = f"http://127.0.0.1:{hub.app.settings.port}"
        await hub.add_user(STUDENT, password=PASSWORD)
        # the admin is in 'ml'; the student is not, yet
        assert (await hub.api("POST", "/groups/ml", {"users": ["admin"]})).status == 201
        shots = tmp_path / "shots"
        shots.mkdir()
        try:
            async with browser_page() as page:
                await page.add_init_script(RECORD_EVENTS)
                await page.goto(f"{public}/hub/login")
                await page.get_by_label("Username").fill(STUDENT)
                await page.get_by_label("Password").fill(PASSWORD)
                await page.get_by_role("button", name="Log in").click()
                await page.wait_for_url(re.compile(rf".*/hub/spawn/{STUDENT}.*"))

                # the profiles open to everyone, the default chosen; not the GPU one
                radios = page.locator('input[type="radio"][name="profile"]')
                await radios.first.wait_for()
                await page.screenshot(path=str(shots / "0-profiles.png"))
                values = await radios.evaluate_all("els => els.map(e => e.value)")
                assert values == ["small", "large"]
                assert await page.get_by_role("radio", name=re.compile("^GPU")).count() == 0
                assert await page.get_by_role("radio", name=re.compile("^Small")).is_checked()
                await page.get_by_role("radio", name=re.compile("^Large")).check()
                await page.get_by_role("button", name="Start my server").click()

                # the progress page, following the pod's start
                await page.wait_for_url(re.compile(rf".*/hub/spawn-pending/{STUDENT}.*"))
                await page.get_by_text("Server requested").wait_for()
                await page.screenshot(path=str(shots / "1-progress.png"))
                await page.wait_for_url(
                    re.compile(rf".*/user/{STUDENT}/lab.*"), timeout=LAB_TIMEOUT
                )
                shown = orjson.loads(
                    await page.evaluate("sessionStorage.getItem('shown-events') || '[]'")
                )
                assert any(m.startswith("Scheduled: Successfully assigned") for m in shown), shown
                assert any('image "atrium/lab:large"' in m for m in shown), shown  # the profile's
                assert any(m.startswith("Started: Started container") for m in shown), shown

                # JupyterLab, served from the pod through the proxy: a notebook, a cell
                ran = await run_in_new_notebook(
                    page, "print(6*7)", shots, "2-launcher.png", "3-ran.png"
                )
                assert ran == "42"

                # the pod has what the chosen profile sets
                pods = kube.server.store.items("pods", kube.namespace)
                assert [p["metadata"]["name"] for p in pods] == [f"atrium-{STUDENT}"]
                container = pods[0]["spec"]["containers"][0]
                assert container["image"] == "atrium/lab:large"
                resources = container["resources"]
                assert resources == {
                    "requests": {"cpu": "500m"},
                    "limits": {"cpu": "2", "memory": str(4 * 1024**3)},
                }

                # stopped from the home page: the pod is deleted
                await page.goto(f"{public}/hub/home")
                await page.get_by_role("button", name=re.compile("^Stop")).click()
                await page.locator('li.server[data-server=""][data-state="stopped"]').wait_for(
                    timeout=LAB_TIMEOUT
                )
                await page.screenshot(path=str(shots / "4-stopped.png"))
                assert kube.server.store.items("pods", kube.namespace) == []

                # an admin (in 'ml') sees the student's choices on the student's spawn page
                admin = Browser(hub)
                assert (await admin.login("admin", ADMIN_PASSWORD)).code == 302
                assert offered(await spawn_page(admin, "admin")) == ["small", "large", "gpu"]
                assert offered(await spawn_page(admin, STUDENT)) == ["small", "large"]
                r = await hub.api("POST", "/groups/ml/users", {"users": [STUDENT]})
                assert r.status == 200, r.body
                assert offered(await spawn_page(admin, STUDENT)) == ["small", "large", "gpu"]

                # and so does the student
                await page.goto(f"{public}/hub/spawn/{STUDENT}")
                await page.get_by_role("radio", name=re.compile("^GPU")).wait_for()
                await page.screenshot(path=str(shots / "5-profiles-in-ml.png"))
                assert await radios.evaluate_all("els => els.map(e => e.value)") == [
                    "small",
                    "large",
                    "gpu",
                ]
        finally:
            if kube.server.store.items("pods", kube.namespace):
                # a failure above: stop the server while the fake still answers
                await hub.api("DELETE", f"/users/{STUDENT}/server")
            await informer.stop_all()
            await client.close_all()
