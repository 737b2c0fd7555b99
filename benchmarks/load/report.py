"""The load benchmark's figures: one hub's turn summarized (probe percentiles, step
percentiles, failures), the medians over runs, and the printed table.
Neighbours: `bench.py` (collects the turns), `users.py` (the steps).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from typing import Any

from httpclient import percentile
from users import STEPS, Session

HUBS = ("atrium", "jupyterhub")
LABELS = {"atrium": "Atrium", "jupyterhub": "JupyterHub 6"}


def _pcts(values: Sequence[float], scale: float, digits: int) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50) * scale, digits),
        "p95": round(percentile(values, 95) * scale, digits),
        "p99": round(percentile(values, 99) * scale, digits),
        "max": round(max(values) * scale, digits),
    }


def probe_summary(probe: dict[str, Any], phase: str) -> dict[str, Any]:
    """Milliseconds: latency of the ok answers sent in `phase`, how late they were sent,
    failures, and requests due but never sent (every probe connection busy)."""
    mine = [s for s in probe["samples"] if s[0] == phase]
    ok = [s[2] for s in mine if s[4]]
    out = _pcts(ok, 1000, 2)
    out["failed"] = len(mine) - len(ok)
    out["unsent"] = int(probe.get("unsent", {}).get(phase, 0))
    out["late_p99_ms"] = round(percentile([s[3] for s in mine], 99) * 1000, 2) if mine else None
    return out


def turn_summary(load: dict[str, Any], probe: dict[str, Any]) -> dict[str, Any]:
    sessions: list[Session] = load["sessions"]
    steps = {
        step: _pcts([s.steps[step] for s in sessions if step in s.steps], 1, 4) for step in STEPS
    }
    failures = Counter(s.failed_step for s in sessions if not s.ok)
    errors = Counter(_alike(f"{s.failed_step}: {s.error}") for s in sessions if not s.ok)
    done = sum(s.ok for s in sessions)
    wall = load["wall_seconds"]
    return {
        "probe": {
            "load": probe_summary(probe, "load"),
            "idle": probe_summary(probe, "baseline"),
        },
        "steps": steps,
        "session_seconds": _pcts([sum(s.steps.values()) for s in sessions if s.ok], 1, 3),
        "queued_seconds": _pcts([s.waited for s in sessions], 1, 3),
        "sessions_ok": done,
        "sessions_failed": len(sessions) - done,
        "failed_by_step": dict(failures),
        "errors": [f"{n}x {text}" for text, n in errors.most_common(10)],
        "load_wall_seconds": round(wall, 2),
        "sessions_per_second": round(done / wall, 2) if wall else None,
        "peak_concurrency": load["peak_concurrency"],
        "sessions": [s.as_dict() for s in sessions],
        "probe_samples": [list(s) for s in probe["samples"]],
        "probe_unsent": probe.get("unsent", {}),
    }


def _alike(text: str) -> str:
    text = re.sub(r"load-\d{4}", "USER", text)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)[:300]


def log_problems(log: Path) -> list[str]:
    """Distinct warnings and errors in a tornado-format log, counted."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = Counter(
        _alike(re.sub(r"\d+(\.\d+)?ms", "Nms", line.split(" ", 3)[-1]))
        for line in lines
        if line.startswith(("[W ", "[E ", "[C "))
    )
    return [f"{n}x {text}" for text, n in found.most_common(20)]


def turn_line(t: dict[str, Any]) -> str:
    p = t["probe"]["load"]
    return (
        f"API p50/p95/p99 {p.get('p50')}/{p.get('p95')}/{p.get('p99')} ms under load "
        f"(idle p50 {t['probe']['idle'].get('p50')} ms); sessions ok {t['sessions_ok']}, "
        f"failed {t['sessions_failed']} {t['failed_by_step'] or ''}; "
        f"load {t['load_wall_seconds']:.0f}s, hub CPU {t['hub_cpu_seconds']}s"
    )


# --- over runs -----------------------------------------------------------------------

