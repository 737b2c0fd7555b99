"""The proxy process against real upstream servers on loopback: routing, HTTP
framing, streaming, WebSockets, errors, the routes API, and hostile input."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from tornado import web, websocket
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from hub.proxy.server.api import RoutesAPI
from hub.proxy.server.forward import Limits, ProxyServer, ProxySettings
from hub.proxy.server.paths import normalize_path
from hub.proxy.server.routes import RouteTable

TOKEN = "proxy-test-token"


# --- a backend that shows what it received --------------------------------------


class Echo(web.RequestHandler):
    """Answers with what it saw: method, path, headers, body digest, peer port."""

    def initialize(self, name: str) -> None:
        self.name = name

    def _answer(self) -> None:
        body = self.request.body
        self.finish(
            orjson.dumps(
                {
                    "backend": self.name,
                    "method": self.request.method,
                    "uri": self.request.uri,
                    "headers": dict(self.request.headers),
                    "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "peer_port": self.request.connection.stream.socket.getpeername()[1],  # type: ignore[union-attr]
                    "version": self.request.version,
                }
            )
        )

    get = post = put = delete = _answer

    def head(self) -> None:
        self.set_header("Content-Length", "12345")
        self.finish()


class Stream(web.RequestHandler):
    """Streams N megabytes in chunks (chunked transfer encoding)."""

    async def get(self) -> None:
        megabytes = int(self.get_query_argument("mb", "1"))
        block = b"x" * (1024 * 1024)
        for _ in range(megabytes):
            self.write(block)
            await self.flush()


class WSEcho(websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


@dataclass
class Backend:
    port: int
    server: HTTPServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_backend(name: str) -> Backend:
    app = web.Application(
        [
            (r"/stream", Stream),
            (r".*/ws", WSEcho),
            (r".*", Echo, {"name": name}),
        ]
    )
    server = HTTPServer(app, max_body_size=200 * 1024 * 1024)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    return Backend(sockets[0].getsockname()[1], server)


@dataclass
class Proxy:
    server: ProxyServer
    table: RouteTable
    port: int
    api_port: int
    hub: Backend
    other: Backend

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/routes"


async def start_proxy(limits: Limits | None = None, error_target: str | None = None) -> Any:
    hub = start_backend("hub")
    other = start_backend("ann")
    table = RouteTable()
    proxy = ProxyServer(
        table,
        ProxySettings(default_target=hub.url, error_target=error_target, limits=limits or Limits()),
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(proxy.protocol, "127.0.0.1", 0)
    proxy.start_sweeper()
    api = await loop.create_server(RoutesAPI(table, TOKEN, proxy.metrics).protocol, "127.0.0.1", 0)
    handle = Proxy(
        proxy,
        table,
        server.sockets[0].getsockname()[1],
        api.sockets[0].getsockname()[1],
        hub,
        other,
    )
    return handle, server, api


async def stop_proxy(handle: Proxy, server: Any, api: Any) -> None:
    server.close()
    api.close()
    await handle.server.stop()
    for backend in (handle.hub, handle.other):
        backend.server.stop()
        await backend.server.close_all_connections()
    await asyncio.sleep(0)


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    handle, server, api = await start_proxy()
    yield handle
    await stop_proxy(handle, server, api)


async def raw(port: int, request: bytes, read_until_close: bool = True) -> bytes:
    """Send bytes on a fresh connection and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    try:
        if read_until_close:
            return await asyncio.wait_for(reader.read(-1), 10)
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


def body_of(response: bytes) -> Any:
    return orjson.loads(response.split(b"\r\n\r\n", 1)[1])


async def fetch(url: str, **kw: Any) -> Any:
    r = await AsyncHTTPClient().fetch(HTTPRequest(url, **kw), raise_error=False)
    return r


# --- routing ----------------------------------------------------------------------


