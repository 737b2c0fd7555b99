"""Running wrk (Debian's package) and reading its numbers.

A Lua `done` hook prints one JSON line with the counts and latency
percentiles in microseconds, so nothing is parsed from wrk's human output. A
`done` hook (unlike `request`/`response`) keeps wrk on its fast path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubs import BenchError

MARK = "WRK_JSON "
PERCENTILES = (50, 90, 99, 99.9)

DONE = """
done = function(summary, latency, requests)
  local p = {}
  for _, q in ipairs({%(percentiles)s}) do
    p[#p + 1] = string.format('"%%s": %%d', tostring(q), latency:percentile(q))
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, '
    .. '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, '
    .. '"latency_us": {"min": %%d, "max": %%d, "mean": %%.1f, "stdev": %%.1f, "p": {%%s}}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(p, ", ")))
end
"""

UPLOAD = """
wrk.method = "POST"
wrk.body = string.rep("x", %(size)d)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


def command() -> str:
    found = shutil.which("wrk")
    if not found:
        raise BenchError("wrk not found: apt-get install -y wrk")
    return found


def version() -> str:
    done = subprocess.run([command(), "-v"], capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    # "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer"
    return lines[0].split(" Copyright")[0] if lines else "unknown"


def write_script(path: Path, *, upload_size: int = 0) -> Path:
    text = DONE % {"percentiles": ", ".join(str(p) for p in PERCENTILES), "mark": MARK}
    if upload_size:
        text = UPLOAD % {"size": upload_size} + text
    path.write_text(text)
    return path


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    bytes: int
    errors: dict[str, int]
    latency_us: dict[str, Any]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def p(self, q: float) -> float:
        """A latency percentile in ms."""
        return float(self.latency_us["p"][str(q)]) / 1000

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.rps, 1),
            "bytes": self.bytes,
            "errors": self.errors,
            "latency_ms": {
                "min": self.latency_us["min"] / 1000,
                "mean": round(self.latency_us["mean"] / 1000, 4),
                "stdev": round(self.latency_us["stdev"] / 1000, 4),
                "max": self.latency_us["max"] / 1000,
                **{f"p{q}": self.p(q) for q in PERCENTILES},
            },
        }


def run(
    url: str, *, connections: int, threads: int, duration: float, script: Path, timeout: float = 10
) -> WrkResult:
    """wrk against `url` for `duration` seconds; bounded (killed if it overruns)."""
    cmd = [
        command(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        f"--timeout={timeout:g}s",
        "-s",
        str(script),
        url,
    ]
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration + timeout + 20, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish: {' '.join(cmd)}") from None
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            data = json.loads(line[len(MARK) :])
            return WrkResult(
                data["requests"],
                data["duration_us"] / 1e6,
                data["bytes"],
                data["errors"],
                data["latency_us"],
            )
    raise BenchError(
        f"wrk gave no result ({done.returncode}): {(done.stdout + done.stderr)[-500:]}"
    )
