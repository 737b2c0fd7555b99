"""Kernel messages, timed: over the kernel websocket through the hub's proxy (the
v1 protocol JupyterLab speaks, `tests/kernelws.py`) and straight over ZMQ to the
same kernel (jupyter_client, from the kernel's connection file).

A round trip is an `execute_request` until both its `execute_reply` and the
`status: idle` that follows it have arrived. Both clients see every iopub
message of the kernel, also those of the other client's requests, so each
client's stale messages are drained before it is timed.

Neighbours: `hubapi.py` (starting a kernel), `scenarios.py`.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import time
from pathlib import Path
from typing import Any

from hubs import REPO, BenchError
from jupyter_client.asynchronous import AsyncKernelClient

sys.path.insert(0, str(REPO / "tests"))
from kernelws import KernelSocket  # tests/ is not a package

DRAIN_QUIET = 0.05  # seconds without a message that count as "nothing stale left"


async def open_socket(url: str, token: str) -> KernelSocket:
    return await KernelSocket.open(url, token)


async def first_output(ks: KernelSocket, code: str, expect: str, within: float = 60) -> None:
    """Send `code`; return once its execute_reply and the stdout `expect` have come."""
    msg = ks.message("execute_request", {"code": code, "silent": False})
    msg_id = msg["header"]["msg_id"]
    await ks.send("shell", msg)
    replied, out = False, ""
    deadline = time.monotonic() + within
    while not (replied and expect in out):
        got = await ks.receive(max(0.01, deadline - time.monotonic()))
        if got.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = got["header"]["msg_type"]
        if got["channel"] == "shell" and kind == "execute_reply":
            if got["content"].get("status") != "ok":
                raise BenchError(f"{code!r} failed: {got['content']}")
            replied = True
        elif kind == "stream" and got["content"].get("name") == "stdout":
            out += got["content"]["text"]


async def ws_round_trip(ks: KernelSocket, code: str) -> float:
    t0 = time.perf_counter()
    reply, _iopub = await ks.request("shell", "execute_request", {"code": code, "silent": False})
    seconds = time.perf_counter() - t0
    if reply["content"].get("status") != "ok":
        raise BenchError(f"{code!r} over the websocket: {reply['content']}")
    return seconds


async def drain_ws(ks: KernelSocket) -> int:
    drained = 0
    with contextlib.suppress(TimeoutError):
        while True:
            await ks.receive(DRAIN_QUIET)
            drained += 1
    return drained


def find_connection_file(users_dir: Path, kernel_id: str) -> Path:
    """The kernel's connection file, wherever the server's runtime directory is
    (Atrium: <users_root>/<user>/runtime; JupyterHub's simple spawner: the user's
    ~/.local/share/jupyter/runtime)."""
    found = sorted(users_dir.rglob(f"kernel-{kernel_id}.json"))
    if not found:
        raise BenchError(f"no connection file kernel-{kernel_id}.json under {users_dir}")
    return found[0]


async def zmq_client(connection_file: Path) -> AsyncKernelClient:
    kc = AsyncKernelClient()
    kc.load_connection_file(str(connection_file))
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    return kc


async def zmq_round_trip(kc: AsyncKernelClient, code: str, within: float = 30) -> float:
    t0 = time.perf_counter()
    msg_id = kc.execute(code)
    reply: dict[str, Any] | None = None
    while reply is None:
        got = await kc.get_shell_msg(timeout=within)
        if got["parent_header"].get("msg_id") == msg_id:
            reply = got
    while True:
        got = await kc.get_iopub_msg(timeout=within)
        if (
            got["parent_header"].get("msg_id") == msg_id
            and got["msg_type"] == "status"
            and got["content"].get("execution_state") == "idle"
        ):
            break
    seconds = time.perf_counter() - t0
    if reply["content"].get("status") != "ok":
        raise BenchError(f"{code!r} over ZMQ: {reply['content']}")
    return seconds


async def drain_zmq(kc: AsyncKernelClient) -> int:
    drained = 0
    with contextlib.suppress(queue.Empty):
        while True:
            await kc.get_iopub_msg(timeout=DRAIN_QUIET)
            drained += 1
    return drained
