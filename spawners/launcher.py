"""The first moments of a user server's process: wait at the start gate, then become it.

Every server process starts as a child of the hub (or of the template,
`spawners.template`) that blocks reading its start gate, a pipe whose write end
only the hub holds. EOF (the hub died before releasing it) means exit at once
(status 111), so a hub killed mid-spawn leaves nothing behind. Otherwise the
hub writes b"G", a 4-byte big-endian length and a JSON spec:

    {"argv": [...], "env": {...}, "cwd": "...", "uid": int|null, "gid": int|null,
     "groups": [...]|null, "rlimits": [[resource, value], ...]}

and `become` takes it on: stdin from /dev/null, stdout and stderr to the log,
every other descriptor closed, rlimits lowered, supplementary groups, gid and
uid set (never back to root), working directory and environment replaced.

Run as a script (`python -I -S launcher.py`, stdin = the gate, stdout/stderr =
the log) it is the plain-exec path: after `become` it execs the spec's argv.
It uses the standard library only, so it starts in a few milliseconds without
site-packages.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import sys
from typing import Any

GATE_CLOSED = 111  # exit status when the gate closed before "go" (the hub went away)
GATE_FAILED = 112  # exit status when the spec could not be taken on (see the log)


def gate_message(spec: dict[str, Any]) -> bytes:
    """What the hub writes to a gate to release the process waiting at it."""
    body = json.dumps(spec).encode()
    return b"G" + struct.pack(">I", len(body)) + body


def _read_exactly(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_gate(gate: int) -> dict[str, Any] | None:
    """Block until the hub says go (returns the spec) or goes away (None)."""
    head = _read_exactly(gate, 5)
    if head is None or head[:1] != b"G":
        return None
    (length,) = struct.unpack(">I", head[1:])
    body = _read_exactly(gate, length)
    if body is None:
        return None
    spec: dict[str, Any] = json.loads(body)
    return spec


def become(spec: dict[str, Any], log_fd: int) -> None:
    """Take on the server's identity: stdio, descriptors, limits, user, directory, env."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    if log_fd != 1:
        os.dup2(log_fd, 1)
    if log_fd != 2:
        os.dup2(log_fd, 2)
    open_max = os.sysconf("SC_OPEN_MAX")
    os.closerange(3, open_max if open_max > 0 else 65536)
    for which, value in spec.get("rlimits") or []:
        # lowering one's own limits needs no privilege (prlimit from the hub would)
        _soft, hard = resource.getrlimit(which)
        new_hard = value if hard == resource.RLIM_INFINITY else min(hard, value)
        resource.setrlimit(which, (min(value, new_hard), new_hard))
    uid, gid = spec.get("uid"), spec.get("gid")
    if gid is not None:
        os.setgroups(list(spec.get("groups") or [gid]))
        os.setresgid(gid, gid, gid)
    if uid is not None:
        os.setresuid(uid, uid, uid)
        if uid != 0 and 0 in os.getresuid():
            raise PermissionError("could not drop root privileges")
    os.chdir(spec["cwd"])
    os.umask(0o022)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in spec["env"].items()})


def main() -> None:
    spec = read_gate(0)
    if spec is None:
        os._exit(GATE_CLOSED)
    argv = [str(a) for a in spec["argv"]]
    try:
        become(spec, 1)
    except Exception as e:
        print(f"atrium: the server could not be started: {e}", file=sys.stderr, flush=True)
        os._exit(GATE_FAILED)
    try:
        # the command the hub's configuration names (c.Spawner.cmd), never a user's input
        os.execvp(argv[0], argv)  # noqa: S606
    except OSError as e:
        print(f"atrium: cannot run {argv[0]}: {e}", file=sys.stderr, flush=True)
        os._exit(127)


if __name__ == "__main__":
    main()
