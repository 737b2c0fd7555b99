"""The proxy process over long transfers and many connections.

- 1 GiB streamed down and 1 GiB up through `atrium proxy`: every byte arrives
  and the proxy's resident memory stays flat (back-pressure both ways).
- 2,000 connections opened and closed, some before a word and some before
  the answer: no client connection stays open in the proxy, at most
  MAX_IDLE_PER_TARGET idle connections to the backend stay pooled, and no
  other fd is left behind.

The backend is a bare asyncio server that writes and reads with drain(), so
the only buffering in the path is the proxy's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from hub.proxy.server.forward import MAX_IDLE_PER_TARGET
from tests.proxyproc import ProxyProc
from tests.waits import eventually

GIB = 1024 * 1024 * 1024
CHUNK = 256 * 1024
BLOCK = b"x" * CHUNK
# how far above its idle size the proxy may grow while a transfer runs
RSS_ALLOWANCE = 64 * 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass(frozen=True)
class Fds:
    """A process's open fds: plain (not TCP connections), client connections to
    `port`, and connections to the backend on `backend`."""

    plain: int
    clients: int
    upstreams: int


def open_fds(pid: int, port: int, backend: int) -> Fds:
    process = psutil.Process(pid)
    tcp = [c for c in process.net_connections(kind="tcp") if c.status != psutil.CONN_LISTEN]
    return Fds(
        plain=process.num_fds() - len(tcp),
        clients=sum(1 for c in tcp if c.laddr.port == port),
        upstreams=sum(1 for c in tcp if c.raddr and c.raddr.port == backend),
    )


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """GET /down?bytes=N: N bytes; POST /up with Content-Length: answers the count read;
    GET anything else: 'ok'. Keep-alive."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode()
            method, target, _ = line.split(" ")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (h.partition(":") for h in head.decode().split("\r\n")[1:] if h)
            }
            if method == "POST":
                remaining = int(headers["content-length"])
                got = 0
                while remaining:
                    data = await reader.read(min(remaining, CHUNK))
                    if not data:
                        return
                    got += len(data)
                    remaining -= len(data)
                body = str(got).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
            elif target.startswith("/down"):
                size = int(target.split("bytes=", 1)[1])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                sent = 0
                while sent < size:
                    piece = BLOCK[: min(CHUNK, size - sent)]
                    writer.write(piece)
                    sent += len(piece)
                    await writer.drain()
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def backend() -> AsyncIterator[int]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


class Peak:
    """Samples a process's RSS while a transfer runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.max = rss(pid)
        self._task = asyncio.ensure_future(self._sample())

    async def _sample(self) -> None:
        while True:
            self.max = max(self.max, rss(self.pid))
            await asyncio.sleep(0.02)

    def stop(self) -> int:
        self._task.cancel()
        return self.max


async def test_a_gibibyte_each_way_with_flat_memory(
    backend: int,
    proxies: list[ProxyProc],
) -> None:
    proxy = await ProxyProc(f"--default-target=http://127.0.0.1:{backend}").start()
    proxies.append(proxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    # warm up: the first request allocates the connection and parser
    writer.write(b"GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
    baseline = rss(proxy.pid)

    peak = Peak(proxy.pid)
    writer.write(b"GET /down?bytes=%d HTTP/1.1\r\nHost: x\r\n\r\n" % GIB)
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Content-Length: %d" % GIB in head
    received = 0
    while received < GIB:
        data = await reader.read(1024 * 1024)
        assert data, f"the download stopped at {received} bytes"
        received += len(data)
        await asyncio.sleep(0)  # a client slower than the backend
    down_peak = peak.stop()
    assert received == GIB

    peak = Peak(proxy.pid)
    writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % GIB)
    for _ in range(GIB // CHUNK):
        writer.write(BLOCK)
        await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
    assert int(await reader.readexactly(length)) == GIB  # the backend read every byte
    up_peak = peak.stop()
    writer.close()

    mib = 1024 * 1024
    assert down_peak - baseline < RSS_ALLOWANCE, (baseline // mib, down_peak // mib)
    assert up_peak - baseline < RSS_ALLOWANCE, (baseline // mib, up_peak // mib)


async def test_fds_come_back_after_many_connections(
    backend: int,
    proxies: list[ProxyProc],
) -> None:
    proxy = await ProxyProc(f"--default-target=http://127.0.0.1:{backend}").start()
    proxies.append(proxy)
    before = open_fds(proxy.pid, proxy.port, backend)
    assert before.clients == before.upstreams == 0

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        if i % 3 == 0:
            writer.close()  # connect and leave without a word
            return
        writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        if i % 3 == 1:
            await reader.readuntil(b"ok")  # answered, then the client goes
        writer.close()  # or leaves before the answer

    for start in range(0, 2000, 100):
        await asyncio.gather(*(one(i) for i in range(start, start + 100)))

    async def back_to_baseline() -> bool:
        # every client connection is gone; idle keep-alive connections to the backend
        # stay pooled, at most MAX_IDLE_PER_TARGET of them; nothing else is left open
        now = open_fds(proxy.pid, proxy.port, backend)
        return (
            now.clients == 0 and now.upstreams <= MAX_IDLE_PER_TARGET and now.plain == before.plain
        )

    try:
        await eventually(back_to_baseline, timeout=30)
    finally:
        print("fds before", before, "after", open_fds(proxy.pid, proxy.port, backend))
