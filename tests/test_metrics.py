"""`/hub/metrics`: what the hub measures, read back the way Prometheus reads it.

The registry is the process's, shared by every hub a test run starts, so each check
compares the figures before and after what the test does.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.conftest import HubFactory, RunningHub, behind_atrium_proxy, expect_error
from tests.waits import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def fetch(hub: RunningHub, token: str | None) -> HTTPResponse:
    headers = {"Authorization": f"token {token}"} if token else {}
    return await AsyncHTTPClient().fetch(hub.url + "metrics", headers=headers, raise_error=False)


async def scrape(hub: RunningHub) -> Samples:
    r = await fetch(hub, hub.admin_token)
    assert r.code == 200, r.body
    assert r.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(r.body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_what_the_hub_measures(hub_factory: HubFactory, tmp_path: Path) -> None:
    hub = await hub_factory(**behind_atrium_proxy(tmp_path))
    for user in ("ann", "bob", "cy"):
        await hub.add_user(user)
    before = await scrape(hub)
    # requests, by handler class
    for _ in range(3):
        assert (await hub.api("GET", "/users/ann")).status == 200
    expect_error(await hub.api("GET", "/users/nobody"), 404)
    # a server started (its route added), one that fails to start, one stopped
    assert (await hub.api("POST", "/users/ann/server")).status == 201
    r = await hub.api("POST", "/users/bob/server", {"failure": "exception"})
    assert r.status >= 400
    after = await scrape(hub)

    handler = "hub.api.users.UserAPIHandler"
    got = total(after, "jupyterhub_request_duration_seconds_count", handler=handler, code="200")
    was = total(before, "jupyterhub_request_duration_seconds_count", handler=handler, code="200")
    assert got - was == 3
    got = total(after, "jupyterhub_request_duration_seconds_count", handler=handler, code="404")
    was = total(before, "jupyterhub_request_duration_seconds_count", handler=handler, code="404")
    assert got - was == 1
    spawns = "jupyterhub_server_spawn_duration_seconds_count"
    assert value(after, spawns, status="success") - value(before, spawns, status="success") == 1
    assert value(after, spawns, status="failure") - value(before, spawns, status="failure") == 1
    adds = "jupyterhub_proxy_add_duration_seconds_count"
    assert value(after, adds, status="success") - value(before, adds, status="success") == 1
    # the counts come from this hub's database
    assert value(after, "jupyterhub_running_servers") == 1
    assert value(after, "jupyterhub_total_users") == 4  # with the admin
    # ann started a server just now (activity); bob's start failed before any
    assert value(after, "jupyterhub_active_users", period="1h") >= 1
    routes = value(before, "atrium_proxy_routes")  # the hub's own
    assert value(after, "atrium_proxy_routes") == routes + 1
    db = "atrium_db_query_duration_seconds_count"
    assert total(after, db) > total(before, db)
    assert value(after, db, operation="refresh_counts") >= 1

    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    stopped = await scrape(hub)
    stops = "jupyterhub_server_stop_seconds_count"
    assert value(stopped, stops, status="success") - value(after, stops, status="success") == 1
    deletes = "jupyterhub_proxy_delete_duration_seconds_count"
    assert value(stopped, deletes, status="success") - value(after, deletes, status="success") == 1
    assert value(stopped, "jupyterhub_running_servers") == 0
    assert value(stopped, "atrium_proxy_routes") == routes

    # the event loop's lag is sampled all the time
    async def loop_sampled() -> bool:
        now = await scrape(hub)
        return value(now, "jupyterhub_event_loop_interval_seconds_count") > value(
            before, "jupyterhub_event_loop_interval_seconds_count"
        )

    await eventually(loop_sampled, timeout=10)


async def test_metrics_need_the_scope(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.add_user("ann")
    ann = await hub.token_for("ann")
    for token in (ann, None):
        r = await fetch(hub, token)
        assert r.code == 403
        assert b"read:metrics" in r.body or token is None
