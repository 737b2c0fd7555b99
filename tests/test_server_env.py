"""What a started server gets from the hub: its environment and its own credentials.

The test spawner's processes are real, so their environment is read from
/proc. The server's token identifies as its owner with only the server's
scopes; every start issues a new one and every stop revokes it, along with the
server's OAuth client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from hub.db.models import OAuthClient
from tests.conftest import HubFactory, RunningHub
from tests.spawner import started_pids

SPAWNER = "tests.spawner.ProcessSpawner"


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def env_port(env: dict[str, str]) -> str:
    return env["JUPYTERHUB_SERVICE_URL"].split(":")[2].split("/")[0]


async def start(hub: RunningHub, path: str) -> dict[str, str]:
    assert (await hub.api("POST", path)).status == 201
    return environ(started_pids[-1])


def oauth_client(hub: RunningHub, ident: str) -> Any:
    def find(session: Any) -> Any:
        row = session.scalar(select(OAuthClient).where(OAuthClient.identifier == ident))
        return None if row is None else (row.redirect_uri, list(row.allowed_scopes))

    return hub.db.run(find)


@pytest.mark.parametrize("base_url", ["/", "/jupyter/"])
async def test_the_environment_contract(hub_factory: HubFactory, base_url: str) -> None:
    hub = await hub_factory(
        spawner_class=SPAWNER,
        base_url=base_url,
        allow_named_servers=True,
        config="c.ProcessSpawner.environment = {'COURSE': 'cs101', 'JUPYTERHUB_USER': 'x'}\n"
        "c.ProcessSpawner.default_url = '/lab'\n",
    )
    await hub.add_user("ann@lab")
    env = await start(hub, "/users/ann@lab/servers/gpu")
    hub_root = hub.url[: -len(base_url + "hub/")]
    api = f"{hub_root}{base_url}hub/api"
    prefix = f"{base_url}user/ann@lab/gpu/"
    scope = orjson.dumps(["access:servers!server=ann@lab/gpu"]).decode()
    assert {k: v for k, v in env.items() if k.startswith("JUPYTERHUB_")} == {
        "JUPYTERHUB_API_TOKEN": env["JUPYTERHUB_API_TOKEN"],
        "JUPYTERHUB_API_URL": api,
        "JUPYTERHUB_ACTIVITY_URL": f"{api}/users/ann@lab/activity",
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-ann@lab-gpu",
        "JUPYTERHUB_USER": "ann@lab",  # the hub's value wins over c.Spawner.environment
        "JUPYTERHUB_SERVER_NAME": "gpu",
        "JUPYTERHUB_BASE_URL": base_url,
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_SCOPES": scope,
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scope,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_PUBLIC_URL": "",
        "JUPYTERHUB_PUBLIC_HUB_URL": "",
        "JUPYTERHUB_DEFAULT_URL": "/lab",
        # added by the spawner, which knows where the server listens
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{env_port(env)}{prefix}",
    }
    assert env["JPY_API_TOKEN"] == env["JUPYTERHUB_API_TOKEN"]
    assert env["COURSE"] == "cs101"
    assert await oauth_client(hub, "jupyterhub-user-ann@lab-gpu") == (
        f"{prefix}oauth_callback",
        ["access:servers!server=ann@lab/gpu"],
    )


async def test_the_server_token_is_limited_and_lives_with_the_server(
    hub_factory: HubFactory,
) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    await hub.add_user("bo")
    env = await start(hub, "/users/ann/server")
    token = env["JUPYTERHUB_API_TOKEN"]
    me = await hub.api("GET", "/user", token=token)
    assert me.status == 200
    model = me.json()
    assert model["name"] == "ann"
    assert set(model["scopes"]) == {
        "access:servers!server=ann/",
        "read:users:activity!user=ann",
        "users:activity!user=ann",
        # anyone may read their own name and groups (JupyterHub's identify)
        "read:users:name!user=ann",
        "read:users:groups!user=ann",
    }
    # it may report ann's activity, and nothing more
    r = await hub.api(
        "POST",
        "/users/ann/activity",
        {"last_activity": "2026-01-01T00:00:00Z"},
        token=token,
    )
    assert r.status == 204
    assert (await hub.api("GET", "/users", token=token)).status == 403
    assert (await hub.api("POST", "/users/bo/activity", {}, token=token)).status in (403, 404)
    assert (await hub.api("DELETE", "/users/ann/server", token=token)).status in (403, 404)
    assert (await hub.api("POST", "/users/ann/tokens", {}, token=token)).status in (403, 404)

    # a stop revokes it, and the OAuth client goes too
    assert (await hub.api("DELETE", "/users/ann/server")).status == 204
    assert (await hub.api("GET", "/user", token=token)).status == 403
    assert await oauth_client(hub, "jupyterhub-user-ann") is None
    # a new start, a new token
    again = (await start(hub, "/users/ann/server"))["JUPYTERHUB_API_TOKEN"]
    assert again != token
    assert (await hub.api("GET", "/user", token=again)).status == 200
    assert (await hub.api("GET", "/user", token=token)).status == 403


async def test_a_failed_start_leaves_no_credentials(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER, config="c.ProcessSpawner.failure = 'exit'\n")
    await hub.add_user("ann")
    assert (await hub.api("POST", "/users/ann/server")).status == 500
    assert await oauth_client(hub, "jupyterhub-user-ann") is None

    def server_tokens(session: Any) -> int:
        from hub.db.models import APIToken

        return len(
            session.scalars(
                select(APIToken).where(APIToken.client_id == "jupyterhub-user-ann")
            ).all()
        )

    assert await hub.db.run(server_tokens) == 0
