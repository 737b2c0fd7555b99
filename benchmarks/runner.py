"""What every benchmark's `main()` does around its measurements: phases on the
terminal, a time limit (`--timeout`), and the cleanup that runs whatever happens:
every process it started stopped by PID, its temporary directory kept (on failure,
or with `--keep`) or removed. Neighbours: `hubs.py` (`ProcessGroup`, the processes),
`runinfo.py` (what a run records and how its results file is written).
"""

from __future__ import annotations

import http.client
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from hubs import BenchError, ProcessGroup

# what any benchmark may fail with: its own errors, and a hub that stopped answering
# (its log is in the kept directory)
ERRORS: tuple[type[BaseException], ...] = (BenchError, OSError, http.client.HTTPException)


class RunTimeout(KeyboardInterrupt):
    """--timeout passed. Raised like Ctrl-C, so that neither a step's error handling
    (`except BenchError/OSError`) nor an event loop (which re-raises only
    KeyboardInterrupt and SystemExit from callbacks) can swallow it."""


def on_alarm(_sig: int, _frame: FrameType | None) -> None:
    raise RunTimeout("the benchmark ran past --timeout; stopping")


def on_term(sig: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + sig)


def phase(label: str) -> Callable[[], None]:
    """Print `label`; the function returned prints the seconds since."""
    print(f"{label} ...", flush=True)
    t0 = time.perf_counter()

    def done() -> None:
        print(f"  {time.perf_counter() - t0:.1f}s", flush=True)

    return done


class ignoring:
    """Ignore some signals while cleaning up, so a second Ctrl-C cannot strand a child."""

    def __init__(self, *signals: signal.Signals) -> None:
        self.signals = signals
        self.saved: list[Any] = []

    def __enter__(self) -> None:
        self.saved = [signal.signal(s, signal.SIG_IGN) for s in self.signals]

    def __exit__(self, *exc: object) -> None:
        for s, handler in zip(self.signals, self.saved, strict=True):
            signal.signal(s, handler)


def run_guarded(
    body: Callable[[ProcessGroup, Path], dict[str, Any]],
    *,
    timeout: int,
    keep: bool,
    prefix: str,
    errors: tuple[type[BaseException], ...] = (),
    after_stop: Callable[[Path], object] | None = None,
    kept: str = "Logs",
    timeout_is_error: bool = False,
) -> tuple[int, dict[str, Any]]:
    """`body(procs, workdir)` in a fresh temporary directory named `prefix`..., stopped
    after `timeout` s; (0, its results), or (the exit code, {}) once the error is printed:
    1 for an error (ERRORS, `errors`; a timeout too with `timeout_is_error`), 130 for
    Ctrl-C or a timeout. Afterwards, also on errors, Ctrl-C and SIGTERM: every process in
    `procs` stopped by PID, then `after_stop(workdir)` (strays it left, say), and the
    directory removed unless the run failed or `keep`; `kept` says what it holds."""
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C must clean up even when started from a shell that ignores SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.alarm(timeout)
    procs = ProcessGroup()
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    failed = True
    try:
        results = body(procs, workdir)
        failed = False
        return 0, results
    except RunTimeout as e:
        if timeout_is_error:
            print(f"error: {e}", file=sys.stderr)
            return 1, {}
        print(f"interrupted: {e}", file=sys.stderr)
        return 130, {}
    except (*ERRORS, *errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1, {}
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130, {}
    finally:
        signal.alarm(0)
        with ignoring(signal.SIGINT, signal.SIGTERM):
            procs.stop_all()
            if after_stop is not None:
                after_stop(workdir)
        if failed or keep:
            print(f"{kept} kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
