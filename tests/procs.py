"""Running the real `atrium` command in tests, as a subprocess on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.pg import free_port

ATRIUM = [sys.executable, "-m", "hub.app"]


async def run_atrium(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Run `atrium ARGS` to completion: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *ATRIUM,
        *args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except TimeoutError:
        proc.kill()  # the process we started, by its PID
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class AtriumProcess:
    """A hub started as `atrium` in a directory, stopped by its PID."""

    cwd: Path
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    base_url: str = "/"
    # the built-in proxy (the default) on free ports, stopped with the hub; False:
    # the test's own configuration decides
    proxy_ports: bool = True
    # seconds start() waits for the API to answer (a busy machine may need more)
    ready_timeout: float = 30
    proc: asyncio.subprocess.Process | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}hub/"

    async def start(self) -> None:
        proxy_args = (
            [
                f"--Hub.hub_port={free_port()}",
                f"--Hub.proxy_api_url=http://127.0.0.1:{free_port()}",
                "--Hub.proxy_stop_on_exit=True",
            ]
            if self.proxy_ports
            else []
        )
        self.proc = await asyncio.create_subprocess_exec(
            *ATRIUM,
            "--port",
            str(self.port),
            *proxy_args,
            *self.args,
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await self.wait_ready(self.ready_timeout)

    async def wait_ready(self, timeout: float = 30) -> None:
        from tornado.httpclient import AsyncHTTPClient, HTTPClientError

        client = AsyncHTTPClient()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            assert self.proc is not None
            if self.proc.returncode is not None:
                await self.stop()
                raise RuntimeError(f"atrium exited early:\n{self.stderr}")
            try:
                await client.fetch(self.url + "api/", request_timeout=2)
                return
            except (OSError, HTTPClientError):
                if asyncio.get_running_loop().time() > deadline:
                    await self.stop()
                    raise RuntimeError(f"atrium did not answer:\n{self.stderr}") from None
                await asyncio.sleep(0.1)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Send `sig` and collect output; returns the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        out, err = await asyncio.wait_for(self.proc.communicate(), timeout=timeout)
        self.stdout += out.decode()
        self.stderr += err.decode()
        assert self.proc.returncode is not None
        return self.proc.returncode
