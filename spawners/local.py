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
a start gate (a pipe only the hub writes to), put in its cgroups, and only once
its pid, start time and cgroups are saved in the database (`save_state`) does
the hub release it. A hub killed before that point closes the gate, and the
process exits; a hub killed later has saved enough for its successor to adopt
or stop the server. Servers run in their own session, with a clean environment
(a short allow-list of the hub's variables plus the JUPYTERHUB_* contract) and
stdout/stderr in a log file whose end failure messages quote.

With the default command the server is forked from a template process that has
already imported the single-user stack (`spawners.template`), which saves most
of a start; other commands, or a template that cannot run, use a plain exec.
Limits (`mem_limit`, `cpu_limit`, `proc_limit`) use cgroups where the hub may
create them, else rlimits (`spawners.limits`). Processes are identified by pid
and start time (`spawners.procinfo`), directories made safely by
`spawners.userdirs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from traitlets import Bool, Enum, Float, Integer, List, TraitError, Unicode, validate

from spawners import procinfo
from spawners.base import Spawner, SpawnError
from spawners.launcher import gate_message
from spawners.limits import Limits, ServerCgroups, create_cgroups, rlimit_fallback
from spawners.template import (
    TemplateClient,
    TemplateUnavailable,
    get_template,
    running_templates,
)
from spawners.userdirs import Level, ensure_dirs, log_tail, open_log, safe_component

DEFAULT_CMD = ["atrium-singleuser"]
LOG_NAME = "atrium-server.log"
MARKER_VAR = "ATRIUM_SERVER_ID"  # unique per start, inherited by all the server starts
# the plain-exec path: a stdlib-only script that waits at the gate, becomes the server
# (user, limits, environment) and execs its command
LAUNCHER = [sys.executable, "-I", "-S", os.path.join(os.path.dirname(__file__), "launcher.py")]
_UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

# plain-exec servers this process started, until reaped (any spawner instance may poll)
_children: dict[int, subprocess.Popen[bytes]] = {}
_warned: set[str] = set()


@dataclass(frozen=True)
class Account:
    """Whose server it is on this machine. `switch`: run it as this account (root hub)."""

    name: str
    uid: int
    gid: int
    groups: list[int]
    home: str
    shell: str
    switch: bool


@dataclass
class Layout:
    home: str
    data: str
    runtime: str
    log_path: str
    log_fd: int


def _default_users_root() -> str:
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data_home, "atrium", "users")


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


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
        pid = getattr(self, "pid", 0)
        popen = _children.get(pid)
        if popen is not None and popen.poll() is not None:
            del _children[pid]
        self.pid = 0
        self.start_time = 0
        self.boot = ""
        self.pgid = 0
        self.port = 0
        self.uid: int | None = None
        self.marker = ""
        self.via = ""
        self.log_path = ""
        self.cgroups = ServerCgroups()
        self.exit_status: int | None = None
        self._template: TemplateClient | None = None

    def get_state(self) -> dict[str, Any]:
        if not self.pid and not self.cgroups.paths:
            return {}
        return {
            "pid": self.pid,
            "start_time": self.start_time,
            "boot_id": self.boot,
            "pgid": self.pgid,
            "port": self.port,
            "mode": self.mode,
            "uid": self.uid,
            "marker": self.marker,
            "via": self.via,
            "log": self.log_path,
            "cgroups": list(self.cgroups.paths),
            "cgroup_parents": list(self.cgroups.parents),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.clear_state()
        self.pid = int(state.get("pid") or 0)
        self.start_time = int(state.get("start_time") or 0)
        self.boot = str(state.get("boot_id") or "")
        self.pgid = int(state.get("pgid") or self.pid)
        self.port = int(state.get("port") or 0)
        uid = state.get("uid")
        self.uid = None if uid is None else int(uid)
        self.marker = str(state.get("marker") or "")
        self.via = str(state.get("via") or "")
        self.log_path = str(state.get("log") or "")
        self.cgroups = ServerCgroups(
            paths=[str(p) for p in state.get("cgroups") or []],
            parents=[str(p) for p in state.get("cgroup_parents") or []],
        )

    # --- start ---------------------------------------------------------------------

    async def start(self) -> str:
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
        self.port = _free_port(connect_ip)
        self.marker = secrets.token_hex(16)
        self.uid = account.uid
        self.log_path = layout.log_path
        env = self._server_env(account, layout)
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
        limits = Limits(self.mem_limit, self.cpu_limit, self.proc_limit)
        self._make_cgroups(limits, account)
        rlimits, warnings = rlimit_fallback(limits, self._not_enforced(limits), account.switch)
        for warning in warnings:
            if warning not in _warned:
                _warned.add(warning)
                self.log.warning("%s", warning)
        spec = {
            "env": env,
            "cwd": layout.home,
            "uid": account.uid if account.switch else None,
            "gid": account.gid if account.switch else None,
            "groups": account.groups if account.switch else None,
            "rlimits": rlimits,
        }
        gate_r, gate_w = os.pipe()
        try:
            pid, argv = await self._launch(layout, env, gate_r, gate_w)
            self.pid = self.pgid = pid
            self.start_time = procinfo.start_time(pid) or 0
            self.boot = procinfo.boot_id()
            self.report_progress(30, f"server process started (pid {pid})")
            self.cgroups.place(pid)
            # a hub killed from here on has recorded what its successor needs to stop it
            await self.save_state(self.get_state())
            await self._release(gate_w, gate_message({**spec, "argv": argv}))
        finally:
            os.close(gate_w)
        self.report_progress(50, "waiting for the server to answer")
        await self._wait_ready(connect_ip, f"{prefix}api", layout.log_fd)
        self.report_progress(100, "server is ready")
        return f"http://{_url_host(connect_ip)}:{self.port}"

    async def _account(self) -> Account:
        if self.mode == "one-account":
            uid = os.geteuid()
            if uid == 0 and not self.allow_root:
                raise SpawnError(
                    "this hub runs as root and would run user servers as root too; "
                    "set LocalProcessSpawner.mode = 'system-users' (each server as its "
                    "user's account) or run the hub as an ordinary account"
                )
            try:
                entry = pwd.getpwuid(uid)
                name, shell = entry.pw_name, entry.pw_shell
            except KeyError:
                name, shell = str(uid), "/bin/sh"
            return Account(name, uid, os.getegid(), [], "", shell, switch=False)
        entry = await self._system_account()
        if entry.pw_uid == 0:
            raise SpawnError(
                f"the Unix account {entry.pw_name!r} is root (uid 0); "
                "user servers never run as root"
            )
        if entry.pw_uid < self.min_uid:
            raise SpawnError(
                f"the Unix account {entry.pw_name!r} has uid {entry.pw_uid}, below "
                f"LocalProcessSpawner.min_uid ({self.min_uid}): system accounts never run "
                "user servers"
            )
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
        return Account(
            entry.pw_name,
            entry.pw_uid,
            entry.pw_gid,
            groups,
            entry.pw_dir,
            entry.pw_shell or "/bin/sh",
            switch=True,
        )

    async def _system_account(self) -> pwd.struct_passwd:
        name = self.user_name
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        if not _UNIX_NAME.match(name):
            raise SpawnError(
                f"{name!r} cannot be a Unix account name (use lower-case letters, digits, "
                "'-' and '_', at most 32 characters, starting with a letter); ask an "
                "administrator"
            )
        if not self.create_system_users:
            raise SpawnError(
                f"there is no Unix account named {name!r} on this machine; ask an "
                "administrator to create it"
            )
        self.report_progress(8, f"creating the Unix account {name}")
        proc = await asyncio.create_subprocess_exec(
            "useradd",
            "--create-home",
            "--",
            name,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        out, _ = await proc.communicate()
        try:
            return pwd.getpwnam(name)  # made now, or by a start of another of their servers
        except KeyError:
            reason = out.decode(errors="replace").strip()[-200:]
            self.log.error("useradd %s failed (%s): %s", name, proc.returncode, reason)
            raise SpawnError(f"the Unix account {name!r} could not be created") from None

    def _runtime_name(self) -> str:
        return f"runtime-{safe_component(self.server_name)}" if self.server_name else "runtime"

    def _prepare_dirs(self, account: Account) -> Layout:
        user = safe_component(self.user_name)
        runtime_name = self._runtime_name()
        if not account.switch:
            root = self.users_root or _default_users_root()
            home, fd = ensure_dirs(root, [Level(user), Level("home")])
            os.close(fd)
            data, fd = ensure_dirs(root, [Level(user), Level("data")])
            os.close(fd)
            runtime, runtime_fd = ensure_dirs(root, [Level(user), Level(runtime_name)])
        else:
            home = account.home
            if not os.path.isdir(home):
                raise SpawnError(f"the home directory {home} of {account.name!r} does not exist")
            data = os.path.join(home, ".local", "share", "jupyter")
            owner = {"uid": account.uid, "gid": account.gid}
            runtime, runtime_fd = ensure_dirs(
                self.runtime_root or "/run/atrium",
                [Level(user, **owner), Level(runtime_name, **owner)],
                base_mode=0o711,
            )
        try:
            if self.log_dir:
                name = f"{user}.{safe_component(self.server_name)}" if self.server_name else user
                log_dir, log_dir_fd = ensure_dirs(self.log_dir, [])
                try:
                    log_fd = open_log(log_dir_fd, f"{name}.log", None, None)
                finally:
                    os.close(log_dir_fd)
                log_path = os.path.join(log_dir, f"{name}.log")
            else:
                owner_uid = account.uid if account.switch else None
                owner_gid = account.gid if account.switch else None
                log_fd = open_log(runtime_fd, LOG_NAME, owner_uid, owner_gid)
                log_path = os.path.join(runtime, LOG_NAME)
        finally:
            os.close(runtime_fd)
        return Layout(home, data, runtime, log_path, log_fd)

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
                MARKER_VAR: self.marker,
            }
        )
        env.setdefault("PATH", os.defpath)
        return env

    def _make_cgroups(self, limits: Limits, account: Account) -> None:
        if not self.use_cgroups or not limits.controllers():
            return
        user = safe_component(self.user_name)
        server = safe_component(self.server_name) if self.server_name else ""
        # '%' never appears unescaped in a component, so the prefix names this server only
        prefix = f"{user}%{server}%"
        note = "" if os.geteuid() == 0 else f" (as uid {os.geteuid()})"
        self.cgroups = create_cgroups(
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
        self._template = client
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
        _children[proc.pid] = proc
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
            await self._kill_all(within=max(1.0, self.stop_timeout))
        except SpawnError as e:
            self.log.error("Cleaning up the failed start of %s: %s", self.log_name, e)
        finally:
            self.cgroups.remove()

    # --- watching and stopping ---------------------------------------------------------

    def _known_exit(self) -> int | None:
        """The exit status if the process has been reaped by us or by the template."""
        popen = _children.get(self.pid)
        if popen is not None:
            return popen.poll()
        clients = [self._template] if self._template is not None else running_templates()
        for client in clients:
            status = client.exit_status(self.pid) if client is not None else None
            if status is not None:
                return status
        return None

    def _leader_running(self) -> bool:
        if not self.pid or (self.boot and self.boot != procinfo.boot_id()):
            return False
        if self._known_exit() is not None:
            return False
        return procinfo.is_running(self.pid, self.start_time)

    async def poll(self) -> int | None:
        if not self.pid:
            return 0 if self.exit_status is None else self.exit_status
        if self._leader_running():
            return None
        status = self._known_exit()
        if status is None and self._template is not None and not self._template.dead:
            # the template reaps and reports its children: give the report a moment
            for _ in range(25):
                await asyncio.sleep(0.02)
                status = self._known_exit()
                if status is not None:
                    break
        if status is not None or self.exit_status is None:
            self.exit_status = 0 if status is None else status
        # the server is gone: so is anything it left behind (kernels, its cgroups)
        if self._remaining():
            await self._kill_all(within=5.0)
        self.cgroups.remove()
        return self.exit_status

    def _remaining(self) -> list[int]:
        """Live processes of this server: its leader, group, kernels, cgroup members."""
        if not self.pid or (self.boot and self.boot != procinfo.boot_id()):
            return self.cgroups.members()
        leader = procinfo.read_stat(self.pid)
        foreign = leader is not None and leader.start_time != self.start_time
        marker = f"{MARKER_VAR}={self.marker}" if self.marker else ""
        found = set(procinfo.server_processes(None if foreign else self.pgid, marker, self.uid))
        found.update(self.cgroups.members())
        if leader is not None and not foreign and leader.state not in ("Z", "X"):
            found.add(self.pid)
        return sorted(found)

    async def _kill_all(self, within: float) -> None:
        """SIGKILL everything of this server until nothing is left (or `within` s passed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self._reap()
            left = await asyncio.to_thread(self._remaining)
            if not left:
                return
            if loop.time() > deadline:
                raise SpawnError(f"processes {left[:10]} of the server would not die")
            self.cgroups.kill()
            procinfo.signal_pids(left, signal.SIGKILL)
            await asyncio.sleep(0.02)

    def _reap(self) -> None:
        popen = _children.get(self.pid)
        if popen is not None:
            popen.poll()

    async def stop(self, now: bool = False) -> None:
        if self.pid and not now and self._leader_running():
            procinfo.signal_group(self.pgid, signal.SIGTERM)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGTERM)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max(0.0, min(self.term_timeout, self.stop_timeout * 0.8))
            # /proc has no event to wait on: poll it
            while self._leader_running() and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await self._kill_all(within=max(5.0, self.stop_timeout))
        status = self._known_exit()
        self.exit_status = self.exit_status if status is None else status
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        # a cgroup is removable only once its last process is fully gone
        while self.cgroups.remove() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        popen = _children.get(self.pid)
        if popen is not None and popen.returncode is not None:
            del _children[self.pid]
