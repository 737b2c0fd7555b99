"""A light single-user server for the load benchmark: the parts of a Jupyter server
a simulated user touches, on the standard library alone (it starts in ~0.1 s and
holds ~22 MiB RSS, so hundreds of users can come and go on two cores).

Both hubs start it the same way, as their spawner's command; it follows the
single-user environment contract:

- listens where `JUPYTERHUB_SERVICE_URL` says (loopback), under
  `JUPYTERHUB_SERVICE_PREFIX`;
- `GET {prefix}api` answers 200 without a token (as jupyter_server's does): the
  hubs' readiness checks and the load generator's "is it routed" poll;
- `POST {prefix}api/kernels` answers 201 with a kernel model, and
  `{prefix}api/kernels/<id>/channels` accepts a websocket (the v1 binary
  protocol JupyterLab speaks, or the legacy JSON one) on which an
  `execute_request` gets `status: busy`, an `execute_reply` and `status: idle`,
  as from a kernel; there is no kernel process;
- every request but `GET {prefix}api` needs a token (`Authorization: token`),
  which is checked once against the hub (`GET {JUPYTERHUB_API_URL}/user` with
  that token, as jupyterhub-singleuser does) and then remembered; it must grant
  `access:servers` for this user.

It never blocks the hub: it exits on SIGTERM or SIGINT at once.
Neighbours: `hubsetup.py` (both hubs configured to start it), `users.py`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
import os
import signal
import urllib.parse
import uuid
from typing import Any

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
V1 = "v1.kernel.websocket.jupyter.org"
HEAD_LIMIT = 64 * 1024
HUB_CHECK_TIMEOUT = 30.0


class Server:
    def __init__(self) -> None:
        service = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
        self.host = service.hostname or "127.0.0.1"
        self.port = service.port or 8888
        self.prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        self.user = os.environ.get("JUPYTERHUB_USER", "")
        self.api_url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_API_URL"])
        # token -> its check against the hub (one request per token, shared by
        # requests that arrive while it runs)
        self.tokens: dict[str, asyncio.Future[bool]] = {}
        self.kernels: set[str] = set()

    # --- HTTP -------------------------------------------------------------------------

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                method, target, headers = parse_head(head)
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                if headers.get("upgrade", "").lower() == "websocket":
                    await self.websocket(reader, writer, target, headers)
                    return
                status, body = await self.route(method, target, headers)
                close = headers.get("connection", "").lower() == "close"
                respond(writer, status, body, close)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def route(self, method: str, target: str, headers: dict[str, str]) -> tuple[int, Any]:
        path = urllib.parse.urlsplit(target).path
        if not path.startswith(self.prefix.rstrip("/")):
            return 404, {"message": "not this server's prefix"}
        rest = path[len(self.prefix) :] if path.startswith(self.prefix) else ""
        if rest in ("", "lab", "tree") and method == "GET":
            return 200, {"server": "light", "user": self.user}
        if rest == "api" and method == "GET":
            return 200, {"version": "light"}
        if not await self.authorized(target, headers):
            return 403, {"message": "a token with access to this server is needed"}
        if rest == "api/kernels" and method == "POST":
            kernel = uuid.uuid4().hex
            self.kernels.add(kernel)
            return 201, kernel_model(kernel)
        if rest == "api/kernels" and method == "GET":
            return 200, [kernel_model(k) for k in sorted(self.kernels)]
        if rest.startswith("api/kernels/") and method == "DELETE":
            self.kernels.discard(rest.split("/")[2])
            return 204, None
        return 404, {"message": f"{method} {rest} is not served here"}

    # --- tokens -----------------------------------------------------------------------

    async def authorized(self, target: str, headers: dict[str, str]) -> bool:
        token = ""
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("token", "bearer"):
            token = value.strip()
        if not token:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
            token = (query.get("token") or [""])[0]
        if not token:
            return False
        check = self.tokens.get(token)
        if check is None:
            check = self.tokens[token] = asyncio.ensure_future(self.ask_hub(token))
        try:
            return await asyncio.shield(check)
        except (OSError, TimeoutError, ValueError):
            self.tokens.pop(token, None)  # ask again next time
            return False

    async def ask_hub(self, token: str) -> bool:
        host = self.api_url.hostname or "127.0.0.1"
        port = self.api_url.port or 80
        path = self.api_url.path.rstrip("/") + "/user"
        async with asyncio.timeout(HUB_CHECK_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Authorization: token {token}\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                raw = await reader.read()
            finally:
                writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        if head.split(b" ", 2)[1:2] != [b"200"]:
            return False
        if b"transfer-encoding: chunked" in head.lower():
            body = unchunk(body)
        model = json.loads(body)
        wanted = {
            "access:servers",
            f"access:servers!user={self.user}",
            f"access:servers!server={self.user}/",
        }
        return bool(wanted.intersection(model.get("scopes") or []))

    # --- the kernel websocket ---------------------------------------------------------

    async def websocket(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        target: str,
        headers: dict[str, str],
    ) -> None:
        path = urllib.parse.urlsplit(target).path
        parts = path[len(self.prefix) :].split("/")
        ok_path = len(parts) == 4 and parts[:2] == ["api", "kernels"] and parts[3] == "channels"
        if not ok_path or parts[2] not in self.kernels:
            respond(writer, 404, {"message": "no such kernel"}, close=True)
            return
        if not await self.authorized(target, headers):
            respond(writer, 403, {"message": "a token with access to this server is needed"}, True)
            return
        key = headers.get("sec-websocket-key", "").encode()
        digest = hashlib.sha1(key + WS_GUID, usedforsecurity=False).digest()
        accept = base64.b64encode(digest).decode()
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
        v1 = V1 in offered
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                + (f"Sec-WebSocket-Protocol: {V1}\r\n" if v1 else "")
                + "\r\n"
            ).encode()
        )
        count = 0
        while True:
            opcode, payload = await read_message(reader)
            if opcode == 0x8:  # close: answer it and end
                writer.write(frame(0x8, payload[:2]))
                await writer.drain()
                return
            if opcode == 0x9:
                writer.write(frame(0xA, payload))
                continue
            if opcode not in (0x1, 0x2):
                continue
            channel, msg = unpack_v1(payload) if opcode == 0x2 else unpack_json(payload)
            kind = msg.get("header", {}).get("msg_type")
            if channel != "shell" or kind not in ("execute_request", "kernel_info_request"):
                continue
            count += 1
            for out_channel, out_type, content in kernel_answer(kind, count):
                out = reply(msg, out_type, content)
                data = pack_v1(out_channel, out) if v1 else pack_json(out_channel, out)
                writer.write(frame(0x2 if v1 else 0x1, data))
            await writer.drain()


def kernel_answer(kind: str, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    if kind == "kernel_info_request":
        info = {"status": "ok", "protocol_version": "5.3", "implementation": "light"}
        return [("shell", "kernel_info_reply", info)]
    done = {"status": "ok", "execution_count": count, "user_expressions": {}, "payload": []}
    return [
        ("iopub", "status", {"execution_state": "busy"}),
        ("shell", "execute_reply", done),
        ("iopub", "status", {"execution_state": "idle"}),
    ]


def kernel_model(kernel: str) -> dict[str, Any]:
    return {
        "id": kernel,
        "name": "python3",
        "last_activity": now(),
        "execution_state": "idle",
        "connections": 0,
    }


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def reply(request: dict[str, Any], msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "session": "light",
        "username": "light",
        "version": "5.3",
        "date": now(),
    }
    return {
        "header": header,
        "parent_header": request.get("header", {}),
        "metadata": {},
        "content": content,
    }


# --- wire formats ---------------------------------------------------------------------


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


REASONS = {200: "OK", 201: "Created", 204: "No Content", 403: "Forbidden", 404: "Not Found"}


def respond(writer: asyncio.StreamWriter, status: int, body: Any, close: bool = False) -> None:
    data = b"" if body is None else json.dumps(body).encode()
    head = f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
    if data:
        head += "Content-Type: application/json\r\n"
    head += f"Content-Length: {len(data)}\r\n"
    head += "Connection: close\r\n" if close else ""
    writer.write(head.encode() + b"\r\n" + data)


def unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2 :]
    return out


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One whole websocket message (fragments joined): its opcode and payload."""
    opcode, payload = 0, b""
    while True:
        b0, b1 = await reader.readexactly(2)
        size = b1 & 0x7F
        if size == 126:
            size = int.from_bytes(await reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await reader.readexactly(8), "big")
        mask = await reader.readexactly(4) if b1 & 0x80 else b""
        data = await reader.readexactly(size)
        if mask:
            data = unmask(data, mask)
        if b0 & 0x0F:
            opcode = b0 & 0x0F
        payload += data
        if b0 & 0x80:
            return opcode, payload


