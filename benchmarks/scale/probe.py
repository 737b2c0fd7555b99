"""How both hubs' benchmark spawners check a server: its process runs and its port
answers HTTP.

Shared by `atrium_spawner.py` and `jupyterhub_spawner.py` (stdlib only, so it
imports in either hub's Python). `servers.py` is what answers.
"""

from __future__ import annotations

import asyncio
import os

TIMEOUT = 5.0


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def answers(port: int) -> bool:
    """A GET / to 127.0.0.1:`port` gets a 200 within TIMEOUT seconds."""
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TimeoutError):
        return False
    try:
        async with asyncio.timeout(TIMEOUT):
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            await writer.drain()
            status = await reader.readline()
        return status.split(b" ", 2)[1:2] == [b"200"]
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def poll(pid: int, port: int) -> int | None:
    """The spawner contract's poll: None while the server runs and answers, else 1."""
    if not pid or not port or not pid_alive(pid):
        return 1
    return None if await answers(port) else 1
