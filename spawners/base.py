"""The spawner contract: how the hub starts, stops and watches one user server.

A spawner instance belongs to one server (`user_name`, `server_name`). The hub
sets `env` (the JUPYTERHUB_* contract, `hub.spawnenv`) and `save_state` (writes
`get_state()` to the database at once), then calls `start()` (returns the URL the
proxy should route to once the server answers), `poll()` (None while running, an
exit status once it is gone), `stop()`, and persists `get_state()` so a restarted
hub can find the server again via `load_state()`. `progress()` yields events for
the spawn-pending page while a start is under way.

The settings every spawner understands live here: the command, resource limits
(`mem_limit`, `cpu_limit`, `proc_limit`), timeouts and the options form.
Concrete spawners: `spawners.local` (processes) and `spawners.kubernetes` (pods).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from traitlets import (
    Dict,
    Float,
    Integer,
    List,
    TraitError,
    TraitType,
    Unicode,
    default,
    validate,
)
from traitlets.config import LoggingConfigurable

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def parse_size(value: object, name: str = "size") -> int | None:
    """Bytes from an int or a string like '512M', '2G', '1.5G' (binary units);
    None or 0 mean no limit. TraitError with a readable message otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TraitError(f"{name} must be a size such as 512M or 2G, not {value!r}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise TraitError(
                f"{name}: cannot read {value!r} as a size; use a number of bytes or a "
                "number followed by K, M, G or T (for example 512M or 2G)"
            )
        number, unit = float(match.group(1)), match.group(2).upper()
    else:
        raise TraitError(f"{name} must be a size such as 512M or 2G, not {value!r}")
    if number < 0:
        raise TraitError(f"{name} must not be negative, not {value!r}")
    size = int(number * _UNITS[unit])
    return size or None


class ByteSize(TraitType[int | None, int | str | None]):
    """A number of bytes, given as an int or a string such as '512M' or '2G'."""

    info_text = "a size in bytes, or a number followed by K, M, G or T (e.g. 512M)"
    allow_none = True
    default_value = None

    def validate(self, obj: Any, value: Any) -> int | None:
        return parse_size(value, self.name or "size")

    def from_string(self, s: str) -> int | None:
        if s in ("", "None"):
            return None
        return parse_size(s, self.name or "size")


class SpawnError(RuntimeError):
    """A start failed for a reason the server's owner can read (the hub shows the
    message after 'The server failed to start: ')."""


