"""Counting the fake API server's requests by verb and resource, and the summary of
several runs (medians, Atrium / KubeSpawner ratios) that `bench.py` prints and
writes."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from typing import Any

SPAWNERS = ("atrium", "kubespawner")
_PATH = re.compile(
    r"^/api/v1/(?:watch/)?(?:namespaces/(?P<ns>[^/]+)/)?(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?$"
)
VERBS = {"POST": "create", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}
# what the informers / reflectors ask: not part of one spawn, counted apart
INFORMER_KEYS = tuple(
    f"{verb} {plural}"
    for plural in ("pods", "events", "persistentvolumeclaims")
    for verb in ("list", "watch")
)


def call_key(method: str, path: str, watch: bool) -> str:
    """'create pods', 'watch events', 'get persistentvolumeclaims', ..."""
    match = _PATH.match(path)
    if match is None:
        return f"{method} {path}"
    plural, name, sub = match["plural"], match["name"], match["sub"]
    if match["ns"] is None and plural == "namespaces" and name:
        plural, name = "namespaces", name
    if method == "GET":
        verb = "watch" if watch else ("get" if name else "list")
    else:
        verb = VERBS.get(method, method.lower())
    return f"{verb} {plural}{'/' + sub if sub else ''}"


def count(calls: list[list[Any]]) -> dict[str, int]:
    """Requests by key, from the fake server's records [method, path, query, watch]."""
    return dict(Counter(call_key(c[0], c[1], bool(c[3])) for c in calls))


def split_informer(counts: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(the spawn's own requests, the informers' lists and watches)."""
    own = {k: v for k, v in counts.items() if k not in INFORMER_KEYS}
    informer = {k: v for k, v in counts.items() if k in INFORMER_KEYS}
    return own, informer


def add(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        into[key] = into.get(key, 0) + value


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# --- summary over runs ----------------------------------------------------------------


def _spawn_metrics(phase: dict[str, Any]) -> dict[str, float]:
    n = phase["spawns"]
    metrics: dict[str, float] = {}
    for what in ("spawn", "stop"):
        own, _ = split_informer(phase[what])
        metrics[f"{what}: all own requests"] = sum(own.values()) / n
        for key, value in own.items():
            metrics[f"{what}: {key}"] = value / n
    informer = phase["informer_during_phase"]
    initial = phase["initial"]
    metrics["one-time: informer lists"] = sum(v for k, v in initial.items() if k.startswith("list"))
    metrics["one-time: informer watches"] = sum(
        v for k, v in initial.items() if k.startswith("watch")
    )
    minutes = phase["phase_seconds"] / 60
    metrics["during spawns+stops: informer lists"] = sum(
        v for k, v in informer.items() if k.startswith("list")
    )
    metrics["during spawns+stops: informer (re)watches"] = sum(
        v for k, v in informer.items() if k.startswith("watch")
    )
    metrics["during spawns+stops: informer requests per minute"] = (
        sum(informer.values()) / minutes if minutes else 0.0
    )
    metrics["spawn seconds (median)"] = statistics.median(phase["spawn_seconds"])
    metrics["stop seconds (median)"] = statistics.median(phase["stop_seconds"])
    return metrics


def _informer_metrics(phase: dict[str, Any]) -> dict[str, float]:
    return {
        "initial list: CPU s": phase["initial"]["cpu"],
        "initial list: wall s": phase["initial"]["wall"],
        "initial list: RSS growth MiB": phase["initial"]["rss_mib"] - phase["baseline_rss_mib"],
        "watch events: CPU s": phase["events"]["cpu"],
        "watch events: CPU us per event": phase["events"]["cpu"] / phase["events"]["count"] * 1e6,
        "watch events: lists during": phase["events"]["lists"],
        "idle: CPU ms per s": phase["idle"]["cpu"] / phase["idle"]["wall"] * 1000,
        "idle: lists per minute": phase["idle"]["lists"] / phase["idle"]["wall"] * 60,
        "RSS after all MiB": phase["idle"]["rss_mib"],
        "peak RSS MiB": phase["idle"]["max_rss_mib"],
        "baseline RSS MiB": phase["baseline_rss_mib"],
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over the runs, per spawner, and Atrium / KubeSpawner."""
    table: dict[str, dict[str, Any]] = {}
    for section, metric_of in (("spawn", _spawn_metrics), ("informer", _informer_metrics)):
        values: dict[str, dict[str, list[float]]] = {}
        for run in runs:
            for spawner in SPAWNERS:
                phase = run.get(section, {}).get(spawner)
                if not phase or "error" in phase:
                    continue
                for key, value in metric_of(phase).items():
                    values.setdefault(key, {}).setdefault(spawner, []).append(value)
        for key, per in values.items():
            row: dict[str, Any] = {s: median(per.get(s, [])) for s in SPAWNERS}
            row["ratio"] = ratio(row["atrium"], row["kubespawner"])
            row["runs"] = {s: len(per.get(s, [])) for s in SPAWNERS}
            table[f"{section}: {key}"] = row
    return table


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def render(table: dict[str, Any]) -> str:
    width = max((len(k) for k in table), default=10)
    lines = [f"{'metric (median of runs)':<{width}}  {'atrium':>9}  {'kubespawner':>11}  ratio"]
    for key, row in table.items():
        lines.append(
            f"{key:<{width}}  {_fmt(row['atrium']):>9}  {_fmt(row['kubespawner']):>11}  "
            f"{_fmt(row['ratio'])}"
        )
    return "\n".join(lines)
