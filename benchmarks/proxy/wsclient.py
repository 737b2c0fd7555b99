"""A minimal websocket client (RFC 6455) for measuring, not for general use.

Two forms over the same framing code:

- `BlockingWebSocket`: one blocking socket (TCP_NODELAY), for round-trip
  latency with the least client-side work per message;
- `open_ws` / `EchoLoop`: asyncio, for many sockets at once (throughput, idle
  sockets, open/close cycles).

Only what the benchmark sends: small binary messages, masked as a client must;
server frames unmasked and unfragmented. Ping is answered, close ends the socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import struct
import time
from typing import cast

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
MAX_HEAD = 16384


class WebSocketError(OSError):
    """The handshake or a frame was not what a websocket server sends."""


def handshake(host: str, port: int, path: str) -> tuple[bytes, bytes]:
    """The upgrade request, and the Sec-WebSocket-Accept value it must get back."""
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324 (the protocol's)
    request = (
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        ).encode()
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )
    return request, accept


def check_upgrade(head: bytes, accept: bytes) -> None:
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 101"):
        raise WebSocketError(f"handshake answered {lines[0][:100]!r}")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept":
            if value.strip() != accept:
                raise WebSocketError("wrong Sec-WebSocket-Accept")
            return
    raise WebSocketError("no Sec-WebSocket-Accept in the handshake response")


def _mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(payload: bytes, opcode: int = OP_BINARY) -> bytes:
    """A final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + _mask(payload, key)


CLOSE_FRAME_PAYLOAD = struct.pack("!H", 1000)


def parse(buf: bytearray) -> tuple[int, bytes] | None:
    """Take one complete server frame off the front of `buf`: (opcode, payload)."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    if not b0 & 0x80:
        raise WebSocketError("fragmented frame (not sent by this benchmark)")
    if b1 & 0x80:
        raise WebSocketError("masked frame from the server")
    n = b1 & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos : pos + n])
    del buf[: pos + n]
    return b0 & 0x0F, payload


class BlockingWebSocket:
    """One websocket over a blocking socket; every call bounded by `timeout`."""

    def __init__(self, host: str, port: int, path: str, *, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        request, accept = handshake(host, port, path)
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise WebSocketError("handshake response too long")
            self._read()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        check_upgrade(head, accept)

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise WebSocketError("connection closed")
        self.buf += data

    def send(self, payload: bytes) -> None:
        self.sock.sendall(frame(payload))

    def recv(self) -> bytes:
        while True:
            got = parse(self.buf)
            if got is None:
                self._read()
                continue
            opcode, payload = got
            if opcode == OP_PING:
                self.sock.sendall(frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                raise WebSocketError("closed by the server")
            elif opcode != OP_PONG:
                return payload

    def round_trip(self, payload: bytes) -> float:
        """Seconds from sending `payload` to having its echo; checks the echo."""
        t0 = time.perf_counter()
        self.sock.sendall(frame(payload))
        echoed = self.recv()
        seconds = time.perf_counter() - t0
        if echoed != payload:
            raise WebSocketError("the echo differs from the message sent")
        return seconds

    def close(self) -> None:
        try:
            self.sock.sendall(frame(CLOSE_FRAME_PAYLOAD, OP_CLOSE))
            self.sock.settimeout(2)
            while True:
                got = parse(self.buf)
                if got is not None and got[0] == OP_CLOSE:
                    break
                if got is None:
                    self._read()
        except OSError:
            pass
        finally:
            self.sock.close()


# --- asyncio ------------------------------------------------------------------


class AsyncWebSocket:
    """One websocket over asyncio streams (for idle sockets and open/close cycles)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()

    async def recv(self) -> bytes:
        while True:
            got = parse(self.buf)
            if got is None:
                data = await self.reader.read(65536)
                if not data:
                    raise WebSocketError("connection closed")
                self.buf += data
                continue
            opcode, payload = got
            if opcode == OP_PING:
                self.writer.write(frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                raise WebSocketError("closed by the server")
            elif opcode != OP_PONG:
                return payload

    async def echo(self, payload: bytes) -> None:
        self.writer.write(frame(payload))
        if await self.recv() != payload:
            raise WebSocketError("the echo differs from the message sent")

    async def close(self, *, clean: bool = True) -> None:
        """Clean: the close handshake, then TCP close. Otherwise just drop the TCP connection."""
        try:
            if clean:
                self.writer.write(frame(CLOSE_FRAME_PAYLOAD, OP_CLOSE))
                while True:
                    got = parse(self.buf)
                    if got is not None and got[0] == OP_CLOSE:
                        break
                    if got is None:
                        data = await self.reader.read(65536)
                        if not data:
                            break
                        self.buf += data
        finally:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def open_ws(host: str, port: int, path: str) -> AsyncWebSocket:
    reader, writer = await asyncio.open_connection(host, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request, accept = handshake(host, port, path)
    writer.write(request)
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        check_upgrade(head, accept)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        writer.close()
        raise WebSocketError(f"bad handshake response: {e}") from None
    except WebSocketError:
        writer.close()
        raise
    return AsyncWebSocket(reader, writer)


class EchoLoop(asyncio.Protocol):
    """A websocket that, once started, sends its next message as soon as the echo arrives."""

    def __init__(self, host: str, port: int, path: str, payload: bytes) -> None:
        self.request, self.accept = handshake(host, port, path)
        self.payload = payload
        self.message = frame(payload)  # one mask for all: fine for an echo server
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.running = False
        self.in_flight = False
        self.count = 0
        self.buf = bytearray()
        self.error: Exception | None = None
        self.idle = asyncio.Event()  # set when stopped and no message is in flight

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.idle.set()
        if not self.ready.done():
            self.ready.set_exception(WebSocketError(f"connection lost: {exc}"))
        elif self.running and self.error is None:
            self.error = WebSocketError("connection lost while running")

    def start(self) -> None:
        assert self.transport is not None
        self.running = True
        self.in_flight = True
        self.transport.write(self.message)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                check_upgrade(bytes(self.buf[:end]), self.accept)
            except WebSocketError as e:
                self.ready.set_exception(e)
                return
            del self.buf[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        try:
            while (got := parse(self.buf)) is not None:
                opcode, payload = got
                if opcode != OP_BINARY:
                    raise WebSocketError(f"unexpected opcode {opcode}")
                if payload != self.payload:
                    raise WebSocketError("the echo differs from the message sent")
                self.count += 1
                self.in_flight = False
                if self.running and self.transport is not None:
                    self.in_flight = True
                    self.transport.write(self.message)
                else:
                    self.idle.set()
        except WebSocketError as e:
            self.error = e
            self.running = False
            self.idle.set()