def test_longest_prefix_whole_segments() -> None:
    table = RouteTable()
    table.add("/", "http://h:1")
    table.add("/user/ann/", "http://a:1")
    table.add("/user/ann/lab", "http://l:1")
    assert table.match("/user/ann/x").target == "http://a:1"  # type: ignore[union-attr]
    assert table.match("/user/ann/lab/x").target == "http://l:1"  # type: ignore[union-attr]
    assert table.match("/user/annie/x").target == "http://h:1"  # type: ignore[union-attr]
    assert table.match("/user/ann").target == "http://a:1"  # type: ignore[union-attr]
    assert set(table.routes()) == {"/", "/user/ann", "/user/ann/lab"}
    assert table.remove("/user/ann/lab/")
    assert table.match("/user/ann/lab/x").target == "http://a:1"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="http"):
        table.add("/x", "ftp://nope")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/user/a/../b/", "/user/b/"),
        ("/user/a/%2e%2e/b/x", "/user/b/x"),
        ("/user/a/%2E%2E/%2e%2e/hub/", "/hub/"),
        ("/user/a%2Fb/", "/user/a%2Fb/"),
        ("/user/%61nn/", "/user/ann/"),
        ("/a/./b/.", "/a/b/"),
        ("/../../etc", "/etc"),
        ("relative", None),
    ],
)
def test_normalize_path(path: str, expected: str | None) -> None:
    assert normalize_path(path) == expected


async def test_default_route_and_user_route(proxy: Proxy) -> None:
    proxy.table.add("/user/ann", proxy.other.url, {"user": "ann"})
    r = await fetch(proxy.url + "/hub/api/")
    assert orjson.loads(r.body)["backend"] == "hub"
    r = await fetch(proxy.url + "/user/ann/lab?x=1")
    seen = orjson.loads(r.body)
    assert seen["backend"] == "ann"
    assert seen["uri"] == "/user/ann/lab?x=1"


