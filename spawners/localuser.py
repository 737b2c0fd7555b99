"""Whose a local server is, and where its files go: accounts and directories.

`hub_account` (one-account mode: every server runs as the hub's own account)
and `system_account` (system-users mode: the Unix account named like the user,
created with useradd when allowed; never root or a system account) say who a
server runs as. `one_account_dirs` and `system_user_dirs` make its directories
and open its log (`spawners.userdirs` does it without following links). Used
by `spawners.local`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from spawners.base import SpawnError
from spawners.userdirs import Level, ensure_dirs, open_log, safe_component

log = logging.getLogger(__name__)

LOG_NAME = "atrium-server.log"
UNIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


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
    """A server's directories, and its log file (open; the spawner closes it)."""

    home: str
    data: str
    runtime: str
    log_path: str
    log_fd: int


def default_users_root() -> str:
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data_home, "atrium", "users")


def hub_account(allow_root: bool) -> Account:
    """one-account mode: the hub's own account (root only if `allow_root`)."""
    uid = os.geteuid()
    if uid == 0 and not allow_root:
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
    return Account(name, uid, os.getegid(), [], "", shell or "/bin/sh", switch=False)


async def system_account(
    name: str, create: bool, min_uid: int, creating: Callable[[str], None]
) -> Account:
    """system-users mode: the Unix account `name` (made if missing and `create`)."""
    entry = await _find_or_create(name, create, creating)
    if entry.pw_uid == 0:
        raise SpawnError(
            f"the Unix account {entry.pw_name!r} is root (uid 0); user servers never run as root"
        )
    if entry.pw_uid < min_uid:
        raise SpawnError(
            f"the Unix account {entry.pw_name!r} has uid {entry.pw_uid}, below "
            f"LocalProcessSpawner.min_uid ({min_uid}): system accounts never run user servers"
        )
    return Account(
        entry.pw_name,
        entry.pw_uid,
        entry.pw_gid,
        os.getgrouplist(entry.pw_name, entry.pw_gid),
        entry.pw_dir,
        entry.pw_shell or "/bin/sh",
        switch=True,
    )


async def _find_or_create(
    name: str, create: bool, creating: Callable[[str], None]
) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if not UNIX_NAME.match(name):
        raise SpawnError(
            f"{name!r} cannot be a Unix account name (use lower-case letters, digits, "
            "'-' and '_', at most 32 characters, starting with a letter); ask an administrator"
        )
    if not create:
        raise SpawnError(
            f"there is no Unix account named {name!r} on this machine; ask an "
            "administrator to create it"
        )
    creating(name)
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
        log.error("useradd %s failed (%s): %s", name, proc.returncode, reason)
        raise SpawnError(f"the Unix account {name!r} could not be created") from None


def _runtime_name(server_name: str) -> str:
    return f"runtime-{safe_component(server_name)}" if server_name else "runtime"


def one_account_dirs(user_name: str, server_name: str, users_root: str, log_dir: str) -> Layout:
    """`<root>/<user>/{home,data,runtime[-<server>]}`, all 0700, owned by the hub."""
    root = users_root or default_users_root()
    user = safe_component(user_name)
    home, fd = ensure_dirs(root, [Level(user), Level("home")])
    os.close(fd)
    data, fd = ensure_dirs(root, [Level(user), Level("data")])
    os.close(fd)
    runtime, runtime_fd = ensure_dirs(root, [Level(user), Level(_runtime_name(server_name))])
    return _with_log(user_name, server_name, home, data, runtime, runtime_fd, log_dir, None)


def system_user_dirs(
    account: Account, user_name: str, server_name: str, runtime_root: str, log_dir: str
) -> Layout:
    """The account's home; `<runtime_root>/<user>/runtime[-<server>]` owned by it, 0700."""
    home = account.home
    if not os.path.isdir(home):
        raise SpawnError(f"the home directory {home} of {account.name!r} does not exist")
    data = os.path.join(home, ".local", "share", "jupyter")
    owner = {"uid": account.uid, "gid": account.gid}
    runtime, runtime_fd = ensure_dirs(
        runtime_root or "/run/atrium",
        [Level(safe_component(user_name), **owner), Level(_runtime_name(server_name), **owner)],
        base_mode=0o711,
    )
    return _with_log(user_name, server_name, home, data, runtime, runtime_fd, log_dir, account)


def _with_log(
    user_name: str,
    server_name: str,
    home: str,
    data: str,
    runtime: str,
    runtime_fd: int,
    log_dir: str,
    owner: Account | None,
) -> Layout:
    """Open the server's log: in its runtime dir (owned like it), or in `log_dir`."""
    try:
        if log_dir:
            name = safe_component(user_name)
            if server_name:
                name = f"{name}%{safe_component(server_name)}"  # '%' is never in a name
            path, dir_fd = ensure_dirs(log_dir, [])
            try:
                log_fd = open_log(dir_fd, f"{name}.log", None, None)
            finally:
                os.close(dir_fd)
            log_path = os.path.join(path, f"{name}.log")
        else:
            uid = owner.uid if owner is not None else None
            gid = owner.gid if owner is not None else None
            log_fd = open_log(runtime_fd, LOG_NAME, uid, gid)
            log_path = os.path.join(runtime, LOG_NAME)
    finally:
        os.close(runtime_fd)
    return Layout(home, data, runtime, log_path, log_fd)
