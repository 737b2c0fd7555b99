"""One started server's processes: is it running, what is left of it, ending it all.

A server is named by its pid, start time and boot id (so a reused pid is never
taken for it), its process group, the environment marker its descendants
inherit (kernels run in sessions of their own) and its cgroups. `ServerProcess`
holds that, which is also what the spawner saves, and answers for any of them:
whether the server runs, its exit status (from `subprocess` for plain-exec
servers this hub process started, from the template for those it forked, else
unknown), and kills everything of it. Used by `spawners.local`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any

from spawners import procinfo
from spawners.base import SpawnError
from spawners.limits import ServerCgroups
from spawners.template import TemplateClient, running_templates

MARKER_VAR = "ATRIUM_SERVER_ID"  # unique per start; inherited by all the server starts

# plain-exec servers this hub process started, until reaped (any spawner may poll them)
_children: dict[int, subprocess.Popen[bytes]] = {}


def adopt_child(proc: subprocess.Popen[bytes]) -> None:
    """Remember a server process this hub process started, so it is reaped."""
    _children[proc.pid] = proc


@dataclass
class ServerProcess:
    pid: int = 0
    start_time: int = 0  # clock ticks after boot (/proc/<pid>/stat field 22)
    boot: str = ""
    pgid: int = 0
    uid: int | None = None
    marker: str = ""
    cgroups: ServerCgroups = field(default_factory=ServerCgroups)
    template: TemplateClient | None = None  # the template that forked it, if this hub's
    exit_status: int | None = None

    def forked(self, pid: int) -> None:
        """The server's process exists (waiting at its gate): record who it is."""
        self.pid = self.pgid = pid
        self.start_time = procinfo.start_time(pid) or 0
        self.boot = procinfo.boot_id()

    def state(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "start_time": self.start_time,
            "boot_id": self.boot,
            "pgid": self.pgid,
            "uid": self.uid,
            "marker": self.marker,
            "cgroups": list(self.cgroups.paths),
            "cgroup_parents": list(self.cgroups.parents),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ServerProcess:
        pid = int(state.get("pid") or 0)
        uid = state.get("uid")
        return cls(
            pid=pid,
            start_time=int(state.get("start_time") or 0),
            boot=str(state.get("boot_id") or ""),
            pgid=int(state.get("pgid") or pid),
            uid=None if uid is None else int(uid),
            marker=str(state.get("marker") or ""),
            cgroups=ServerCgroups(
                paths=[str(p) for p in state.get("cgroups") or []],
                parents=[str(p) for p in state.get("cgroup_parents") or []],
            ),
        )

    def forget(self) -> None:
        """Drop this hub's record of a reaped plain-exec process."""
        popen = _children.get(self.pid)
        if popen is not None and popen.poll() is not None:
            del _children[self.pid]

    def _this_boot(self) -> bool:
        return not self.boot or self.boot == procinfo.boot_id()

    def known_exit(self) -> int | None:
        """The exit status if the process has been reaped by this hub or the template."""
        popen = _children.get(self.pid)
        if popen is not None:
            return popen.poll()
        clients = [self.template] if self.template is not None else running_templates()
        for client in clients:
            status = client.exit_status(self.pid)
            if status is not None:
                return status
        return None

    def running(self) -> bool:
        """Is the server's own process (not a zombie, not a reused pid) still there?"""
        if not self.pid or not self._this_boot() or self.known_exit() is not None:
            return False
        return procinfo.is_running(self.pid, self.start_time)

    def remaining(self) -> list[int]:
        """Live processes of this server: itself, its group, its kernels, its cgroups."""
        if not self.pid or not self._this_boot():
            return self.cgroups.members()
        leader = procinfo.read_stat(self.pid)
        # a process with the server's pid but another start time: the group id is not ours
        foreign = leader is not None and leader.start_time != self.start_time
        marker = f"{MARKER_VAR}={self.marker}" if self.marker else ""
        found = set(procinfo.server_processes(None if foreign else self.pgid, marker, self.uid))
        found.update(self.cgroups.members())
        if leader is not None and not foreign and leader.state not in ("Z", "X"):
            found.add(self.pid)
        return sorted(found)

    async def exit_code(self) -> int:
        """Once it is not running: its exit status (0 when nobody could see it)."""
        status = self.known_exit()
        if status is None and self.template is not None and not self.template.dead:
            # the template reaps and reports its children: give the report a moment
            for _ in range(25):
                await asyncio.sleep(0.02)
                status = self.known_exit()
                if status is not None:
                    break
        if status is not None or self.exit_status is None:
            self.exit_status = 0 if status is None else status
        return self.exit_status

    async def terminate(self, grace: float) -> None:
        """SIGTERM to the server's group; wait up to `grace` seconds for it to exit."""
        if not self.running():
            return
        procinfo.signal_group(self.pgid, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGTERM)  # in case it has not made its session yet
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        # /proc has no event to wait on: poll it
        while self.running() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def kill_all(self, within: float) -> None:
        """SIGKILL everything of this server until nothing is left (or `within` s passed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self._reap()
            left = await asyncio.to_thread(self.remaining)
            if not left:
                return
            if loop.time() > deadline:
                raise SpawnError(f"processes {left[:10]} of the server would not die")
            self.cgroups.kill()
            procinfo.signal_pids(left, signal.SIGKILL)
            await asyncio.sleep(0.02)

    async def remove_cgroups(self, within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        # a cgroup is removable only once its last process is fully gone
        while self.cgroups.remove() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    def _reap(self) -> None:
        popen = _children.get(self.pid)
        if popen is not None:
            popen.poll()
