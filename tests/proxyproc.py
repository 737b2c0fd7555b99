"""`atrium proxy` as a subprocess for tests: on free loopback ports, stopped by PID.

The `proxies` fixture (in conftest) collects the ones a test starts and stops
them, with their worker processes, afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient

from hub.proxy.client import ProxyClient, ProxyUnavailable
from tests.pg import free_port
from tests.waits import eventually

TOKEN = "proxy-process-test-token-0123456789abcdef"


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


class ProxyProc:
    """An `atrium proxy` subprocess on free loopback ports."""

    def __init__(self, *args: str, token: str = TOKEN) -> None:
        self.args = args
        self.token = token
        self.port = free_port()
        self.api_port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.workers: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> ProxyClient:
        return ProxyClient(f"http://127.0.0.1:{self.api_port}", self.token, timeout=5)

    async def start(self, expect_workers: int = 0) -> ProxyProc:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub.app",
            "proxy",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--api-port={self.api_port}",
            "--log-level=warn",
            "--drain-timeout=5",
            *self.args,
            env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": self.token},
            stdin=asyncio.subprocess.DEVNULL,
        )

        async def answers() -> bool:
            assert self.proc is not None
            # a proxy that exited (its port taken, say) fails the test at once
            assert self.proc.returncode is None, f"the proxy exited ({self.proc.returncode})"
            try:
                await self.client().get_routes()
            except ProxyUnavailable:
                return False
            if not expect_workers:
                return True
            return f"atrium_proxy_processes {expect_workers + 1}.0" in await self.metrics()

        try:
            await eventually(answers, timeout=60)  # a bound for a busy machine, not a timing
        except BaseException:
            # never answered: not left behind for a fixture that never saw it
            self.kill_all()
            raise
        self.workers = children(self.pid)
        return self

    async def metrics(self) -> str:
        r = await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{self.api_port}/metrics", raise_error=False, request_timeout=10
        )
        return str(r.body.decode())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def kill_all(self) -> None:
        for pid in {*self.workers, *(children(self.pid) if self.proc else set())}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
