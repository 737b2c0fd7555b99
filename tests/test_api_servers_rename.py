"""Renaming a named server: `PATCH /hub/api/users/{name}/servers/{server}` `{"name": "new"}`.

Our addition to JupyterHub's API. Only a stopped server may be renamed (a
running one's URL, route and OAuth client carry its name); the new name follows
the server-name rules and is unique per user; the change is in the audit log,
and the server's next start carries the new name everywhere. Bad requests get a
JSON error and change nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hub.db.models import AuditEvent
from tests.conftest import HubFactory, RunningHub, assert_bad_inputs_change_nothing, expect_error
from tests.spawner import started_pids
from tests.test_server_env import environ

SPAWNER = "tests.spawner.ProcessSpawner"


async def named_hub(hub_factory: HubFactory, **settings: Any) -> RunningHub:
    hub = await hub_factory(spawner_class=SPAWNER, allow_named_servers=True, **settings)
    await hub.add_user("ann")
    await hub.add_user("bo")
    return hub


async def stopped_server(hub: RunningHub, user: str, name: str) -> None:
    assert (await hub.api("POST", f"/users/{user}/servers/{name}")).status == 201
    assert (await hub.api("DELETE", f"/users/{user}/servers/{name}")).status == 204


async def server_names(hub: RunningHub, user: str) -> list[str]:
    r = await hub.api("GET", f"/users/{user}?include_stopped_servers=1")
    return sorted(r.json()["servers"])


async def test_rename_a_stopped_server(hub_factory: HubFactory) -> None:
    hub = await named_hub(hub_factory)
    await stopped_server(hub, "ann", "lab")
    ann = await hub.token_for("ann")
    r = await hub.api("PATCH", "/users/ann/servers/lab", {"name": "notes"}, token=ann)
    assert r.status == 200, r.body
    model = r.json()
    assert (model["name"], model["url"], model["stopped"]) == ("notes", "/user/ann/notes/", True)
    assert model["progress_url"] == "/hub/api/users/ann/servers/notes/progress"
    assert await server_names(hub, "ann") == ["notes"]

    def events(session: Any) -> list[tuple[str, str, str, Any]]:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == "server.rename"))
        return [(e.actor, e.action, e.target, e.details) for e in rows]

    assert await hub.db.run(events) == [("ann", "server.rename", "ann/lab", {"to": "ann/notes"})]
    # its next start carries the new name: URL, OAuth client, server name
    assert (await hub.api("POST", "/users/ann/servers/notes", token=ann)).status == 201
    env = environ(started_pids[-1])
    assert env["JUPYTERHUB_SERVER_NAME"] == "notes"
    assert env["JUPYTERHUB_CLIENT_ID"] == "jupyterhub-user-ann-notes"
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/ann/notes/"
    # the same name again is no change
    assert (await hub.api("DELETE", "/users/ann/servers/notes")).status == 204
    r = await hub.api("PATCH", "/users/ann/servers/notes", {"name": "notes"}, token=ann)
    assert (r.status, r.json()["name"]) == (200, "notes")
    assert len(await hub.db.run(events)) == 1


async def test_bad_renames_change_nothing(hub_factory: HubFactory) -> None:
    hub = await named_hub(hub_factory)
    await stopped_server(hub, "ann", "lab")
    assert (await hub.api("POST", "/users/ann/servers/gpu")).status == 201  # running
    path = "/users/ann/servers/lab"
    await assert_bad_inputs_change_nothing(
        hub,
        [
            ("PATCH", "/users/ann/servers/gpu", {"name": "cpu"}, 409, "stop it before renaming"),
            ("PATCH", path, {"name": "gpu"}, 409, "already has a server named gpu"),
            ("PATCH", path, {"name": ""}, 400, "must not be empty"),
            ("PATCH", path, {"name": "a/b"}, 400, "is not allowed"),
            ("PATCH", path, {"name": "a b"}, 400, "is not allowed"),
            ("PATCH", path, {"name": "-x"}, 400, "must start with a letter or digit"),
            ("PATCH", path, {"name": ".."}, 400, "invalid server name"),
            ("PATCH", path, {"name": "x" * 65}, 400, "too long"),
            ("PATCH", path, {"name": "x<script>"}, 400, "not allowed"),
            ("PATCH", path, {"name": 5}, 400, "must be a string"),
            ("PATCH", path, {"name": None}, 400, "must be a string"),
            ("PATCH", path, {}, 400, "send the new name"),
            ("PATCH", path, {"name": "ok", "admin": True}, 400, "only field accepted"),
            ("PATCH", path, ["ok"], 400, "must be a JSON object"),
            ("PATCH", path, b"{name: ok}", 400, "not valid JSON"),
            ("PATCH", path, b"", 400, "must be JSON"),
            ("PATCH", "/users/ann/servers/nope", {"name": "x"}, 404, "no server named nope"),
            ("PATCH", "/users/ann/servers/", {"name": "x"}, 400, "default server"),
            ("PATCH", "/users/nobody/servers/lab", {"name": "x"}, 404, "no such user"),
            ("PATCH", "/users/ann/server", {"name": "x"}, 405, "method not allowed"),
        ],
    )
    assert await server_names(hub, "ann") == ["gpu", "lab"]


async def test_who_may_rename(hub_factory: HubFactory) -> None:
    hub = await named_hub(hub_factory)
    await stopped_server(hub, "ann", "lab")
    bo = await hub.token_for("bo")
    reader = await hub.token_for("ann", scopes=["read:servers!user=ann"])
    starter = await hub.token_for("ann", scopes=["start:servers!user=ann"])
    other_server = await hub.token_for("ann", scopes=["servers!server=ann/other"])
    body = {"name": "notes"}
    expect_error(await hub.api("PATCH", "/users/ann/servers/lab", body, token=bo), 404)
    for token in (reader, starter):
        r = await hub.api("PATCH", "/users/ann/servers/lab", body, token=token)
        expect_error(r, 403, "requires any of [servers]")
    r = await hub.api("PATCH", "/users/ann/servers/lab", body, token=other_server)
    expect_error(r, 404)
    r = await hub.api("PATCH", "/users/ann/servers/lab", body, token=None)
    expect_error(r, 403)
    assert await server_names(hub, "ann") == ["lab"]
    # a token for that one server may rename it
    own = await hub.token_for("ann", scopes=["servers!server=ann/lab"])
    assert (await hub.api("PATCH", "/users/ann/servers/lab", body, token=own)).status == 200


async def test_a_starting_server_keeps_its_name(hub_factory: HubFactory) -> None:
    hub = await named_hub(hub_factory, slow_spawn_timeout=0.1)
    r = await hub.api("POST", "/users/ann/servers/lab", {"start_delay": 30})
    assert r.status == 202
    r = await hub.api("PATCH", "/users/ann/servers/lab", {"name": "notes"})
    expect_error(r, 409, "ann/lab is starting")
    assert (await hub.api("DELETE", "/users/ann/servers/lab")).status == 204
    assert (await hub.api("PATCH", "/users/ann/servers/lab", {"name": "notes"})).status == 200


async def test_no_renames_without_named_servers(hub_factory: HubFactory) -> None:
    hub = await hub_factory(spawner_class=SPAWNER)
    await hub.add_user("ann")
    r = await hub.api("PATCH", "/users/ann/servers/lab", {"name": "notes"})
    expect_error(r, 400, "named servers are not enabled")