def unmask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        size = bytes([n])
    elif n < 1 << 16:
        size = bytes([126]) + n.to_bytes(2, "big")
    else:
        size = bytes([127]) + n.to_bytes(8, "big")
    return bytes([0x80 | opcode]) + size + payload


MSG_PARTS = ("header", "parent_header", "metadata", "content")


def unpack_v1(data: bytes) -> tuple[str, dict[str, Any]]:
    count = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    offsets.append(len(data))
    channel = data[offsets[0] : offsets[1]].decode()
    msg = {}
    for i, part in enumerate(MSG_PARTS, start=1):
        raw = data[offsets[i] : offsets[i + 1]] if i + 1 < len(offsets) else b""
        msg[part] = json.loads(raw) if raw else {}
    return channel, msg


def pack_v1(channel: str, msg: dict[str, Any]) -> bytes:
    parts = [channel.encode()] + [json.dumps(msg[k]).encode() for k in MSG_PARTS]
    offsets = [8 * (1 + len(parts) + 1)]  # the count, the offsets (one per part + end)
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + b"".join(parts)


def unpack_json(data: bytes) -> tuple[str, dict[str, Any]]:
    msg = json.loads(data)
    return str(msg.get("channel", "")), msg


def pack_json(channel: str, msg: dict[str, Any]) -> bytes:
    return json.dumps({**msg, "channel": channel, "buffers": []}).encode()


async def main() -> None:
    server = Server()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    listener = await asyncio.start_server(
        server.connection, server.host, server.port, limit=HEAD_LIMIT
    )
    async with listener:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
