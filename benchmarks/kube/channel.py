"""The command channel between `bench.py` and the processes it drives.

The fake API server (`fake_server.py`) and the two spawner drivers
(`atrium_driver.py`, `kubespawner_driver.py`) each read one JSON object per
line on stdin (`{"op": NAME, ...arguments}`), run the handler of that name and
answer one JSON line on stdout (`{"ok": true, "result": ...}` or `{"ok":
false, "error": ...}`), one command at a time. Only the standard library, so
the KubeSpawner driver can import it from its own virtualenv.

`serve` is the process side; `Peer` (in `peer.py`) is the benchmark's side.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[..., Awaitable[Any]]


def usage() -> dict[str, float]:
    """This process's CPU seconds (all threads) and resident memory (MiB)."""
    rss_kib = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu": self_usage.ru_utime + self_usage.ru_stime,
        "rss_mib": rss_kib / 1024,
        "max_rss_mib": self_usage.ru_maxrss / 1024,
    }


async def serve(handlers: dict[str, Handler], stop: asyncio.Event | None = None) -> None:
    """Answer commands until stdin closes, `quit` is asked, or `stop` is set."""
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # whatever a library prints goes to the log, never into the channel
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stopped = loop.create_task((stop or asyncio.Event()).wait())
    try:
        while True:
            line_task = loop.create_task(reader.readline())
            await asyncio.wait({line_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not line_task.done():
                line_task.cancel()
                return
            line = line_task.result()
            if not line:
                return
            request = json.loads(line)
            op = request.pop("op")
            try:
                if op == "quit":
                    result: Any = None
                elif op == "usage":
                    result = usage()
                else:
                    result = await handlers[op](**request)
                reply = {"ok": True, "result": result}
            except Exception as e:
                reply = {
                    "ok": False,
                    "error": f"{type(e).__name__}: {e}",
                    "trace": traceback.format_exc()[-3000:],
                }
            channel.write(json.dumps(reply).encode() + b"\n")
            if op == "quit":
                return
    finally:
        stopped.cancel()
