"""Stand-ins for running user servers: one process listening on many loopback ports.

Every port answers any HTTP request with `200 {}` and closes the connection, so a
hub that checks a server (a poll that asks it, JupyterHub's `GET .../api`) gets a
real answer from a real socket. The process counts the requests each port got,
so the benchmark can tell that a hub really asked every server.

    python servers.py --ports 250

prints one JSON line, `{"pid": ..., "control": PORT, "ports": [...]}`, once every
port listens. On the control port, `GET /hits` answers `{"ports_hit": N,
"requests": M}` since the last `POST /reset`. Stdlib only: it runs with any
Python 3.11. Stops on SIGTERM or SIGINT. Neighbours: `probe.py` (how the
spawners ask these ports), `bench.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import socket
import sys
from collections import Counter

ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\n{}"
)
HEAD_LIMIT = 16 * 1024
READ_TIMEOUT = 10.0


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers (the benchmark's requests have no body)."""
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)


class Servers:
    def __init__(self) -> None:
        self.hits: Counter[int] = Counter()

    async def serve_port(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await read_head(reader)
            self.hits[port] += 1
            writer.write(ANSWER)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await read_head(reader)
            if head.startswith(b"POST /reset"):
                self.hits.clear()
            body = json.dumps(
                {"ports_hit": len(self.hits), "requests": sum(self.hits.values())}
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()


def loopback_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    s.setblocking(False)
    return s


async def main(count: int) -> None:
    servers = Servers()
    listeners = []
    ports = []
    for _ in range(count):
        sock = loopback_socket()
        port = int(sock.getsockname()[1])

        handler = functools.partial(servers.serve_port, port)
        listeners.append(await asyncio.start_server(handler, sock=sock, limit=HEAD_LIMIT))
        ports.append(port)
    control_sock = loopback_socket()
    listeners.append(await asyncio.start_server(servers.control, sock=control_sock))
    control = int(control_sock.getsockname()[1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"pid": os.getpid(), "control": control, "ports": ports}), flush=True)
    await stop.wait()
    for listener in listeners:
        listener.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", type=int, required=True, help="ports to listen on")
    args = parser.parse_args()
    asyncio.run(main(args.ports))
    sys.exit(0)
