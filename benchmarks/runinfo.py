"""What every benchmark records about its run: the machine, the time, the commit
measured, and how its results file is written (whole or not at all)."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from hubs import REPO, tool_version


def machine() -> dict[str, Any]:
    model, mem_kib = "unknown", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "mem_total_gib": round(mem_kib / 1024**2, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def git_state() -> dict[str, Any]:
    """The commit measured, and a fingerprint of uncommitted changes to the hub's code."""
    repo = str(REPO)
    paths = ["--", "hub", "spawners", "migrations"]
    commit = tool_version(["git", "-C", repo, "rev-parse", "HEAD"])
    diff = tool_version(["git", "-C", repo, "diff", "HEAD", *paths])
    untracked = tool_version(
        ["git", "-C", repo, "ls-files", "--others", "--exclude-standard", *paths]
    )
    return {
        "commit": commit,
        "uncommitted_changes_in_hub": bool(diff or untracked),
        "uncommitted_diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None,
        "untracked_files": untracked.split(),
    }


def write_results(results: dict[str, Any], output: Path) -> None:
    """Write `results` as JSON to `output` through a temporary file, so a run that is
    stopped halfway leaves the previous results in place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(output)
