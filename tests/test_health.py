"""`/hub/health` (liveness) and `/hub/health/ready` (readiness: the database and the
proxy), with the parts really missing or stopped: an external proxy that is not there,
and a PostgreSQL server of the test's own, stopped and started again under the hub."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.db.engine import Database
from hub.db.migrate import upgrade
from tests.conftest import HubFactory, RunningHub, behind_atrium_proxy, running_postgres
from tests.pg import PostgresServer
from tests.waits import eventually


async def ready(hub: RunningHub) -> tuple[int, dict[str, object], str]:
    r = await hub.api("GET", "/health/ready", token=None)
    return r.status, r.json(), r.headers.get("Retry-After", "")


async def test_ready_without_a_proxy(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    assert await ready(hub) == (
        200,
        {"status": "ok", "checks": {"database": "ok", "proxy": "not used"}},
        "",
    )
    live = await hub.api("GET", "/health", token=None)
    assert (live.status, live.json()) == (200, {"status": "ok"})


async def test_ready_follows_the_proxy(
    hub_factory: HubFactory, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    hub = await hub_factory(**behind_atrium_proxy(tmp_path))
    status, body, _ = await ready(hub)
    assert (status, body["checks"]) == (200, {"database": "ok", "proxy": "ok"})
    # an external proxy that is not there: a port held bound, never listening
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    request.addfinalizer(holder.close)
    gone = await hub_factory(
        proxy="chp",
        proxy_should_start=False,
        proxy_api_url=f"http://127.0.0.1:{holder.getsockname()[1]}",
    )
    status, body, retry = await ready(gone)
    assert status == 503
    assert retry == "5"
    assert body["message"] == "Not ready: proxy not answering"
    assert body["checks"] == {"database": "ok", "proxy": "not answering"}
    # alive all the same: nothing for a supervisor to restart
    assert (await gone.api("GET", "/health", token=None)).status == 200


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test alone: it is stopped and started under the hub."""
    with running_postgres("atrium-pg-health-", fast_stop=True) as server:
        yield server


@pytest.fixture
def db_url(own_postgres: PostgresServer) -> str:
    url = own_postgres.create_database("atrium")
    db = Database(url)
    upgrade(db.engine)
    db.close()
    return url


@pytest.mark.postgres
async def test_ready_follows_the_database_and_recovers_without_a_restart(
    hub_factory: HubFactory, own_postgres: PostgresServer
) -> None:
    hub = await hub_factory()
    assert (await ready(hub))[0] == 200
    own_postgres.stop(fast=True)  # the database goes down under the hub
    status, body, retry = await ready(hub)
    assert (status, retry) == (503, "5")
    assert body["checks"] == {"database": "not answering", "proxy": "not used"}
    assert "127.0.0.1" not in str(body)  # no address, no URL in the answer
    assert (await hub.api("GET", "/health", token=None)).status == 200
    # the API says so too, with a retry hint, and changes nothing
    for method, path, body in (
        ("GET", "/users", None),
        ("POST", "/users/newcomer", None),
        ("POST", "/users/admin/tokens", {"note": "x"}),
    ):
        r = await hub.api(method, path, body)
        assert r.status == 503, (path, r.body)
        assert r.headers["Retry-After"]
        assert "retry in a few seconds" in r.json()["message"]
    own_postgres.start()

    async def back() -> bool:
        return (await ready(hub))[0] == 200

    await eventually(back, timeout=30)
    # and the hub works again without a restart, with nothing lost or half-written
    assert (await hub.api("GET", "/users/admin")).status == 200
    assert (await hub.api("GET", "/users/newcomer")).status == 404
    assert (await hub.api("POST", "/users/newcomer")).status == 201
