"""A kernel websocket client speaking JupyterLab's binary v1 protocol
(`v1.kernel.websocket.jupyter.org`) or the legacy JSON one, for tests and
benchmarks: open a kernel's channels, send a request, collect what comes back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

V1 = "v1.kernel.websocket.jupyter.org"


def pack_v1(channel: str, msg: dict[str, Any]) -> bytes:
    parts = [
        json.dumps(msg[k]).encode() for k in ("header", "parent_header", "metadata", "content")
    ]
    chan = channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(chan))
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + chan + b"".join(parts)


def unpack_v1(data: bytes) -> dict[str, Any]:
    n = int.from_bytes(data[:8], "little")
    offsets = [int.from_bytes(data[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(n)]
    offsets.append(len(data))
    channel = data[offsets[0] : offsets[1]].decode()
    parts = [data[offsets[i] : offsets[i + 1]] for i in range(1, n)]
    msg = {
        k: json.loads(parts[i]) if i < len(parts) and parts[i] else {}
        for i, k in enumerate(("header", "parent_header", "metadata", "content"))
    }
    msg["channel"] = channel
    msg["buffers"] = parts[4:]
    return msg


class KernelSocket:
    def __init__(self, ws: WebSocketClientConnection, session: str, v1: bool) -> None:
        self.ws = ws
        self.session = session
        self.v1 = v1

    @classmethod
    async def open(
        cls,
        url: str,
        token: str | None = None,
        v1: bool = True,
        headers: dict[str, str] | None = None,
    ) -> KernelSocket:
        """`url`: ws://.../api/kernels/<id>/channels (session_id is added)."""
        session = uuid.uuid4().hex
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"token {token}"
        request = HTTPRequest(f"{url}?session_id={session}", headers=all_headers)
        ws = await websocket_connect(request, subprotocols=[V1] if v1 else None)
        return cls(ws, session, v1)

    def message(self, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
        return {
            "header": {
                "msg_id": uuid.uuid4().hex,
                "msg_type": msg_type,
                "session": self.session,
                "username": "test",
                "version": "5.3",
                "date": "2026-01-01T00:00:00.000000Z",
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
        }

    async def send(self, channel: str, msg: dict[str, Any]) -> None:
        if self.v1:
            await self.ws.write_message(pack_v1(channel, msg), binary=True)
        else:
            await self.ws.write_message(json.dumps({**msg, "channel": channel, "buffers": []}))

    async def receive(self, timeout: float = 30) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.read_message(), timeout)
        if raw is None:
            raise ConnectionError("the kernel websocket closed")
        if isinstance(raw, bytes):
            return unpack_v1(raw)
        return dict(json.loads(raw))

    async def request(
        self, channel: str, msg_type: str, content: dict[str, Any], timeout: float = 30
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Send a request; return its reply and the iopub messages up to 'idle'."""
        msg = self.message(msg_type, content)
        msg_id = msg["header"]["msg_id"]
        await self.send(channel, msg)
        reply: dict[str, Any] | None = None
        iopub: list[dict[str, Any]] = []
        idle = False
        while reply is None or not idle:
            got = await self.receive(timeout)
            if got.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if got["channel"] == "iopub":
                iopub.append(got)
                if (
                    got["header"]["msg_type"] == "status"
                    and got["content"].get("execution_state") == "idle"
                ):
                    idle = True
            elif got["channel"] == channel:
                reply = got
        return reply, iopub

    async def execute(self, code: str, timeout: float = 30) -> tuple[dict[str, Any], str]:
        """Run code; return the execute_reply and everything printed to stdout."""
        reply, iopub = await self.request(
            "shell", "execute_request", {"code": code, "silent": False}, timeout
        )
        out = "".join(
            m["content"]["text"]
            for m in iopub
            if m["header"]["msg_type"] == "stream" and m["content"].get("name") == "stdout"
        )
        return reply, out

    def close(self) -> None:
        self.ws.close()