class Spawner(LoggingConfigurable):
    """Base class: subclasses implement start, stop and poll."""

    start_timeout = Float(
        120.0,
        help="Seconds a server may take to start before the spawn fails and is cleaned up.",
    ).tag(config=True)
    stop_timeout = Float(
        30.0,
        help="Seconds a server may take to stop before it is killed.",
    ).tag(config=True)
    http_timeout = Float(
        60.0,
        help="Seconds a started server process may take to answer HTTP (GET <prefix>api) "
        "before the start fails. The whole start is still bounded by start_timeout.",
    ).tag(config=True)
    environment = Dict(
        help="Extra environment variables for every user server (values are strings).",
    ).tag(config=True)
    default_url = Unicode("", help="The URL path a user lands on in their server, e.g. /lab.").tag(
        config=True
    )
    cmd = List(
        Unicode(),
        ["atrium-singleuser"],
        help="The command that runs a single-user server, e.g. ['atrium-singleuser'] (the "
        "default) or ['jupyterhub-singleuser']. A bare name is looked up on the server's PATH.",
    ).tag(config=True)
    args = List(
        Unicode(),
        help="Extra command-line arguments given to the single-user server after `cmd`.",
    ).tag(config=True)
    ip = Unicode(
        "127.0.0.1",
        help="Address the single-user server listens on. Keep the loopback address unless "
        "the proxy runs on another machine; '' or '0.0.0.0' means every interface.",
    ).tag(config=True)
    mem_limit = ByteSize(
        help="Most memory one server (with its kernels) may use, in bytes or with a unit: "
        "'512M', '2G'. None: no limit. How it is enforced depends on the spawner "
        "(cgroups, rlimits, pod limits).",
    ).tag(config=True)
    cpu_limit = Float(
        None,
        allow_none=True,
        help="Most CPU one server (with its kernels) may use, in cores (0.5, 2). None: no limit.",
    ).tag(config=True)
    proc_limit = Integer(
        None,
        allow_none=True,
        help="Most processes and threads one server (with its kernels) may run at once. "
        "None: no limit.",
    ).tag(config=True)
    options_form = Unicode(
        "",
        help="HTML form fields shown before a server starts, so its owner can choose options "
        "(read back by options_from_form into user_options). '' shows no form.",
    ).tag(config=True)

    group_overrides = Dict(
        value_trait=Dict(),
        default_value={},
        help="Settings for the members of some groups, e.g. {'teaching-assistants': "
        "{'mem_limit': '8G', 'cpu_limit': 4}}: applied at each start of a server whose owner "
        "is in the group (later groups in this dict win when a user is in several).",
    ).tag(config=True)

    @validate("group_overrides")
    def _known_overrides(self, proposal: Any) -> dict[str, dict[str, Any]]:
        value: dict[str, dict[str, Any]] = dict(proposal["value"])
        problem = type(self).override_problem(value)
        if problem:
            raise TraitError(problem)
        return value

    @classmethod
    def override_problem(cls, overrides: Any) -> str:
        """What is wrong with `group_overrides` for this class ('' when nothing): an entry
        that is not a dict of settings, or a setting the class lacks."""
        known = set(cls.class_trait_names(config=True)) - {"group_overrides"}
        for group, settings in overrides.items():
            if not isinstance(settings, dict):
                return f"group_overrides[{group!r}] must be a dict of settings"
            for name in settings:
                if name not in known:
                    return f"group_overrides[{group!r}]: {cls.__name__} has no setting {name!r}"
        return ""

    def apply_group_overrides(self) -> None:
        """Put back what an earlier start's group overrides changed, then apply those of the
        owner's groups (`user_groups`). SpawnError for a value a setting refuses."""
        for name, original in self._group_originals.items():
            setattr(self, name, original)
        self._group_originals.clear()
        groups = set(self.user_groups or ())
        for group, settings in self.group_overrides.items():
            if group not in groups:
                continue
            for name, value in settings.items():
                self._group_originals.setdefault(name, getattr(self, name))
                try:
                    setattr(self, name, value)
                except TraitError as e:
                    raise SpawnError(f"group_overrides[{group!r}]: {e}") from None

    @default("log")
    def _log_default(self) -> logging.Logger:
        # the spawner's own module ('spawners.local'), not traitlets' logger
        return logging.getLogger(type(self).__module__)

    @validate("cpu_limit")
    def _positive_cpu(self, proposal: Any) -> float | None:
        value = proposal["value"]
        if value is not None and not value > 0:
            raise TraitError(
                f"cpu_limit must be a positive number of cores (such as 0.5 or 2), not {value}"
            )
        return value  # type: ignore[no-any-return]

    @validate("proc_limit")
    def _positive_procs(self, proposal: Any) -> int | None:
        value = proposal["value"]
        if value is not None and value < 1:
            raise TraitError(f"proc_limit must be at least 1 process, not {value}")
        return value  # type: ignore[no-any-return]

    def __init__(
        self,
        *,
        user_name: str,
        server_name: str = "",
        env: dict[str, str] | None = None,
        user_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.user_name = user_name
        self.server_name = server_name
        self.env = dict(env or {})
        self.user_options = dict(user_options or {})
        # set by the hub before start(): stores get_state() in the database at once
        self.save_state: Callable[[dict[str, Any]], Awaitable[None]] = _ignore_state
        self._progress_events: list[dict[str, Any]] = []
        self._progress_active = False
        self._progress_changed = asyncio.Event()
        self._group_originals: dict[str, Any] = {}

    # the groups of the server's user, set by the hub before a start or an options check
    # (e.g. for profiles open to some groups only); None when not known
    user_groups: list[str] | None = None

    def check_user_options(self, user_options: dict[str, Any]) -> None:
        """ValueError (its message for the user) when these options can start no server,
        so that the hub refuses the start with a 400 before anything begins."""

    async def delete_forever(self) -> None:
        """The server is deleted for good, as in JupyterHub: a named server removed, or,
        when the user is deleted, each of their servers (the default one too, even if it
        never ran). Remove what outlives a stop (a volume); the server is stopped."""

    @classmethod
    async def release_shared(cls) -> None:
        """Let go of what every spawner of this class shares (watches, API connections)
        when the hub shuts down; nothing by default."""

    def get_env(self) -> dict[str, str]:
        """The server's environment: `c.Spawner.environment`, then the hub's contract
        variables (`self.env`, set by the hub before each start), which win."""
        return {**{k: str(v) for k, v in self.environment.items()}, **self.env}

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        """Turn the submitted options form (field -> values) into `user_options`:
        single values unwrapped, repeated fields kept as lists."""
        return {
            key: values[0] if len(values) == 1 else list(values) for key, values in formdata.items()
        }

    @property
    def log_name(self) -> str:
        return f"{self.user_name}/{self.server_name}" if self.server_name else self.user_name

    async def start(self) -> str:
        """Start the server; return the URL it listens on once it answers."""
        raise NotImplementedError

    async def stop(self, now: bool = False) -> None:
        """Stop the server; return once it is gone."""
        raise NotImplementedError

    async def poll(self) -> int | None:
        """None while the server runs; its exit status (or 0) once it has stopped."""
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:
        """What the hub must store to find this server again after a restart."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore from `get_state()`'s output."""

    def clear_state(self) -> None:
        """Forget the stopped server."""

    # --- progress events -------------------------------------------------------------

    def begin_progress(self) -> None:
        """A start begins: forget the events of the previous one."""
        self._progress_events = []
        self._progress_active = True
        self._wake_progress()

    def report_progress(self, progress: int, message: str) -> None:
        """Record one step of the start under way, for `progress()`."""
        self._progress_events.append({"progress": max(0, min(100, progress)), "message": message})
        self._wake_progress()

    def end_progress(self) -> None:
        """The start is over (ready or failed): `progress()` readers finish."""
        self._progress_active = False
        self._wake_progress()

    def _wake_progress(self) -> None:
        self._progress_changed.set()
        self._progress_changed = asyncio.Event()

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Events while starting: {progress: 0-100, message: str}. Yields the steps
        of the current (or last) start from its beginning, and follows it until it ends."""
        sent = 0
        while True:
            changed = self._progress_changed
            while sent < len(self._progress_events):
                yield self._progress_events[sent]
                sent += 1
            if not self._progress_active:
                return
            await changed.wait()


async def _ignore_state(state: dict[str, Any]) -> None:
    """The default `save_state`: a spawner used without a hub keeps nothing."""