@pytest.mark.parametrize(
    ("path", "backend", "uri"),
    [
        ("/user/bob/../ann/api", "ann", "/user/ann/api"),
        ("/user/ann/../bob/api", "hub", "/user/bob/api"),
        ("/user/ann/%2e%2e/bob/", "hub", "/user/bob/"),
        ("/user/ann%2F..%2Fbob/", "hub", "/user/ann%2F..%2Fbob/"),
    ],
)
async def test_dot_segments_cannot_cross_routes(
    proxy: Proxy, path: str, backend: str, uri: str
) -> None:
    proxy.table.add("/user/ann", proxy.other.url)
    answer = await raw(
        proxy.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    seen = body_of(answer)
    assert seen["backend"] == backend
    assert seen["uri"] == uri


async def test_keep_alive_reuses_upstream_connections(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    ports = set()
    for _ in range(5):
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        ports.add(orjson.loads(await reader.readexactly(length))["peer_port"])
    writer.close()
    assert len(ports) == 1


async def test_idle_upstream_connections_expire() -> None:
    handle, server, api = await start_proxy(limits=Limits(upstream_idle_timeout=0.3))
    try:
        r = await fetch(handle.url + "/x")
        assert r.code == 200
        assert sum(len(p) for p in handle.server.pools.values()) == 1
        await wait_for(lambda: not handle.server.pools, within=5)  # closed and forgotten
        assert not handle.server.upstreams
        assert (await fetch(handle.url + "/x")).code == 200  # a new one when needed
    finally:
        await stop_proxy(handle, server, api)


async def test_forwarded_headers_and_host(proxy: Proxy) -> None:
    answer = await raw(
        proxy.port,
        b"GET /x HTTP/1.1\r\nHost: hub.example.org\r\nX-Forwarded-For: 10.9.8.7\r\n"
        b"Connection: close\r\n\r\n",
    )
    headers = body_of(answer)["headers"]
    assert headers["Host"] == "hub.example.org"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == "hub.example.org"
    assert headers["X-Forwarded-Port"] == str(proxy.port)


async def test_http10_and_head(proxy: Proxy) -> None:
    answer = await raw(proxy.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.")
    assert body_of(answer)["version"] == "HTTP/1.0"
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Content-Length: 12345" in head
    head2 = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head2.startswith(b"HTTP/1.1 200")
    writer.close()


# --- bodies -------------------------------------------------------------------------


async def test_upload_content_length_and_chunked(proxy: Proxy) -> None:
    data = os.urandom(3 * 1024 * 1024)
    binary = {"Content-Type": "application/octet-stream"}
    r = await fetch(proxy.url + "/up", method="POST", body=data, headers=binary)
    assert orjson.loads(r.body)["sha256"] == hashlib.sha256(data).hexdigest()

    async def chunks(write: Any) -> None:
        for i in range(0, len(data), 65536):
            await write(data[i : i + 65536])

    r = await fetch(proxy.url + "/up", method="POST", body_producer=chunks, headers=binary)
    seen = orjson.loads(r.body)
    assert seen["sha256"] == hashlib.sha256(data).hexdigest()
    assert seen["headers"].get("Transfer-Encoding") == "chunked"


async def test_expect_100_continue(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"hello")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_streamed_download(proxy: Proxy) -> None:
    digest = hashlib.sha256()
    size = 0

    def on_chunk(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        digest.update(chunk)

    r = await fetch(proxy.url + "/stream?mb=64", streaming_callback=on_chunk, request_timeout=60)
    assert r.code == 200
    assert size == 64 * 1024 * 1024
    assert digest.hexdigest() == hashlib.sha256(b"x" * (64 * 1024 * 1024)).hexdigest()


# --- websockets ---------------------------------------------------------------------


async def test_websocket_frames_both_ways(proxy: Proxy) -> None:
    route = proxy.table.add("/user/ann", proxy.other.url)
    route.last_activity = 0.0
    ws = await websocket.websocket_connect(f"ws://127.0.0.1:{proxy.port}/user/ann/ws")
    pongs: list[bytes] = []
    ws.on_pong = pongs.append  # type: ignore[method-assign]
    for message in ["hello", "x" * 200_000]:
        await ws.write_message(message)
        assert await ws.read_message() == message
    await ws.write_message(b"\x00\x01binary", binary=True)
    assert await ws.read_message() == b"\x00\x01binary"
    ws.ping(b"are you there")  # answered by the backend, through the proxy
    await wait_for(lambda: pongs == [b"are you there"], within=5)
    assert route.last_activity > 0  # frames count as activity
    ws.close(code=4001, reason="bye")  # the backend's close answer comes back through
    assert await asyncio.wait_for(ws.read_message(), 5) is None
    assert ws.close_code == 4001
    assert proxy.server.websockets == 1
    await wait_for(lambda: proxy.server.open_websockets == 0, within=5)


# --- errors -------------------------------------------------------------------------


async def test_target_down_json_for_api_clients(proxy: Proxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    proxy.table.add("/user/ann", f"http://127.0.0.1:{dead}")
    r = await fetch(proxy.url + "/user/ann/api/kernels")
    assert r.code == 503
    assert orjson.loads(r.body)["status"] == 503


async def test_target_down_browsers_get_the_error_target_page() -> None:
    handle, server, api = await start_proxy(error_target="http://127.0.0.1:1/none")
    try:
        handle.server.settings.error_target = handle.hub.url + "/hub/error"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        handle.table.add("/user/ann", f"http://127.0.0.1:{dead}")
        r = await fetch(handle.url + "/user/ann/lab", headers={"Accept": "text/html"})
        seen = orjson.loads(r.body)
        assert seen["backend"] == "hub"
        assert seen["uri"] == "/hub/error/503?url=%2Fuser%2Fann%2Flab"
    finally:
        await stop_proxy(handle, server, api)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            b"400",
        ),
        (b"GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n", b"431"),
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"GET http://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
    ],
)
async def test_hostile_requests(proxy: Proxy, request_bytes: bytes, status: bytes) -> None:
    answer = await raw(proxy.port, request_bytes)
    assert answer.split(b" ")[1] == status
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["status"] == int(status)


async def test_slow_headers_are_cut_off() -> None:
    handle, server, api = await start_proxy(limits=Limits(header_timeout=0.5))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", handle.port)
        writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(-1), 10)
        assert answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < 9
        writer.close()
    finally:
        await stop_proxy(handle, server, api)


async def test_slow_bodies_and_idle_connections_are_cut_off() -> None:
    handle, server, api = await start_proxy(limits=Limits(body_timeout=0.5, idle_timeout=0.5))
    try:
        # a body that stops coming: the connection is closed, both sides
        reader, writer = await asyncio.open_connection("127.0.0.1", handle.port)
        writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        assert await asyncio.wait_for(reader.read(-1), 10) == b""
        writer.close()
        # a keep-alive connection left idle after its answer
        reader, writer = await asyncio.open_connection("127.0.0.1", handle.port)
        writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(-1), 10)  # the answer, then the close
        assert answer.startswith(b"HTTP/1.1 200")
        writer.close()
        await wait_for(lambda: not handle.server.clients, within=5)
    finally:
        await stop_proxy(handle, server, api)


