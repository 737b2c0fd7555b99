"""A websocket echo server: every message comes back on the same socket.

    .scratch/ws-venv/bin/python echo_server.py PORT

Uses the `websockets` package (installed by `backends.py` into
`.scratch/ws-venv`) on uvloop, on 127.0.0.1, any path. No compression and no
keepalive pings, so idle sockets stay idle and every message costs the same.
"""

from __future__ import annotations

import sys

import uvloop
from websockets.asyncio.server import ServerConnection, serve


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    async with serve(
        echo,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        max_size=2**20,
        backlog=4096,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
