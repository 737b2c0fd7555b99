"""Tell the hub when this server was last used (JUPYTERHUB_ACTIVITY_URL).

jupyter_server already tracks the last use of its API, kernels (every kernel
message) and terminals (`ServerWebApplication.last_activity()`). Every
`interval` seconds, if that moved since the last report, it is posted to the
hub as JupyterHub's single-user servers post it:
`{"servers": {<server name>: {"last_activity": <ISO time>}}, "last_activity": ...}`.
A hub that cannot be reached is retried at the next tick; nothing is lost but
the intermediate values, which the hub does not need (it keeps the latest).
A kernel that is busy counts as in use now (`server_activity`): a long
computation that prints nothing is still work, and must not be culled as idle.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from singleuser.hubenv import HubEnv

log = logging.getLogger("atrium.singleuser")


def server_activity(web_app: Any, kernel_manager: Any) -> datetime:
    """The server's last use: jupyter_server's own (API, kernel messages, terminals), or
    now while a kernel is busy."""
    for kernel_id in list(kernel_manager.list_kernel_ids()):
        kernel = kernel_manager.get_kernel(kernel_id)
        if getattr(kernel, "execution_state", "") == "busy":
            return datetime.now(UTC)
    when: datetime = web_app.last_activity()
    return when


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class ActivityReporter:
    def __init__(self, hub: HubEnv, last_activity: Callable[[], datetime]) -> None:
        self.hub = hub
        self.last_activity = last_activity
        self.reported: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.hub.activity_url:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.hub.activity_interval)
            try:
                await self.report()
            except Exception as e:  # a report is retried at the next tick
                log.warning("Could not report activity to the hub: %s", e)

    async def report(self) -> bool:
        """Post the last activity if it moved; True if something was sent."""
        when = self.last_activity()
        if self.reported is not None and when <= self.reported:
            return False
        stamp = iso(when)
        body = json.dumps(
            {"servers": {self.hub.server_name: {"last_activity": stamp}}, "last_activity": stamp}
        )
        request = HTTPRequest(
            self.hub.activity_url,
            method="POST",
            body=body,
            headers={
                "Authorization": f"token {self.hub.api_token}",
                "Content-Type": "application/json",
            },
            request_timeout=10,
            connect_timeout=10,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code >= 400:
            raise RuntimeError(f"the hub answered {response.code}")
        self.reported = when
        return True