# --- the routes API -----------------------------------------------------------------


async def test_routes_api(proxy: Proxy) -> None:
    auth = {"Authorization": f"token {TOKEN}"}
    r = await fetch(
        proxy.api + "/user/ann/",
        method="POST",
        headers=auth,
        body=orjson.dumps({"target": proxy.other.url, "user": "ann"}),
    )
    assert r.code == 201
    routes = orjson.loads((await fetch(proxy.api, headers=auth)).body)
    assert routes["/user/ann"]["target"] == proxy.other.url
    assert routes["/user/ann"]["user"] == "ann"
    assert routes["/user/ann"]["last_activity"].endswith("Z")
    single = orjson.loads((await fetch(proxy.api + "/user/ann", headers=auth)).body)
    assert single["target"] == proxy.other.url
    future = "2999-01-01T00:00:00Z"
    idle = orjson.loads((await fetch(f"{proxy.api}?inactive_since={future}", headers=auth)).body)
    assert set(idle) == {"/", "/user/ann"}
    past = "2000-01-01T00:00:00Z"
    idle = orjson.loads((await fetch(f"{proxy.api}?inactive_since={past}", headers=auth)).body)
    assert idle == {}
    r = await fetch(proxy.api + "/user/ann", method="DELETE", headers=auth)
    assert r.code == 204
    r = await fetch(proxy.api + "/user/ann", method="DELETE", headers=auth)
    assert r.code == 404  # as configurable-http-proxy answers
    assert "/user/ann" not in orjson.loads((await fetch(proxy.api, headers=auth)).body)


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        ("GET", "", None, {}, 403),
        ("GET", "", None, {"Authorization": "token wrong"}, 403),
        ("POST", "/x", b"{}", {"Authorization": f"token {TOKEN}"}, 400),
        ("POST", "/x", b"not json", {"Authorization": f"token {TOKEN}"}, 400),
        ("POST", "/x", b'{"target": "ftp://x"}', {"Authorization": f"token {TOKEN}"}, 400),
        ("POST", "/x", b'{"target": 5}', {"Authorization": f"token {TOKEN}"}, 400),
        ("GET", "/missing", None, {"Authorization": f"token {TOKEN}"}, 404),
        ("GET", "?inactive_since=yesterday", None, {"Authorization": f"token {TOKEN}"}, 400),
        ("PUT", "/x", b"{}", {"Authorization": f"token {TOKEN}"}, 405),
        (
            "POST",
            "/x",
            orjson.dumps({"target": "http://127.0.0.1:1", "pad": "x" * 70_000}),
            {"Authorization": f"token {TOKEN}"},
            413,
        ),
        ("DELETE", "/x", None, {"Authorization": "Bearer " + TOKEN}, 403),
    ],
)
async def test_routes_api_bad_input(
    proxy: Proxy, method: str, path: str, body: bytes | None, headers: dict[str, str], status: int
) -> None:
    before = set(proxy.table.routes())
    r = await fetch(proxy.api + path, method=method, body=body, headers=headers)
    assert r.code == status
    assert orjson.loads(r.body)["status"] == status
    assert set(proxy.table.routes()) == before