# (key, label, unit, how to read it from a turn)
ROWS: list[tuple[str, str, str, Any]] = [
    ("api_p50", "GET /hub/api/users/{name} under load, p50", "ms", ("probe", "load", "p50")),
    ("api_p95", "... p95", "ms", ("probe", "load", "p95")),
    ("api_p99", "... p99", "ms", ("probe", "load", "p99")),
    ("api_failed", "... failed requests", "", ("probe", "load", "failed")),
    ("api_unsent", "... due but not sent (8 connections busy)", "", ("probe", "load", "unsent")),
    ("idle_p50", "the same, hub idle (before the load), p50", "ms", ("probe", "idle", "p50")),
    ("idle_p99", "... p99", "ms", ("probe", "idle", "p99")),
    *[(f"{step}_p50", f"{step}, p50 / p95", "s", ("steps", step, "p50")) for step in STEPS],
    ("session_p50", "whole session, p50", "s", ("session_seconds", "p50")),
    ("sessions_ok", "sessions ok", "", ("sessions_ok",)),
    ("sessions_failed", "sessions failed", "", ("sessions_failed",)),
    ("load_wall", "load wall time", "s", ("load_wall_seconds",)),
    ("hub_cpu", "hub process CPU during the load", "s", ("hub_cpu_seconds",)),
    ("proxy_cpu", "proxy CPU during the load", "s", ("proxy_cpu_seconds",)),
]


def _get(d: Any, path: Sequence[str]) -> Any:
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _median(values: Sequence[Any]) -> float | None:
    nums = [float(v) for v in values if isinstance(v, int | float) and not math.isnan(v)]
    return round(median(nums), 4) if nums else None


def summarize(turns: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per hub: the median over runs of every row's figure, the per-run values, and the
    JupyterHub / Atrium ratio of the medians."""
    out: dict[str, Any] = {}
    for key, _label, _unit, path in ROWS:
        row: dict[str, Any] = {}
        for hub in HUBS:
            values = [_get(t, path) for t in turns if t["hub"] == hub]
            if key.endswith("_p50") and path[0] == "steps":
                p95s = [_get(t, (*path[:2], "p95")) for t in turns if t["hub"] == hub]
                row[f"{hub}_p95"] = _median(p95s)
            row[hub] = _median(values)
            row[f"{hub}_runs"] = values
        a, j = row.get("atrium"), row.get("jupyterhub")
        row["ratio"] = round(j / a, 2) if a and j is not None else None
        out[key] = row
    return out


def table(results: dict[str, Any]) -> str:
    env, summary = results["environment"], results["summary"]
    m = env["machine"]
    runs = results["config"]["runs"]
    lines = [
        f"{results['config']['users']} users, concurrency {results['config']['concurrency']}, "
        f"ramp {results['config']['ramp']:g}s; medians of {runs} runs; {m['cpu_count']} CPUs "
        f"({m['cpu_model']}), load {env['loadavg_start'][0]:.1f} -> {env['loadavg_end'][0]:.1f}",
        f"{'':52} {'Atrium':>14} {'JupyterHub 6':>14} {'JH / Atrium':>11}",
    ]
    for key, label, unit, _path in ROWS:
        row = summary[key]

        def cell(hub: str, row: dict[str, Any] = row, unit: str = unit) -> str:
            v = row.get(hub)
            if v is None:
                return "-"
            text = f"{v:g}"
            if f"{hub}_p95" in row and row[f"{hub}_p95"] is not None:
                text += f" / {row[f'{hub}_p95']:g}"
            return f"{text} {unit}".strip()

        ratio = f"{row['ratio']:.2f}" if row.get("ratio") is not None else ""
        lines.append(f"{label:52} {cell('atrium'):>14} {cell('jupyterhub'):>14} {ratio:>11}")
    for t in results["turns"]:
        if t["errors"] or t.get("left_after_stop"):
            lines.append(f"! run {t['run']} {LABELS[t['hub']]}: {t['errors'][:3]}")
            for line in t.get("left_after_stop", []):
                lines.append(f"  left after stop (killed): {line}")
    return "\n".join(lines)
