"""The requester cache: short-lived, never past a token's expiry, cleared by writes."""

from __future__ import annotations

import datetime

from hub.authcache import RequesterCache
from hub.rbac.access import Requester
from hub.timeutil import utcnow
from tests.conftest import HubFactory, RunningHub

ANN = Requester.build("user", "ann", 1, False, frozenset({"read:users!user=ann"}))


def test_entries_expire_with_ttl_and_token() -> None:
    cache = RequesterCache(ttl=60)
    cache.put("t1", ANN, None)
    cache.put("t2", ANN, utcnow() - datetime.timedelta(seconds=1))
    assert cache.get("t1") is ANN
    assert cache.get("t2") is None  # the token itself has expired
    assert cache.get("unknown") is None
    short = RequesterCache(ttl=0.000001)
    short.put("t1", ANN, None)
    assert short.get("t1") is None


def test_zero_ttl_disables_and_size_is_bounded() -> None:
    off = RequesterCache(ttl=0)
    off.put("t", ANN, None)
    assert off.get("t") is None
    assert len(off) == 0
    small = RequesterCache(ttl=60, max_entries=3)
    for i in range(10):
        small.put(f"t{i}", ANN, None)
    assert len(small) <= 3


async def test_api_writes_take_effect_on_the_next_request(hub: RunningHub) -> None:
    await hub.add_user("ann", admin=True)
    token = await hub.token_for("ann")
    assert (await hub.api("GET", "/users", token=token)).status == 200  # now cached
    r = await hub.api("PATCH", "/users/ann", {"admin": False})
    assert r.status == 200
    assert (await hub.api("GET", "/users", token=token)).status == 403
    listed = (await hub.api("GET", "/users/ann/tokens")).json()["api_tokens"]
    assert (await hub.api("GET", "/user", token=token)).status == 200
    r = await hub.api("DELETE", f"/users/ann/tokens/{listed[0]['id']}")
    assert r.status == 204
    assert (await hub.api("GET", "/user", token=token)).status == 403


async def test_changes_behind_the_hubs_back_apply_within_the_ttl(hub_factory: HubFactory) -> None:
    """A token revoked directly in the database stops working once its entry expires."""
    import asyncio

    hub = await hub_factory(auth_cache_ttl=0.3)
    from sqlalchemy import delete, select

    from hub.db.models import APIToken, User

    await hub.add_user("bob")
    token = await hub.token_for("bob")
    assert (await hub.api("GET", "/user", token=token)).status == 200
    with hub.db.session() as session:
        bob = session.scalar(select(User.id).where(User.name == "bob"))
        session.execute(delete(APIToken).where(APIToken.user_id == bob))
    assert (await hub.api("GET", "/user", token=token)).status == 200  # still cached
    await asyncio.sleep(0.4)
    assert (await hub.api("GET", "/user", token=token)).status == 403
