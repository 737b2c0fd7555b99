"""The one HTTP client every benchmark request goes through, for every hub.

A single keep-alive connection (`http.client`, TCP_NODELAY) used sequentially,
so a sample is one request's latency: from sending it to having read the whole
response body. Also the small statistics helpers the reports use.
"""

from __future__ import annotations

import http.client
import math
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    seconds: float


class Client:
    """Sequential requests over one keep-alive connection to 127.0.0.1:`port`."""

    def __init__(self, host: str, port: int, token: str | None, *, timeout: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.headers = {"Connection": "keep-alive"}
        if token:
            self.headers["Authorization"] = f"token {token}"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn.connect()
            assert conn.sock is not None
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        accept: str | None = None,
        auth: bool = True,
    ) -> Response:
        headers = dict(self.headers)
        if not auth:
            headers.pop("Authorization", None)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if accept:
            headers["Accept"] = accept
        conn = self._connection()
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        seconds = time.perf_counter() - t0
        if resp.will_close:
            self.close()
        return Response(resp.status, data, seconds)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) with linear interpolation between samples."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan
