"""What both spawner drivers share: the pods' server, waiting for it to answer, and
waiting for a spawner's pod cache to catch up. Standard library only (the
KubeSpawner driver runs in its own virtualenv).

Every pod of the simulated node (`tests/kube/kubelet.py`) shares 127.0.0.1,
so the node gives each one a free port, tells its process in the environment
(`ATRIUM_POD_PORT`) and records it in the pod annotation `atrium.test/host-port`;
the drivers' spawner subclasses connect to that port instead of 8888.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

PORT_ANNOTATION = "atrium.test/host-port"  # tests.kube.kubelet.PORT_ANNOTATION

# the single-user "server": answers 200 to any GET, on the port the node gave the pod
SERVER_CODE = """\
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
port = int(os.environ["ATRIUM_POD_PORT"])
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def server_command(python: str) -> list[str]:
    return [python, "-c", SERVER_CODE]


def host_port(pod: dict[str, Any]) -> int:
    return int(pod["metadata"]["annotations"][PORT_ANNOTATION])


async def answers(host: str, port: int, path: str, within: float = 2.0) -> bool:
    """Does GET `path` get a 2xx or 3xx answer? (as Atrium's spawner checks)"""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), within)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
    parts = line.split()
    return len(parts) >= 2 and parts[1][:1] in (b"2", b"3")


async def wait_answers(host: str, port: int, path: str, within: float) -> None:
    deadline = time.monotonic() + within
    delay = 0.02
    while not await answers(host, port, path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"http://{host}:{port}{path} did not answer in {within:g} s")
        await asyncio.sleep(delay)
        delay = min(0.5, delay * 1.5)


async def wait_cached(
    lookup: Callable[[str], dict[str, Any] | None], pod: str, rv: int, within: float
) -> dict[str, Any]:
    """Wait until `lookup(pod)` (a spawner's cache) holds resourceVersion `rv` or later.
    Checks every 20 ms: the same small cost for both spawners."""
    t0 = time.monotonic()
    while True:
        found = lookup(pod)
        if found is not None and int(found["metadata"]["resourceVersion"]) >= rv:
            return {"seconds": time.monotonic() - t0}
        if time.monotonic() - t0 > within:
            seen = found["metadata"]["resourceVersion"] if found else None
            raise TimeoutError(f"pod {pod}: the cache has rv {seen}, not {rv}, after {within} s")
        await asyncio.sleep(0.02)


async def run_driver(driver: Any, release: Callable[[], Awaitable[None]]) -> None:
    """Serve `driver`'s commands on stdin/stdout until told to stop, then `release` what
    the spawner class shares (its watches)."""
    from channel import serve

    try:
        await serve(
            {
                "prepare": driver.prepare,
                "warm": driver.warm,
                "spawn": driver.spawn,
                "stop": driver.stop,
                "wait_cached": driver.wait_cached,
                "cache_size": driver.cache_size,
            }
        )
    finally:
        await release()
