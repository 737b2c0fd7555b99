"""Spawn limits: servers starting at once, and servers active at once (429 + Retry-After)."""

from __future__ import annotations

import asyncio

from tests.conftest import HubFactory, expect_error
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
