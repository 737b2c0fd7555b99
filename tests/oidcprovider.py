"""oidc-provider (npm, pinned in tests/js/package-lock.json) run as a real OpenID Provider
on 127.0.0.1 for the login tests: tests/js/oidc_provider.mjs, one node process per
test, stopped by its PID. Its development login page takes any name and password;
`Visitor` or Chromium fills it in.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import missing_part
from tests.visitor import Page, Visitor

JS = Path(__file__).resolve().parent / "js"
SCRIPT = JS / "oidc_provider.mjs"
CLIENT_ID = "atrium-hub"
CLIENT_SECRET = "provider-secret-for-tests-0123456789"


@dataclass
class OIDCProvider:
    issuer: str
    client_id: str
    client_secret: str
    process: asyncio.subprocess.Process

    def hub_config(self, **settings: Any) -> str:
        """A hub config using this provider through the generic OIDC authenticator."""
        lines = [
            "c.Hub.authenticator_class = 'oidc'",
            f"c.GenericOIDCAuthenticator.issuer = {self.issuer!r}",
            f"c.GenericOIDCAuthenticator.client_id = {self.client_id!r}",
            f"c.GenericOIDCAuthenticator.client_secret = {self.client_secret!r}",
        ]
        lines += [f"c.GenericOIDCAuthenticator.{k} = {v!r}" for k, v in settings.items()]
        return "\n".join(lines) + "\n"


@asynccontextmanager
async def oidc_provider(
    port: int, redirect_uris: list[str], accounts: dict[str, dict[str, Any]]
) -> AsyncIterator[OIDCProvider]:
    """Run the provider on `port` (tests pick it first, to name its issuer in the hub's
    config before the hub's callback URL is known)."""
    node = shutil.which("node")
    if node is None:
        missing_part("Node.js (node), to run oidc-provider")
    if not (JS / "node_modules" / "oidc-provider" / "package.json").exists():
        missing_part("oidc-provider (npm ci --prefix tests/js)")
    config = {
        "port": port,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
            }
        ],
        "accounts": accounts,
    }
    process = await asyncio.create_subprocess_exec(
        str(node),
        str(SCRIPT),
        json.dumps(config),
        cwd=str(JS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "NODE_ENV": "test"},
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.strip() == b"ready", f"oidc-provider did not start: {line!r}"
        yield OIDCProvider(f"http://127.0.0.1:{port}", CLIENT_ID, CLIENT_SECRET, process)
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                os.kill(process.pid, signal.SIGKILL)
                await process.wait()


async def log_in_at_provider(visitor: Visitor, page: Page, login: str, stop: str) -> Page:
    """On oidc-provider's login page: sign in as `login`, consent, and follow the
    redirects until the one to `stop` (the hub's callback), which is returned."""
    assert "/interaction/" in page.url, (page.url, page.status, page.text[:300])
    page = await visitor.submit(page, {"login": login, "password": "any"}, stop=stop)
    if "/interaction/" in page.url and page.status == 200:  # the consent page
        page = await visitor.submit(page, {}, stop=stop)
    assert page.location.startswith(stop), (page.url, page.status, page.text[:300])
    return page
