"""The spawn benchmark's summary: table rows from a run's results, the printed
table, the machine description, and the medians over several runs' JSON files
(`bench.py --combine`). Neighbours: `bench.py` (writes the results), `scenarios.py`.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HUBS = ("atrium", "jupyterhub")
# Atrium's goals from the issue: (row key, the largest value that meets it)
GOALS = {"spawn_median": 0.5, "exec_median": 1.2, "rtt_pass_ratio": 1.5, "rtt_print_ratio": 1.5}


_VARYING = [
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"\b(?:lat|exec|mem|burst\d+x)\d+\b"), "USER"),
    (re.compile(r"\b\d+(?:\.\d+)?s\b"), "Ns"),
]


def normalize(text: str) -> str:
    """A message with its ports, user names and durations made alike, for counting."""
    for pattern, placeholder in _VARYING:
        text = pattern.sub(placeholder, text)
    return text


def count_alike(messages: Sequence[str], limit: int = 40) -> list[str]:
    """'Nx message' for each distinct (normalized) message, most frequent first."""
    seen: dict[str, int] = {}
    for m in messages:
        key = normalize(m)[:400]
        seen[key] = seen.get(key, 0) + 1
    ranked = sorted(seen.items(), key=lambda kv: -kv[1])
    return [f"{count}x {text}" for text, count in ranked[:limit]]


def log_problems(logs: Sequence[Path]) -> list[str]:
    """Distinct warnings and errors in tornado-format logs ('[W date time name] ...'),
    the time left out."""
    found = []
    for log in logs:
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith(("[W ", "[E ", "[C ")):
                level, _date, _time, rest = [*line.split(" ", 3), "", "", ""][:4]
                found.append(f"{level} {rest}")
    return count_alike(found)


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


HUB = object()  # where a row's path names the hub
Spec = tuple[str, str, str, tuple[Any, ...]]  # key, label, unit, path into the measurements


def row_specs(bursts: Sequence[int]) -> list[Spec]:
    specs: list[Spec] = []
    for stat in ("median", "p95", "min", "max"):
        path = ("spawn_latency", HUB, "seconds", stat)
        specs.append((f"spawn_{stat}", f"spawn -> 200 via proxy, {stat}", "s", path))
    specs.append(
        ("spawn_failed", "spawn: failed starts", "count", ("spawn_latency", HUB, "failed"))
    )
    path = ("first_execution", HUB, "seconds", "median")
    specs.append(("exec_median", "first execution (print(1)), median", "s", path))
    for part in ("spawn", "kernel_post", "ws_open", "execute"):
        path = ("first_execution", HUB, part, "median")
        specs.append((f"exec_{part}", f"  of which {part}, median", "s", path))
    for size in bursts:
        b = str(size)
        specs.append(
            (f"burst{b}_ok", f"burst of {b}: ready", f"of {b}", ("bursts", b, HUB, "succeeded"))
        )
        for stat, name in (("median", "p50"), ("p95", "p95")):
            path = ("bursts", b, HUB, "ready_seconds", stat)
            specs.append((f"burst{b}_{name}", f"burst of {b}: {name} to ready", "s", path))
        path = ("bursts", b, HUB, "leftover_count")
        specs.append((f"burst{b}_leftovers", f"burst of {b}: processes left", "count", path))
    for case, key, code in (("pass", "pass", "pass"), ("print", "print_100", "print('x'*100)")):
        for side in ("ws", "zmq"):
            path = ("memory_rtt", HUB, "kernel_rtt", key, f"{side}_ms", "median")
            specs.append((f"rtt_{case}_{side}", f"kernel RTT {code}, {side}, median", "ms", path))
        path = ("memory_rtt", HUB, "kernel_rtt", key, "ratio_ws_over_zmq")
        specs.append((f"rtt_{case}_ratio", f"kernel RTT {code}, ws / zmq", "x", path))
    for kind in ("pss", "rss", "uss"):
        path = ("memory_rtt", HUB, "memory", f"{kind}_mib", "median")
        specs.append((f"mem_{kind}", f"idle server {kind.upper()}, median", "MiB", path))
    path = ("memory_rtt", HUB, "memory", "template_pss_mib")
    specs.append(("mem_template_pss", "Atrium's template PSS (shared, once)", "MiB", path))
    return specs


def table_rows(m: dict[str, Any], bursts: Sequence[int]) -> list[dict[str, Any]]:
    """One row per figure: key, label, unit and the value for each hub (None: not measured)."""
    rows = []
    for key, label, unit, path in row_specs(bursts):
        values = {h: _get(m, *(h if p is HUB else p for p in path)) for h in HUBS}
        if any(v is not None for v in values.values()):
            rows.append({"key": key, "label": label, "unit": unit, **values})
    return rows


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _ratio(r: dict[str, Any]) -> str:
    a, j = r["atrium"], r["jupyterhub"]
    if r["unit"] in ("count", "x") or r["unit"].startswith("of "):
        return ""
    if any(_partial(r, h) for h in HUBS):
        return ""
    if isinstance(a, int | float) and isinstance(j, int | float) and a > 0:
        return f"{j / a:.1f}x"
    return ""


def _goal(r: dict[str, Any]) -> str:
    limit = GOALS.get(r["key"])
    if limit is None or r["atrium"] is None:
        return ""
    return f"<= {limit:g} " + ("met" if r["atrium"] <= limit else "MISSED")


def _partial(r: dict[str, Any], hub: str) -> bool:
    """A combined row's value that some runs did not have (e.g. no start succeeded)."""
    runs = r.get(f"runs_{hub}")
    return bool(runs) and None in runs and r[hub] is not None


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = f"{'':<40}{'unit':<7}{'Atrium':>10}{'JupyterHub 6':>14}{'JH/Atrium':>11}  Atrium goal"
    lines = [head, "-" * len(head)]
    for r in rows:
        a, j = (_cell(r[h]) + ("*" if _partial(r, h) else "") for h in HUBS)
        lines.append(f"{r['label']:<40}{r['unit']:<7}{a:>10}{j:>14}{_ratio(r):>11}  {_goal(r)}")
    if any(_partial(r, h) for r in rows for h in HUBS):
        lines.append("* from only the runs that had it (the others had no successful start)")
    return "\n".join(lines)


def combine(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The median over runs of every row (rows missing from a run are left out of it),
    with each run's value kept in `runs_atrium` / `runs_jupyterhub`."""
    order: list[str] = []
    by_key: dict[str, dict[str, Any]] = {}
    for run in runs:
        for r in run["table"]:
            if r["key"] not in by_key:
                order.append(r["key"])
                by_key[r["key"]] = {**r, **{f"runs_{h}": [] for h in HUBS}}
            for h in HUBS:
                by_key[r["key"]][f"runs_{h}"].append(r[h])
    out = []
    for key in order:
        r = by_key[key]
        for h in HUBS:
            values = [v for v in r[f"runs_{h}"] if v is not None]
            r[h] = statistics.median(values) if values else None
        out.append(r)
    return out


def runs_table(rows: Sequence[dict[str, Any]]) -> str:
    """The combined table, and each run's values beside the medians."""
    lines = [table(rows), "", "per run (Atrium | JupyterHub):"]
    for r in rows:
        a = " ".join(_cell(v) for v in r["runs_atrium"])
        j = " ".join(_cell(v) for v in r["runs_jupyterhub"])
        lines.append(f"  {r['label']:<40}{a:>24} | {j}")
    return "\n".join(lines)
