"""Users' directories on disk, made without ever following a link a user planted.

`safe_component` turns a user or server name into one file name (never '.',
'..', hidden, or with a '/'; different names never share one). `ensure_dirs`
walks and creates a chain of directories below a trusted base with directory
file descriptors and O_NOFOLLOW, giving each level its owner and mode, so a
hub running as root cannot be tricked into creating, chowning or opening
something outside the tree through a symbolic link made by a user who owns one
of the levels. `open_log` creates a server's log file the same way.
Used by `spawners.local`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from dataclasses import dataclass

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@_+-")
_MAX = 200  # bytes; file names may have 255


def safe_component(name: str) -> str:
    """One path component for `name`: ASCII letters, digits, `@ _ + -` and inner dots
    kept, everything else (a leading dot, '/', '%', other scripts) as %XX bytes."""
    out = []
    for i, ch in enumerate(name):
        if ch in _SAFE or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    result = "".join(out) or "%"
    if len(result) > _MAX:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        result = f"{result[: _MAX - 20]}%{digest}"
    return result


@dataclass(frozen=True)
class Level:
    """One directory below the base: its name, mode and owner (None: the hub's)."""

    name: str
    mode: int = 0o700
    uid: int | None = None
    gid: int | None = None


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_base(base: str, mode: int) -> int:
    """Open (and create, with `mode`, if missing) the trusted base directory."""
    if not os.path.isdir(base):
        os.makedirs(base, mode=mode, exist_ok=True)
        os.chmod(base, mode)
    return os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def ensure_dirs(base: str, levels: list[Level], base_mode: int = 0o700) -> tuple[str, int]:
    """Create `base/level1/level2/...`; returns the path and an open fd of the last level
    (the caller closes it). OSError if a level is a link or not a directory."""
    fd = open_base(base, base_mode)
    path = base
    try:
        for level in levels:
            if level.name in ("", ".", "..") or "/" in level.name:
                raise ValueError(f"unsafe directory name {level.name!r}")
            with contextlib.suppress(FileExistsError):
                os.mkdir(level.name, level.mode, dir_fd=fd)
            child = os.open(level.name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
            path = os.path.join(path, level.name)
            info = os.fstat(fd)
            uid = -1 if level.uid is None or info.st_uid == level.uid else level.uid
            gid = -1 if level.gid is None or info.st_gid == level.gid else level.gid
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            if stat.S_IMODE(info.st_mode) != level.mode:
                os.fchmod(fd, level.mode)
    except BaseException:
        os.close(fd)
        raise
    return path, fd


def open_log(dir_fd: int, name: str, uid: int | None, gid: int | None) -> int:
    """A fresh log file `name` in the directory `dir_fd` (the previous one is kept as
    `name.1`), mode 0600, owned by uid:gid; returned open for appending and reading."""
    with contextlib.suppress(FileNotFoundError):
        os.rename(name, f"{name}.1", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(3):
        try:
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:  # made in between by the server's owner: not ours to trust
            os.unlink(name, dir_fd=dir_fd)
    else:
        raise FileExistsError(f"cannot create the log file {name}")
    if uid is not None:
        os.fchown(fd, uid, -1 if gid is None else gid)
    return fd


def log_tail(fd: int, max_chars: int = 300, max_lines: int = 8) -> str:
    """The last lines of a log, shortened for an error message."""
    try:
        size = os.fstat(fd).st_size
        raw = os.pread(fd, 4096, max(0, size - 4096))
    except OSError:
        return ""
    lines = [line.rstrip() for line in raw.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line][-max_lines:]
    # whole lines, the last ones first; only a last line longer than the room is cut
    while len(lines) > 1 and len("\n".join(lines)) > max_chars:
        lines.pop(0)
    return "\n".join(lines)[-max_chars:]