async def test_routes_api_keep_alive_and_unknown_paths(proxy: Proxy) -> None:
    base = f"http://127.0.0.1:{proxy.api_port}"
    for path, status in (("/nope", 404), ("/api/routesx", 404), ("/api", 404)):
        r = await fetch(base + path, headers={"Authorization": f"token {TOKEN}"})
        assert r.code == status
        assert orjson.loads(r.body) == {"status": status, "message": "Not found"}
    # several requests on one connection, answered in order
    request = b"GET /api/routes/ HTTP/1.1\r\nHost: x\r\nAuthorization: token %b\r\n\r\n" % (
        TOKEN.encode()
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.api_port)
    writer.write(request * 3)
    for _ in range(3):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        assert "/" in orjson.loads(await reader.readexactly(length))
    writer.write(b"GET /api/routes HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(-1), 10)
    assert answer.startswith(b"HTTP/1.1 431")
    writer.close()


async def test_refuses_to_run_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CONFIGPROXY_AUTH_TOKEN"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub.app",
        "proxy",
        "--port",
        "0",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"CONFIGPROXY_AUTH_TOKEN" in err
    assert b"Traceback" not in err


# --- disconnects, metrics, drain ------------------------------------------------------


async def wait_for(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_client_leaving_mid_download_closes_the_upstream(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /stream?mb=200 HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readexactly(1024 * 1024)
    assert proxy.server.upstreams
    writer.close()
    await wait_for(lambda: not proxy.server.upstreams and not proxy.server.clients)


async def test_upstream_dying_mid_response_closes_the_client(proxy: Proxy) -> None:
    async def half_response(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await w.drain()
        w.close()

    dying = await asyncio.start_server(half_response, "127.0.0.1", 0)
    port = dying.sockets[0].getsockname()[1]
    proxy.table.add("/user/ann", f"http://127.0.0.1:{port}")
    answer = await raw(proxy.port, b"GET /user/ann/x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.endswith(b"partial")  # relayed what there was, then closed
    await wait_for(lambda: not proxy.server.clients)
    dying.close()
    await dying.wait_closed()


async def test_metrics(proxy: Proxy) -> None:
    await fetch(proxy.url + "/x")
    text = (await fetch(f"http://127.0.0.1:{proxy.api_port}/metrics")).body.decode()
    assert 'atrium_proxy_requests_total{outcome="proxied"} 1.0' in text
    assert "atrium_proxy_request_duration_seconds_count 1.0" in text
    assert "atrium_proxy_routes 1.0" in text
    assert "atrium_proxy_websockets 0.0" in text


async def test_drain_lets_requests_in_flight_finish(proxy: Proxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /stream?mb=20 HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readexactly(100)
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    drained = asyncio.ensure_future(proxy.server.drain(within=10))
    rest = await asyncio.wait_for(reader.read(-1), 20)
    assert len(rest) > 20 * 1024 * 1024 - 200  # the whole body still arrived
    await drained
    assert await asyncio.wait_for(idle_reader.read(-1), 5) == b""  # idle one was closed
    writer.close()
    idle_writer.close()


# --- the command: TLS, redirect -----------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return make_certificate(tmp_path_factory.mktemp("tls"), "localhost")


def make_certificate(folder: Path, name: str) -> tuple[str, str]:
    import subprocess

    key, cert = folder / f"{name}-key.pem", folder / f"{name}-cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(key), str(cert)


async def served_certificate(port: int) -> str:
    """The certificate a TLS listener presents, as PEM."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return ssl.DER_cert_to_PEM_cert(der)


def read_text(path: str) -> str:
    return Path(path).read_text()


def write_text(path: str, text: str) -> None:
    Path(path).write_text(text)


def same_certificate(pem_a: str, pem_b: str) -> bool:
    return ssl.PEM_cert_to_DER_cert(pem_a) == ssl.PEM_cert_to_DER_cert(pem_b)


async def test_tls_and_redirect(certificate: tuple[str, str], tmp_path: Path) -> None:
    from tests.pg import free_port

    # the proxy's own copies, which a reload below replaces
    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    shutil.copy(certificate[0], key)
    shutil.copy(certificate[1], cert)
    backend = start_backend("hub")
    port, api_port, redirect_port = free_port(), free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub.app",
        "proxy",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-port",
        str(api_port),
        "--default-target",
        backend.url,
        "--ssl-key",
        key,
        "--ssl-cert",
        cert,
        "--redirect-port",
        str(redirect_port),
        "--workers",
        "2",
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": TOKEN},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"https://127.0.0.1:{port}/hub/x"
        deadline = time.monotonic() + 20
        while True:
            try:
                r = await fetch(url, ca_certs=cert, request_timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the proxy did not start"
                await asyncio.sleep(0.1)
        seen = orjson.loads(r.body)
        assert seen["headers"]["X-Forwarded-Proto"] == "https"
        plain = await raw(
            redirect_port, b"GET /hub/login?next=%2F HTTP/1.1\r\nHost: example.org\r\n\r\n"
        )
        assert plain.startswith(b"HTTP/1.1 301")
        assert f"Location: https://example.org:{port}/hub/login?next=%2F".encode() in plain

        # a renewed certificate: SIGHUP, and every process presents the new one
        new_key, new_cert = make_certificate(tmp_path, "renewed")
        shutil.copy(new_key, key)
        shutil.copy(new_cert, cert)
        renewed = read_text(new_cert)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while True:
            seen_pems = [await served_certificate(port) for _ in range(12)]
            if all(same_certificate(p, renewed) for p in seen_pems):
                break
            assert time.monotonic() < deadline, "the new certificate was not served"
            await asyncio.sleep(0.2)
        r = await fetch(url, ca_certs=cert, request_timeout=5)
        assert r.code == 200
        # a broken pair on reload: the proxy keeps the good one and says why
        write_text(key, "not a key")
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        assert same_certificate(await served_certificate(port), renewed)
    finally:
        proc.terminate()  # the proxy this test started
        _out, err = await asyncio.wait_for(proc.communicate(), 20)
        backend.server.stop()
        await backend.server.close_all_connections()
    assert proc.returncode == 0
    assert b"Stopped" in err
    assert b"Reload: cannot load the TLS key and certificate (kept the old)" in err
    assert b"Traceback" not in err


async def test_host_routing() -> None:
    handle, server, api = await start_proxy()
    try:
        handle.server.settings.host_routing = True
        handle.table.add("/ann.hub.example.org/", handle.other.url)
        for host, backend in [
            (b"ann.hub.example.org", "ann"),
            (b"ANN.hub.example.org:8443", "ann"),
            (b"bob.hub.example.org", "hub"),
        ]:
            answer = await raw(
                handle.port, b"GET /lab HTTP/1.1\r\nHost: %b\r\nConnection: close\r\n\r\n" % host
            )
            seen = body_of(answer)
            assert seen["backend"] == backend
            assert seen["uri"] == "/lab"
    finally:
        await stop_proxy(handle, server, api)


async def test_server_closing_without_answering_is_a_502(proxy: Proxy) -> None:
    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
        finally:
            w.close()

    silent = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    proxy.table.add("/user/ann", f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}")
    answer = await raw(
        proxy.port, b"POST /user/ann/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 502")
    assert body_of(answer)["status"] == 502
    silent.close()
    await silent.wait_closed()


async def test_a_dropped_keep_alive_connection_is_retried_for_safe_requests(proxy: Proxy) -> None:
    """The server answers once, then closes the kept-alive connection when the next request
    arrives on it (the keep-alive race): the proxy sends it again on a new connection."""
    connections = 0

    async def answer_once(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()
            await r.readuntil(b"\r\n\r\n")  # the next request on this connection: hang up
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the proxy closed this pooled connection first
        finally:
            w.close()

    flaky = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    proxy.table.add("/user/ann", f"http://127.0.0.1:{flaky.sockets[0].getsockname()[1]}")
    for _ in range(2):
        answer = await raw(
            proxy.port, b"GET /user/ann/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.endswith(b"ok")
    assert connections == 2  # the second request went out again on a new connection
    await proxy.server.stop()  # closes the pooled connection, ending its handler
    flaky.close()
    await flaky.wait_closed()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ssl-key", "k.pem"], b"--ssl-key and --ssl-cert go together"),
        (["--redirect-port", "0"], b"--redirect-port redirects to HTTPS"),
        (["--port", "70000"], b"--port must be between 0 and 65535"),
        (["--port", "eighty"], b"invalid int value"),
        (["--log-level", "loud"], b"invalid choice"),
        (["--no-such-flag"], b"unrecognized arguments"),
        (["--workers", "0"], b"--workers must be between 1 and 64"),
        (["--workers", "65"], b"--workers must be between 1 and 64"),
        (["--routes-from", "ftp://hub/x"], b"--routes-from must be an http(s):// URL"),
        (["--routes-wait", "-1"], b"--routes-wait must be between 0 and 3600"),
        (["--routes-wait", "soon"], b"invalid float value"),
        (["--ssl-key", "/nonexistent/k.pem", "--ssl-cert", "/nonexistent/c.pem"], b"TLS"),
    ],
)
async def test_bad_command_line(args: list[str], message: bytes) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub.app",
        "proxy",
        "--port",
        "0",
        *args,
        env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": TOKEN},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert message in err
    assert b"Traceback" not in err
