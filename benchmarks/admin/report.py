"""The admin page benchmark's summary: the figures of every run, their medians per
hub, the JupyterHub / Atrium ratio, the printed table, the machine's description,
and the medians over several result files (`bench.py --combine`).
Neighbours: `bench.py` (writes the results), `scenarios.py` (the steps).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

HUBS = ("atrium", "jupyterhub")

# key, label, unit, step, field in that step's figures ("a.b": field b of field a;
# bytes are shown in KB)
ROWS: list[tuple[str, str, str, str, str]] = [
    ("cold_ms", "page load, cold cache: usable", "ms", "cold", "ms"),
    ("cold_criterion_ms", "  of which: criterion first held", "ms", "cold", "criterion_ms"),
    ("cold_fcp", "  first contentful paint", "ms", "cold", "document.first_contentful_paint"),
    ("cold_load_event", "  load event done", "ms", "cold", "document.load_event"),
    ("cold_requests", "  requests until usable", "count", "cold", "requests"),
    ("cold_kb", "  received until usable", "KB", "cold", "bytes"),
    ("idle_requests", "then 10 s idle: requests", "count", "idle", "requests"),
    ("idle_kb", "then 10 s idle: received", "KB", "idle", "bytes"),
    ("view_requests", "requests per view (load + 10 s)", "count", "view", "requests"),
    ("view_kb", "received per view (load + 10 s)", "KB", "view", "bytes"),
    ("warm_ms", "page load, warm cache: usable", "ms", "warm", "ms"),
    ("warm_network", "  requests over the network", "count", "warm", "network_requests"),
    ("warm_kb", "  received", "KB", "warm", "bytes"),
    ("search_ms", "search (10 matches) -> rows", "ms", "search", "ms"),
    ("search_requests", "  requests", "count", "search", "requests"),
    ("search_kb", "  received", "KB", "search", "bytes"),
    ("next_ms", "next page -> its rows", "ms", "next_page", "ms"),
    ("next_requests", "  requests", "count", "next_page", "requests"),
    ("sort_ms", "sort by name, descending", "ms", "sort", "ms"),
    ("sort_requests", "  requests", "count", "sort", "requests"),
    ("rows", "rows per page (default)", "rows", "cold", "rows"),
]


def _value(run: dict[str, Any], step: str, key: str) -> float | None:
    if step == "view":
        parts = [run.get("cold", {}).get(key), run.get("idle", {}).get(key)]
        return None if None in parts else float(sum(p for p in parts if p is not None))
    value: Any = run.get(step, {})
    for part in key.split("."):  # "document.load_event": a field of a field
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else float(value)


def table_rows(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """For each figure: every run's value per hub, and the median."""
    out = []
    for key, label, unit, step, field in ROWS:
        row: dict[str, Any] = {"key": key, "label": label, "unit": unit}
        for hub in HUBS:
            values = [_value(r, step, field) for r in runs.get(hub, [])]
            if unit == "KB":
                values = [None if v is None else v / 1000 for v in values]
            row[f"runs_{hub}"] = values
            found = [v for v in values if v is not None]
            row[hub] = statistics.median(found) if found else None
        out.append(row)
    return out


def _cell(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit in ("count", "rows"):
        return f"{v:g}"
    return f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def _ratio(r: dict[str, Any]) -> str:
    a, j = r["atrium"], r["jupyterhub"]
    if r["unit"] == "rows" or a is None or j is None:
        return ""
    if a == 0:
        return "" if j == 0 else "inf"
    return f"{j / a:.1f}x"


def _range(values: Sequence[float | None], unit: str) -> str:
    found = [v for v in values if v is not None]
    if len(found) < 2:
        return ""
    return f"{_cell(min(found), unit)}-{_cell(max(found), unit)}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        f"{'':<36}{'unit':<7}{'Atrium':>9}{'JupyterHub 6':>14}{'JH/Atrium':>11}"
        f"  {'range Atrium':>14}{'range JH':>16}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        u = r["unit"]
        lines.append(
            f"{r['label']:<36}{u:<7}{_cell(r['atrium'], u):>9}{_cell(r['jupyterhub'], u):>14}"
            f"{_ratio(r):>11}  {_range(r['runs_atrium'], u):>14}"
            f"{_range(r['runs_jupyterhub'], u):>16}"
        )
    return "\n".join(lines)


def combine(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians over every run of several result files."""
    runs: dict[str, list[dict[str, Any]]] = {h: [] for h in HUBS}
    for res in results:
        for hub in HUBS:
            runs[hub].extend(res["runs"].get(hub, []))
    return table_rows(runs)
