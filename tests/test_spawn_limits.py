"""Spawn limits: servers starting at once, and servers active at once (429 + Retry-After)."""

from __future__ import annotations

import asyncio

import pytest

from hub.errors import ConfigError
from tests.conftest import HubFactory, expect_error
from tests.test_pages import PASSWORD, Browser
from tests.waits import eventually

SPAWNER = "tests.spawner.ProcessSpawner"


async def test_concurrent_spawn_limit(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        concurrent_spawn_limit=2,
        slow_spawn_timeout=0.1,
        config="c.ProcessSpawner.start_delay = 1.0\n",
    )
    for name in ("ann", "bo", "cy"):
        await hub.add_user(name)
    assert (await hub.api("POST", "/users/ann/server")).status == 202
    assert (await hub.api("POST", "/users/bo/server")).status == 202
    r = await hub.api("POST", "/users/cy/server")
    message = expect_error(r, 429, "Too many servers are starting")
    assert "try again" in message
    assert 10 <= int(r.headers["Retry-After"]) <= 30
    model = (await hub.api("GET", "/users/cy")).json()
    assert model["servers"] == {}  # nothing was started or recorded for cy

    async def both_ready() -> bool:
        servers = [(await hub.api("GET", f"/users/{n}")).json()["servers"] for n in ("ann", "bo")]
        return all(s.get("", {}).get("ready") for s in servers)

    await eventually(both_ready)
    # once those are up, cy's turn
    assert (await hub.api("POST", "/users/cy/server")).status in (201, 202)


async def test_active_server_limit(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, active_server_limit=2)
    for name in ("ann", "bo", "cy"):
        await hub.add_user(name)
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    assert (await hub.api("POST", "/users/bo/server")).status == 201
    r = await hub.api("POST", "/users/cy/server")
    expect_error(r, 429, "as many servers as it may (2)")
    assert r.headers["Retry-After"] == "60"
    # a stop makes room
    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    assert (await hub.api("POST", "/users/cy/server")).status == 201


async def test_limits_hold_under_a_burst(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, active_server_limit=3)
    names = [f"s{i}" for i in range(8)]
    for name in names:
        await hub.add_user(name)
    results = await asyncio.gather(*(hub.api("POST", f"/users/{n}/server") for n in names))
    statuses = sorted(r.status for r in results)
    assert statuses.count(201) == 3  # never more than the limit, even all at once
    assert statuses.count(429) == 5


async def test_group_overrides_give_some_groups_more(hub_factory: HubFactory) -> None:
    config = (
        "c.ProcessSpawner.mem_limit = '1G'\n"
        "c.ProcessSpawner.cpu_limit = 1\n"
        "c.Spawner.group_overrides = {\n"
        "    'tas': {'mem_limit': '4G', 'cpu_limit': 2},\n"
        "    'gpu-lab': {'mem_limit': '16G'},\n"
        "    'broken': {'mem_limit': 'lots'},\n"
        "}\n"
    )
    hub = await hub_factory(spawner_class=SPAWNER, config=config)
    for name in ("ann", "ta", "both", "bad"):
        await hub.add_user(name)
    for group, members in (("tas", ["ta", "both"]), ("gpu-lab", ["both"]), ("broken", ["bad"])):
        assert (await hub.api("POST", f"/groups/{group}", {"users": members})).status == 201

    async def limits(name: str) -> tuple[int | None, float | None]:
        assert (await hub.api("POST", f"/users/{name}/server")).status == 201
        spawners = hub.state.orchestrator.spawners.values()
        spawner = next(s for s in spawners if s.user_name == name)
        return spawner.mem_limit, spawner.cpu_limit

    gib = 1024**3
    assert await limits("ann") == (gib, 1.0)
    assert await limits("ta") == (4 * gib, 2.0)
    assert await limits("both") == (16 * gib, 2.0)  # the later group wins where both set it
    # out of the group, the next start has the usual limits again
    assert (await hub.api("DELETE", "/users/ta/server")).status == 204
    assert (await hub.api("DELETE", "/groups/tas/users", {"users": ["ta"]})).status == 200
    assert await limits("ta") == (gib, 1.0)
    # a value the setting refuses fails the start with a message, and nothing is left pending
    r = await hub.api("POST", "/users/bad/server")
    expect_error(r, 500, "group_overrides['broken']: ")
    model = (await hub.api("GET", "/users/bad")).json()
    assert model["pending"] is None
    assert not model["servers"].get("", {}).get("ready")


async def test_group_overrides_of_unknown_settings_stop_the_hub(hub_factory: HubFactory) -> None:
    config = "c.Spawner.group_overrides = {'tas': {'mem_limt': '4G'}}\n"
    with pytest.raises(ConfigError, match=r"group_overrides\['tas'\]: ProcessSpawner has no"):
        await hub_factory(spawner_class=SPAWNER, config=config)


async def test_the_spawn_page_says_the_hub_is_busy(hub_factory: HubFactory) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        concurrent_spawn_limit=1,
        slow_spawn_timeout=0.1,
        spawn_page_wait=0,
        config="c.ProcessSpawner.start_delay = 2.0\n",
    )
    await hub.add_user("ann")
    await hub.add_user("bo", password=PASSWORD)
    assert (await hub.api("POST", "/users/ann/server")).status == 202
    browser = Browser(hub)
    await browser.login("bo")
    r = await browser.request("POST", "/hub/spawn/bo", {"_xsrf": await browser.xsrf()})
    assert r.code == 429
    assert 10 <= int(r.headers["Retry-After"]) <= 30
    page = r.body.decode()
    assert "Too busy just now" in page
    assert "Wait a moment and try again" in page
    assert "Traceback" not in page
    # nothing was started for bo
    assert (await hub.api("GET", "/users/bo")).json()["servers"] == {}
