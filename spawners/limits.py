"""Resource limits for one user server: cgroups when the hub can make them, else rlimits.

A server (with its kernels) gets a cgroup per controller it needs: `memory`
(mem_limit), `cpu` (cpu_limit, a CFS quota) and `pids` (proc_limit). Both cgroup
v1 (one hierarchy per controller, e.g. /sys/fs/cgroup/memory) and v2 (one
unified hierarchy whose parent delegates the controllers) are supported; the
hierarchies are found in /proc/self/mountinfo, and by default the servers'
cgroups live under the hub's own cgroup (`<own>/atrium/<server>`), so a hub
confined by its supervisor keeps its servers inside the same bounds.

What cannot be enforced with a cgroup falls back to an rlimit where one exists
(RLIMIT_DATA for memory, per process; RLIMIT_NPROC for processes, per Unix
account, so only when servers run as their users' own accounts), and the
caller logs a warning naming what is not enforced. `spawners.local` creates the
cgroups before the server process is released and removes them after it stops.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from dataclasses import dataclass, field

CONTROLLERS = ("memory", "cpu", "pids")


@dataclass(frozen=True)
class Limits:
    mem: int | None = None  # bytes
    cpu: float | None = None  # cores
    procs: int | None = None

    def controllers(self) -> list[str]:
        wanted = {"memory": self.mem, "cpu": self.cpu, "pids": self.procs}
        return [name for name in CONTROLLERS if wanted[name] is not None]


@dataclass(frozen=True)
class Hierarchy:
    """Where one controller is mounted, and the hub's own cgroup in it."""

    version: int  # 1 or 2
    mountpoint: str
    mount_root: str  # the hierarchy path the mount shows at its mountpoint
    own_path: str  # the hub's cgroup in this hierarchy (from /proc/self/cgroup)

    def fs_path(self, cgroup: str) -> str | None:
        """The directory of hierarchy path `cgroup`, if this mount shows it."""
        root = self.mount_root.rstrip("/")
        if cgroup != root and not cgroup.startswith(root + "/"):
            return None
        return self.mountpoint.rstrip("/") + cgroup[len(root) :]


def find_hierarchies() -> dict[str, Hierarchy]:
    """controller name -> its hierarchy, for the controllers the spawner uses."""
    own_v1: dict[str, str] = {}
    own_v2 = ""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                hid, names, path = line.rstrip("\n").split(":", 2)
                if hid == "0" and not names:
                    own_v2 = path
                for name in names.split(","):
                    own_v1[name] = path
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return {}
    found: dict[str, Hierarchy] = {}
    unified: Hierarchy | None = None
    for parts in mounts:
        sep = parts.index("-")
        fstype, superopts = parts[sep + 1], parts[sep + 3] if len(parts) > sep + 3 else ""
        root, mountpoint = _unescape(parts[3]), _unescape(parts[4])
        if fstype == "cgroup":
            for name in superopts.split(","):
                if name in CONTROLLERS and name in own_v1 and name not in found:
                    found[name] = Hierarchy(1, mountpoint, root, own_v1[name])
        elif fstype == "cgroup2" and unified is None:
            unified = Hierarchy(2, mountpoint, root, own_v2 or "/")
    if unified is not None:
        for name in CONTROLLERS:
            if name not in found:
                found[name] = unified
    return found


def _unescape(path: str) -> str:
    # mountinfo writes spaces, tabs, newlines and backslashes as octal escapes
    return path.encode().decode("unicode_escape") if "\\" in path else path


@dataclass
class ServerCgroups:
    """The cgroup directories one server was placed in (saved in the spawner's state)."""

    paths: list[str] = field(default_factory=list)
    not_enforced: dict[str, str] = field(default_factory=dict)  # controller -> why
    # parents the spawner made itself (`<own>/atrium`): removed too once empty
    parents: list[str] = field(default_factory=list)

    def place(self, pid: int) -> None:
        """Move `pid` (still waiting at its start gate) into every cgroup."""
        for path in self.paths:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def members(self) -> list[int]:
        out: set[int] = set()
        for path in self.paths:
            out.update(_procs(path))
        return sorted(out)

    def kill(self) -> None:
        """SIGKILL every process in the cgroups (cgroup.kill where v2 has it)."""
        for path in self.paths:
            kill_file = os.path.join(path, "cgroup.kill")
            if os.path.exists(kill_file):
                with contextlib.suppress(OSError), open(kill_file, "w") as f:
                    f.write("1")
            for pid in _procs(path):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, 9)

    def remove(self) -> list[str]:
        """Remove the (empty) cgroups; returns those that could not be removed yet."""
        left = []
        for path in self.paths:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(path)
        self.paths = left
        if not left:
            for parent in self.parents:
                with contextlib.suppress(OSError):  # other servers' cgroups are still in it
                    os.rmdir(parent)
        return left


def _procs(path: str) -> list[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(line) for line in f if line.strip()]
    except OSError:
        return []


def _write(path: str, name: str, value: str) -> None:
    with open(os.path.join(path, name), "w") as f:
        f.write(value)


