"""Contract: every error the API gives has one shape.

The body is exactly `{"status": int, "message": str}`, the HTTP status equals
`status`, the content type is JSON, and no traceback or internal detail leaks.
A sweep sends every route every method with every kind of credential and body;
targeted cases cover the statuses the sweep cannot reach (413, 409, 500, 503).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from hub import api
from tests.conftest import HubFactory, LogCapture, Response, RunningHub

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# API paths no route serves (answered by the JSON 404 catch-all; other unknown paths get
# a 404 page, see tests/test_fallback_pages.py)
UNROUTED = [
    "/api/no/such/endpoint",
    "/api/no-such-page",
    "/api/users/bob/nope",
    "/api/users/bob/x/y",
]
LEAKS = (b"Traceback", b'File "', b"sqlalchemy", b"psycopg", b"sqlite3", b"Exception")


def check_shape(r: Response, where: str) -> None:
    """The error contract, for one response."""
    assert r.status >= 400, where
    assert r.headers.get("Content-Type", "").startswith("application/json"), where
    body = orjson.loads(r.body)
    assert isinstance(body, dict), where
    assert set(body) == {"status", "message"}, where
    assert type(body["status"]) is int, where
    assert body["status"] == r.status, where
    assert isinstance(body["message"], str), where
    assert body["message"], where
    for leak in LEAKS:
        assert leak not in r.body, f"{where}: {leak!r} in {r.body[:300]!r}"


def concrete_paths() -> list[str]:
    """Every API route, with its path parameters filled in (relative to /hub)."""
    group = re.compile(r"\(\[\^/\][+*]\)")
    paths = []
    for pattern, _handler in api.all_routes():
        if pattern == r"/api/.*":
            continue
        # path parameters in order: a user name, then a token id or server name
        path = group.sub("bob", pattern, count=1)
        paths.append(group.sub("a1", path).replace("/?", "/"))
    return paths + UNROUTED


async def fetch(
    hub: RunningHub, method: str, path: str, body: bytes | None, token: str | None
) -> Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    if body is None and method in {"POST", "PUT", "PATCH"}:
        body = b""
    request = HTTPRequest(
        hub.url.removesuffix("hub/") + "hub" + path,
        method=method,
        headers=headers,
        body=body,
        allow_nonstandard_methods=True,
    )
    r = await AsyncHTTPClient().fetch(request, raise_error=False)
    return Response(r.code, r.body or b"", dict(r.headers))


async def test_every_route_every_method(hub: RunningHub, hub_logs: LogCapture) -> None:
    await hub.add_user("ann")
    await hub.add_user("bob")
    ann = await hub.token_for("ann")
    bodies = [None, b"{not json", b"[]", b'{"unknown": 1}']
    # (credential, bodies to send with it): without valid credentials the body never matters
    attempts: list[tuple[str | None, list[bytes | None]]] = [
        (None, [None]),
        ("garbage-token", [b"{not json"]),
        (ann, bodies),
        (hub.admin_token, bodies),
    ]
    seen: dict[int, int] = {}
    for path in concrete_paths():
        for method in METHODS:
            for token, sent in attempts:
                for body in sent if method in {"POST", "PUT", "PATCH", "DELETE"} else [None]:
                    r = await fetch(hub, method, path, body, token)
                    where = f"{method} {path} token={token and token[:6]} body={body!r}"
                    no_spawner = r.status == 503 and "/server" in path
                    assert r.status < 500 or no_spawner, f"{where}: {r.status} {r.body[:300]!r}"
                    if r.status >= 400:
                        check_shape(r, where)
                        seen[r.status] = seen.get(r.status, 0) + 1
    # the sweep reached the common errors
    assert {400, 403, 404, 405} <= set(seen), seen
    hub_logs.assert_no_secrets(ann, hub.admin_token)


async def test_statuses_the_sweep_cannot_reach(hub_factory: HubFactory) -> None:
    hub = await hub_factory(max_body_size=2048, spawner_class="")
    cases: list[tuple[int, str, str, Any]] = [
        (413, "POST", "/users", b"x" * 2049),
        (413, "POST", "/users", b"[" + b"1," * 100_000 + b"1]"),
        (409, "POST", "/users/admin", None),
        (503, "POST", "/users/admin/server", None),
    ]
    for status, method, path, raw in cases:
        r = await hub.api(method, path, raw=raw)
        assert r.status == status, (method, path, r.status, r.body[:200])
        check_shape(r, f"{method} {path}")
    r = await hub.api("POST", "/users/admin/server")
    assert r.headers["Retry-After"]
    # an oversized body is refused before anything else, on every route
    for path in concrete_paths():
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            for token in (hub.admin_token, None):
                r = await fetch(hub, method, path, b"{" + b" " * 3000 + b"}", token)
                check_shape(r, f"{method} {path}")
                catch_all = path in UNROUTED or path == "/api/users/"
                assert r.status == 413 or catch_all, (method, path, r.status)
    # a body within the limit is read normally
    assert (await hub.api("POST", "/users", {"usernames": ["ann"]})).status == 201

    # the same for bodies sent in chunks, without a Content-Length
    async def chunked(*chunks: bytes) -> Response:
        async def produce(write: Any) -> None:
            for chunk in chunks:
                await write(chunk)

        request = HTTPRequest(
            hub.url + "api/users",
            method="POST",
            headers={"Authorization": f"token {hub.admin_token}"},
            body_producer=produce,
        )
        r = await AsyncHTTPClient().fetch(request, raise_error=False)
        return Response(r.code, r.body or b"", dict(r.headers))

    r = await chunked(b'{"usernames": [', b" " * 1500, b" " * 1500, b'"carl"]}')
    assert r.status == 413
    check_shape(r, "chunked, too large")
    r = await chunked(b'{"usernames": [', b'"bob"]}')
    assert r.status == 201
    assert r.json()[0]["name"] == "bob"

    spawning = await hub_factory(spawner_class="tests.spawner.ProcessSpawner")
    r = await spawning.api("POST", "/users/admin/server", {"failure": "exception"})
    assert r.status == 500
    check_shape(r, "failed spawn")
    assert "told to fail" in r.json()["message"]


async def test_unexpected_exception_is_a_plain_500(
    hub: RunningHub, hub_logs: LogCapture, monkeypatch: Any
) -> None:
    """A bug anywhere still answers in the contract's shape, with nothing internal in it."""
    from hub.ops import users as user_ops

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internal detail: secret-table-name")

    monkeypatch.setattr(user_ops, "list_users", broken)
    r = await hub.api("GET", "/users")
    assert r.status == 500
    check_shape(r, "GET /users with a bug")
    assert b"secret-table-name" not in r.body
    # operators do see what happened
    assert "secret-table-name" in hub_logs.text()
