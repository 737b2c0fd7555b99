"""The local process spawner: each user server is a process on the hub's machine.

Two modes (`LocalProcessSpawner.mode`):

- "one-account": the hub is an ordinary account and every server runs as that
  account, each user with their own tree under `users_root`: `<user>/home` (the
  notebook directory and HOME), `<user>/data` (JUPYTER_DATA_DIR: the user's own
  nbsignatures.db and notebook_secret) and `<user>/runtime[-<server>]`
  (JUPYTER_RUNTIME_DIR, 0700, one per server). The directories keep users'
  files apart; they are no security boundary, since all servers share one uid.
- "system-users": the hub runs as root and each server runs as its user's Unix
  account (groups, HOME and working directory from the account), with its
  runtime directory under `runtime_root` (default /run/atrium), owned by the user.

A start never leaves an orphan behind: the server process is forked waiting at
a start gate (a pipe only the hub writes to, `spawners.launcher`), put in its
cgroups, and only once its pid, start time and cgroups are saved in the
database (`save_state`) does the hub release it, writing its spec (user,
environment, limits) to the gate. A hub killed before that point closes the gate, and the
process exits; a hub killed later has saved enough for its successor to adopt
or stop the server. Servers run in their own session, with a clean environment
(a short allow-list of the hub's variables plus the JUPYTERHUB_* contract) and
stdout/stderr in a log file whose end failure messages quote.

With the default command the server is forked from a template process that has
already imported the single-user stack (`spawners.template`), which saves most
of a start; other commands, or a template that cannot run, use a plain exec.
Limits (`mem_limit`, `cpu_limit`, `proc_limit`) use cgroups where the hub may
create them, else rlimits (`spawners.limits`). A started server's processes are
watched and ended by `spawners.serverproc` (pid + start time); accounts and directories come from
`spawners.localuser`, which makes them with `spawners.userdirs`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
from typing import Any

from traitlets import Bool, Enum, Float, Integer, List, TraitError, Unicode, validate

from spawners import procinfo
from spawners.base import Spawner, SpawnError
from spawners.launcher import gate_message
from spawners.limits import Limits, ServerCgroups, create_cgroups, rlimit_fallback
from spawners.localuser import (
    Account,
    Layout,
    hub_account,
    one_account_dirs,
    system_account,
    system_user_dirs,
)
from spawners.serverproc import MARKER_VAR, ServerProcess, adopt_child
from spawners.template import TemplateClient, TemplateUnavailable, get_template
from spawners.userdirs import log_tail, safe_component

DEFAULT_CMD = ["atrium-singleuser"]
# the plain-exec path: a stdlib-only script that waits at the gate, becomes the server
# (user, limits, environment) and execs its command
LAUNCHER = [sys.executable, "-I", "-S", os.path.join(os.path.dirname(__file__), "launcher.py")]

_warned: set[str] = set()


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


PORT_ATTEMPTS = 3  # starts of a server whose port another process took first


def _free_port(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        port: int = s.getsockname()[1]
        return port


async def _answers(host: str, port: int, path: str, within: float = 2.0) -> bool:
    """Does GET `path` get a 2xx or 3xx answer?"""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {_url_host(host)}:{port}\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), within)
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
    parts = line.split()
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:1] in (b"2", b"3")


class LocalProcessSpawner(Spawner):
    """Runs each user server as a local process (see the module docstring)."""

    mode = Enum(
        ["one-account", "system-users"],
        "one-account",
        help="'one-account': every server runs as the hub's own account, each user with "
        "their own directories under users_root (no security boundary between users). "
        "'system-users': the hub runs as root and each server runs as the Unix account "
        "named like its user (see create_system_users, min_uid).",
    ).tag(config=True)
    users_root = Unicode(
        "",
        help="one-account mode: where users' directories are made (<root>/<user>/home, "
        "data, runtime). '' means $XDG_DATA_HOME/atrium/users (~/.local/share/...).",
    ).tag(config=True)
    runtime_root = Unicode(
        "",
        help="system-users mode: where each user gets a directory they own (0700) holding "
        "their servers' runtime directories and logs. '' means /run/atrium.",
    ).tag(config=True)
    log_dir = Unicode(
        "",
        help="A directory (owned by the hub, 0700) for the servers' logs, one file per "
        "server. '' puts each log in the server's runtime directory, readable by its user.",
    ).tag(config=True)
    create_system_users = Bool(
        False,
        help="system-users mode: create a missing Unix account (useradd --create-home) "
        "when its user first starts a server. Names must be valid account names.",
    ).tag(config=True)
    min_uid = Integer(
        1000,
        help="system-users mode: the lowest uid a server may run as, so that a hub user "
        "named like a system account (postgres, www-data) never runs as it. Never below 1: "
        "no user server runs as root.",
    ).tag(config=True)
    allow_root = Bool(
        False,
        help="one-account mode: let servers run as root when the hub runs as root. Only for "
        "throw-away containers; use mode 'system-users' on a shared machine.",
    ).tag(config=True)
    env_keep = List(
        Unicode(),
        [
            "PATH",
            "LANG",
            "LC_ALL",
            "LC_CTYPE",
            "TZ",
            "PYTHONPATH",
            "VIRTUAL_ENV",
            "CONDA_ROOT",
            "CONDA_DEFAULT_ENV",
        ],
        help="The hub's environment variables passed on to servers; nothing else of the "
        "hub's environment (secrets, database URL) reaches them.",
    ).tag(config=True)
    use_template = Bool(
        True,
        help="Fork servers from a template process that has already imported the "
        "single-user stack (much faster starts). Only used when cmd is the default "
        "['atrium-singleuser']; otherwise, or if the template fails, servers start by exec.",
    ).tag(config=True)
    template_target = Unicode(
        "singleuser.app:main",
        help="'module:function' a template child runs with the server's arguments (argv "
        "list), after taking on the server's user, directory and environment.",
    ).tag(config=True)
    template_preload = Unicode(
        "singleuser.app:preload",
        help="'module:function' the template calls once before forking, to import the "
        "single-user stack. A missing function only imports the module.",
    ).tag(config=True)
    template_start_timeout = Float(
        60.0,
        help="Seconds the template may take to start and preload; past that, servers "
        "start by exec.",
    ).tag(config=True)
    use_cgroups = Bool(
        True,
        help="Enforce mem_limit, cpu_limit and proc_limit with cgroups (v1 or v2) where the "
        "hub may create them; otherwise rlimits are used where possible, with a warning.",
    ).tag(config=True)
    cgroup_parent = Unicode(
        "",
        help="The cgroup (path inside each hierarchy, e.g. '/atrium') under which servers "
        "get theirs. '' means '<the hub's own cgroup>/atrium'. With cgroup v2 it must have "
        "the controllers delegated and hold no processes itself.",
    ).tag(config=True)
    term_timeout = Float(
        5.0,
        help="Seconds a server has to exit after SIGTERM before it (and everything it "
        "started) gets SIGKILL. Kept below stop_timeout.",
    ).tag(config=True)

    @validate("mode")
    def _mode_needs_root(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value == "system-users" and os.geteuid() != 0:
            raise TraitError(
                "mode 'system-users' runs each server as its user's Unix account, which "
                f"needs the hub to run as root (it runs as uid {os.geteuid()}); "
                "use mode 'one-account' instead"
            )
        return value

    @validate("min_uid")
    def _never_root(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"min_uid must be at least 1 (never run servers as root), not {value}")
        return value

    @validate("template_target", "template_preload")
    def _import_string(self, proposal: Any) -> str:
        value = str(proposal["value"])
        name = proposal["trait"].name
        module, colon, attr = value.partition(":")
        if (value or name == "template_target") and not (module and colon and attr):
            raise TraitError(f"{name} must look like 'package.module:function', not {value!r}")
        return value

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clear_state()

    # --- state ---------------------------------------------------------------------

    def clear_state(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.forget()
        self.server = ServerProcess()
        self.port = 0
        self.via = ""  # "template" or "exec"
        self.log_path = ""

    # what tests and logs look at most
    @property
    def pid(self) -> int:
        return self.server.pid

    @property
    def start_time(self) -> int:
        return self.server.start_time

    @property
    def cgroups(self) -> ServerCgroups:
        return self.server.cgroups

    def get_state(self) -> dict[str, Any]:
        if not self.server.pid and not self.server.cgroups.paths:
            return {}
        return {
            **self.server.state(),
            "port": self.port,
            "mode": self.mode,
            "via": self.via,
            "log": self.log_path,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.clear_state()
        self.server = ServerProcess.from_state(state)
        self.port = int(state.get("port") or 0)
        self.via = str(state.get("via") or "")
        self.log_path = str(state.get("log") or "")

    # --- start ---------------------------------------------------------------------

    async def start(self) -> str:
        self.clear_state()  # a spawner's state is that of its latest start
        self.begin_progress()
        layout: Layout | None = None
        try:
            self.report_progress(5, "preparing the user's directories")
            account = await self._account()
            layout = self._prepare_dirs(account)
            return await self._start(account, layout)
        except BaseException:
            # a failed or cancelled start (the hub's start_timeout) leaves nothing running
            await self._abort()
            raise
        finally:
            if layout is not None:
                os.close(layout.log_fd)
            self.end_progress()

    async def _start(self, account: Account, layout: Layout) -> str:
        connect_ip = self.ip if self.ip not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        self.server.marker = secrets.token_hex(16)
        self.server.uid = account.uid
        self.log_path = layout.log_path
        limits = Limits(self.mem_limit, self.cpu_limit, self.proc_limit)
        self._make_cgroups(limits)
        rlimits, warnings = rlimit_fallback(limits, self._not_enforced(limits), account.switch)
        for warning in warnings:
            if warning not in _warned:
                _warned.add(warning)
                self.log.warning("%s", warning)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            # a free port now may be taken by another process before the server binds it
            # (many servers starting at once): the server then exits, and is started again
            # on another port
            self.port = _free_port(connect_ip)
            env = self._server_env(account, layout)
            prefix = env.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
            spec = {
                "env": env,
                "cwd": layout.home,
                "uid": account.uid if account.switch else None,
                "gid": account.gid if account.switch else None,
                "groups": account.groups if account.switch else None,
                "rlimits": rlimits,
            }
            await self._launch_and_release(layout, env, spec, account)
            self.report_progress(50, "waiting for the server to answer")
            try:
                await self._wait_ready(connect_ip, f"{prefix}api", layout.log_fd)
            except SpawnError:
                if attempt == PORT_ATTEMPTS or not await self._lost_its_port(connect_ip):
                    raise
                self.log.warning(
                    "The port %s of %s was taken by another process before it could listen; "
                    "starting it again on another port",
                    self.port,
                    self.log_name,
                )
                await self.server.kill_all(within=max(1.0, self.stop_timeout))
                self.server.exit_status = None
                continue
            break
        self.report_progress(100, "server is ready")
        return f"http://{_url_host(connect_ip)}:{self.port}"

    async def _launch_and_release(
        self, layout: Layout, env: dict[str, str], spec: dict[str, Any], account: Account
    ) -> None:
        gate_r, gate_w = os.pipe()
        try:
            pid, argv = await self._launch(layout, env, gate_r, gate_w)
            if account.uid == 0 and argv[: len(DEFAULT_CMD)] == DEFAULT_CMD:
                # allow_root said so (throw-away containers); the server must be told too
                argv.append("--allow-root")
            self.server.forked(pid)
            self.report_progress(30, f"server process started (pid {pid})")
            self.server.cgroups.place(pid)
            # a hub killed from here on has recorded what its successor needs to stop it
            await self.save_state(self.get_state())
            await self._release(gate_w, gate_message({**spec, "argv": argv}))
        finally:
            os.close(gate_w)

    async def _lost_its_port(self, ip: str) -> bool:
        """The server exited and its port is held by another process."""
        if await self.poll() is None:
            return False
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((ip, self.port))
            except OSError:
                return True
        return False

    async def _account(self) -> Account:
        if self.mode == "one-account":
            return hub_account(self.allow_root)

        def creating(name: str) -> None:
            self.report_progress(8, f"creating the Unix account {name}")

        user = self.user_name
        return await system_account(user, self.create_system_users, self.min_uid, creating)

    def _prepare_dirs(self, account: Account) -> Layout:
        if account.switch:
            return system_user_dirs(
                account, self.user_name, self.server_name, self.runtime_root, self.log_dir
            )
        return one_account_dirs(self.user_name, self.server_name, self.users_root, self.log_dir)

    def _base_env(self) -> dict[str, str]:
        return {key: os.environ[key] for key in self.env_keep if key in os.environ}

    def _server_env(self, account: Account, layout: Layout) -> dict[str, str]:
        env = {**self._base_env(), **self.get_env()}
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
        listen_ip = self.ip or "0.0.0.0"  # noqa: S104
        env.update(
            {
                "JUPYTERHUB_SERVICE_URL": f"http://{_url_host(listen_ip)}:{self.port}{prefix}",
                "JUPYTERHUB_ROOT_DIR": layout.home,
                "JUPYTER_RUNTIME_DIR": layout.runtime,
                "JUPYTER_DATA_DIR": layout.data,
                "HOME": layout.home,
                "USER": account.name,
                "LOGNAME": account.name,
                "SHELL": account.shell,
                "ATRIUM_KERNEL_TRANSPORT": "ipc",
                # found in the environment of everything the server starts, kernels included
                MARKER_VAR: self.server.marker,
            }
        )
        env.setdefault("PATH", os.defpath)
        return env

    def _make_cgroups(self, limits: Limits) -> None:
        if not self.use_cgroups or not limits.controllers():
            return
        user = safe_component(self.user_name)
        server = safe_component(self.server_name) if self.server_name else ""
        # '%' never appears unescaped in a component, so the prefix names this server only
        prefix = f"{user}%{server}%"
        note = "" if os.geteuid() == 0 else f" (as uid {os.geteuid()})"
        self.server.cgroups = create_cgroups(
            limits, self.cgroup_parent, prefix + secrets.token_hex(4), prefix, note
        )

    def _not_enforced(self, limits: Limits) -> dict[str, str]:
        if not self.use_cgroups:
            return {c: "cgroups are turned off (use_cgroups)" for c in limits.controllers()}
        return self.cgroups.not_enforced

    async def _launch(
        self, layout: Layout, env: dict[str, str], gate_r: int, gate_w: int
    ) -> tuple[int, list[str]]:
        """Fork the server's process waiting at the gate; returns its pid and the argv
        to release it with. Always closes `gate_r` (the hub keeps only `gate_w`)."""
        owned = [gate_r]  # read ends still to close
        try:
            if self.use_template and list(self.cmd) == DEFAULT_CMD:
                pid = await self._launch_template(layout, gate_r)
                if pid is not None:
                    return pid, [*DEFAULT_CMD, *self.args]
                # a template child that got this gate exits once it closes: use a new pipe,
                # under the same write-end number the caller holds
                new_r, new_w = os.pipe()
                owned.append(new_r)
                os.dup2(new_w, gate_w, inheritable=False)
                os.close(new_w)
                gate_r = new_r
            argv = [*self._command(env), *self.args]
            return self._launch_exec(layout, gate_r), argv
        finally:
            for fd in owned:
                os.close(fd)

    async def _launch_template(self, layout: Layout, gate_r: int) -> int | None:
        client = await self._template_client()
        if client is None:
            return None
        try:
            pid = await client.fork(gate_r, layout.log_fd)
        except TemplateUnavailable as e:
            self._note_no_template(str(e))
            return None
        self.server.template = client
        self.via = "template"
        return pid

    def _launch_exec(self, layout: Layout, gate_r: int) -> int:
        try:
            proc = subprocess.Popen(
                LAUNCHER,
                stdin=gate_r,
                stdout=layout.log_fd,
                stderr=layout.log_fd,
                env={},  # the launcher takes on the server's environment from the gate
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise SpawnError(f"the server process could not be started: {e}") from None
        adopt_child(proc)
        self.via = "exec"
        return proc.pid

    def _command(self, env: dict[str, str]) -> list[str]:
        cmd = list(self.cmd)
        if not cmd:
            raise SpawnError("no server command is configured (Spawner.cmd is empty)")
        if os.sep not in cmd[0]:
            found = shutil.which(cmd[0], path=env.get("PATH"))
            if found is None:  # e.g. the hub's virtualenv, not on the servers' PATH
                found = shutil.which(cmd[0], path=os.path.dirname(sys.executable))
            if found is None:
                raise SpawnError(f"the server command {cmd[0]!r} was not found on PATH")
            cmd[0] = found
        return cmd

    async def _template_client(self) -> TemplateClient | None:
        self.report_progress(10, "connecting to the server template")
        try:
            return await get_template(
                self.template_target,
                self.template_preload,
                self.mode,
                self._base_env(),
                self.template_start_timeout,
            )
        except TemplateUnavailable as e:
            self._note_no_template(str(e))
            return None

    def _note_no_template(self, reason: str) -> None:
        message = f"Starting servers by exec, without the template: {reason}"
        if message not in _warned:
            _warned.add(message)
            self.log.warning("%s", message)

    async def _release(self, gate_w: int, payload: bytes) -> None:
        """Write "go" (and a template child's spec) to the gate."""
        os.set_blocking(gate_w, False)
        view = memoryview(payload)
        while view:
            try:
                view = view[os.write(gate_w, view) :]
            except BlockingIOError:
                await asyncio.sleep(0.005)
            except BrokenPipeError:
                return  # it died at the gate: the readiness wait reports how

    async def _wait_ready(self, host: str, path: str, log_fd: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        while True:
            status = await self.poll()
            if status is not None:
                raise SpawnError(
                    self._failure(f"the server {procinfo.describe_status(status)}", log_fd)
                )
            if await _answers(host, self.port, path):
                return
            if loop.time() > deadline:
                raise SpawnError(
                    self._failure(
                        f"the server did not answer at {path} within {self.http_timeout:g} s",
                        log_fd,
                    )
                )
            await asyncio.sleep(0.015)

    def _failure(self, what: str, log_fd: int) -> str:
        tail = log_tail(log_fd)
        if not tail:
            return f"{what}, and wrote nothing to its log"
        return f"{what}. The end of its log:\n{tail}"

    async def _abort(self) -> None:
        """Undo a start that failed or was cancelled: kill whatever it started."""
        try:
            await self.server.kill_all(within=max(1.0, self.stop_timeout))
        except SpawnError as e:
            self.log.error("Cleaning up the failed start of %s: %s", self.log_name, e)
        finally:
            self.server.cgroups.remove()

    # --- watching and stopping ---------------------------------------------------------

    async def poll(self) -> int | None:
        server = self.server
        if not server.pid:
            return 0 if server.exit_status is None else server.exit_status
        if server.running():
            return None
        status = await server.exit_code()
        # the server is gone: so is anything it left behind (kernels, its cgroups)
        if await asyncio.to_thread(server.remaining):
            await server.kill_all(within=5.0)
        server.cgroups.remove()
        return status

    async def stop(self, now: bool = False) -> None:
        server = self.server
        if not now:
            await server.terminate(grace=max(0.0, min(self.term_timeout, self.stop_timeout * 0.8)))
        await server.kill_all(within=max(5.0, self.stop_timeout))
        if server.pid:
            await server.exit_code()
        await server.remove_cgroups(within=5.0)
        server.forget()