def _read(path: str, name: str) -> str:
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def create_cgroups(
    limits: Limits, parent: str, name: str, stale_prefix: str, uid_note: str = ""
) -> ServerCgroups:
    """Make the server's cgroups `<parent>/<name>` with its limits written.

    `parent` is a hierarchy path ('/atrium'), or '' for `<hub's own cgroup>/atrium`.
    Empty cgroups left by an earlier start of the same server (names starting with
    `stale_prefix`) are removed first. Controllers that cannot be used are listed in
    `not_enforced` with the reason; the others are enforced.
    """
    result = ServerCgroups()
    wanted = limits.controllers()
    if not wanted:
        return result
    hierarchies = find_hierarchies()
    made: dict[str, str] = {}  # fs path -> controllers enforced there (v2 shares one dir)
    for controller in wanted:
        hierarchy = hierarchies.get(controller)
        if hierarchy is None:
            result.not_enforced[controller] = f"no {controller} cgroup controller is mounted"
            continue
        base = parent or (hierarchy.own_path.rstrip("/") + "/atrium")
        base_dir = hierarchy.fs_path(base)
        if base_dir is None:
            result.not_enforced[controller] = f"the cgroup {base} is not visible here"
            continue
        directory = ""
        try:
            try:
                directory = _make_dir(hierarchy, controller, base_dir, name, stale_prefix)
            except FileNotFoundError:  # another server's stop removed the empty parent
                directory = _make_dir(hierarchy, controller, base_dir, name, stale_prefix)
            _write_limit(hierarchy.version, directory, controller, limits)
        except OSError as e:
            if directory and directory not in made:
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
            reason = e.strerror or str(e)
            if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                reason = f"the hub may not create cgroups under {base}{uid_note}"
            elif e.errno == errno.EBUSY:
                reason = (
                    f"the cgroup {base} cannot delegate {controller} (it holds processes; "
                    "set LocalProcessSpawner.cgroup_parent to an empty, delegated cgroup)"
                )
            result.not_enforced[controller] = f"{controller} cgroup: {reason}"
            continue
        made.setdefault(directory, controller)
        if not parent and base_dir not in result.parents:
            result.parents.append(base_dir)
    result.paths = list(made)
    return result


def _make_dir(
    hierarchy: Hierarchy, controller: str, base_dir: str, name: str, stale_prefix: str
) -> str:
    os.makedirs(base_dir, exist_ok=True)
    if hierarchy.version == 2:
        available = _read(base_dir, "cgroup.controllers").split()
        if controller not in available:
            raise OSError(
                errno.ENOTSUP,
                f"the {controller} controller is not delegated to {base_dir}",
            )
        if controller not in _read(base_dir, "cgroup.subtree_control").split():
            _write(base_dir, "cgroup.subtree_control", f"+{controller}")
    with contextlib.suppress(OSError):
        for entry in os.listdir(base_dir):
            full = os.path.join(base_dir, entry)
            if entry.startswith(stale_prefix) and os.path.isdir(full) and not _procs(full):
                with contextlib.suppress(OSError):
                    os.rmdir(full)
    directory = os.path.join(base_dir, name)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory)
    return directory


def _write_limit(version: int, directory: str, controller: str, limits: Limits) -> None:
    if controller == "memory" and limits.mem is not None:
        if version == 1:
            _write(directory, "memory.limit_in_bytes", str(limits.mem))
            if os.path.exists(os.path.join(directory, "memory.memsw.limit_in_bytes")):
                # memory + swap: the same bound, so swapping out is no way around it
                with contextlib.suppress(OSError):
                    _write(directory, "memory.memsw.limit_in_bytes", str(limits.mem))
        else:
            _write(directory, "memory.max", str(limits.mem))
            if os.path.exists(os.path.join(directory, "memory.swap.max")):
                with contextlib.suppress(OSError):
                    _write(directory, "memory.swap.max", "0")
    elif controller == "cpu" and limits.cpu is not None:
        if version == 1:
            period = int(_read(directory, "cpu.cfs_period_us") or 100000)
            _write(directory, "cpu.cfs_quota_us", str(max(1000, int(limits.cpu * period))))
        else:
            period = 100000
            _write(directory, "cpu.max", f"{max(1000, int(limits.cpu * period))} {period}")
    elif controller == "pids" and limits.procs is not None:
        _write(directory, "pids.max", str(limits.procs))


def rlimit_fallback(
    limits: Limits, not_enforced: dict[str, str], per_user_account: bool
) -> tuple[list[tuple[int, int]], list[str]]:
    """rlimits to set on the server process for limits no cgroup enforces, and one
    warning per limit that is weaker than asked or not enforced at all."""
    rlimits: list[tuple[int, int]] = []
    warnings: list[str] = []
    if limits.mem is not None and "memory" in not_enforced:
        rlimits.append((resource.RLIMIT_DATA, limits.mem))
        warnings.append(
            f"mem_limit is enforced per process (RLIMIT_DATA), not for a server and its "
            f"kernels together: {not_enforced['memory']}"
        )
    if limits.procs is not None and "pids" in not_enforced:
        if per_user_account:
            rlimits.append((resource.RLIMIT_NPROC, limits.procs))
            warnings.append(
                "proc_limit is enforced per Unix account (RLIMIT_NPROC, all of a user's "
                f"servers together): {not_enforced['pids']}"
            )
        else:
            warnings.append(
                "proc_limit is not enforced (RLIMIT_NPROC would count every process of "
                f"the hub's own account): {not_enforced['pids']}"
            )
    if limits.cpu is not None and "cpu" in not_enforced:
        warnings.append(f"cpu_limit is not enforced: {not_enforced['cpu']}")
    return rlimits, warnings
