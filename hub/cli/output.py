"""What `hub-admin` prints: aligned tables and fields for people, JSON for scripts.

Results go to stdout; notes and errors go to stderr, so `--json` output and
`TOKEN=$(hub-admin token create NAME)` stay clean. Every string that came from
the hub or the database is made printable first (a note or a name must not be
able to send control sequences to the terminal).
"""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any, TextIO

PROG = "hub-admin"
MAX_CELL_WIDTH = 48


def printable(value: object) -> str:
    """`value` as text with control and format characters escaped."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def width(text: str) -> int:
    """Columns `text` takes in a terminal (wide East Asian characters take two)."""
    total = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        total += 2 if unicodedata.east_asian_width(ch) in {"W", "F"} else 1
    return total


def clip(text: str, limit: int = MAX_CELL_WIDTH) -> str:
    if width(text) <= limit:
        return text
    out, used = [], 0
    for ch in text:
        w = width(ch)
        if used + w > limit - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def when(stamp: object, missing: str = "-") -> str:
    """An API timestamp (`2024-01-31T12:00:00.000000Z`) shown to the second, in UTC."""
    if not isinstance(stamp, str) or not stamp:
        return missing
    if len(stamp) >= 19 and stamp[10] == "T":
        return stamp[:19] + "Z"
    return printable(stamp)


def yes_no(value: object) -> str:
    return "yes" if value else "no"


def listed(values: object) -> str:
    if isinstance(values, list | tuple) and values:
        return ", ".join(printable(v) for v in values)
    return "-"


class Output:
    def __init__(
        self, json_mode: bool = False, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.json_mode = json_mode
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def json(self, data: Any) -> None:
        # ASCII-only JSON cannot carry raw control characters to a terminal
        self.out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def line(self, text: str) -> None:
        self.out.write(printable(text) + "\n")

    def note(self, text: str) -> None:
        """Information for the person at the terminal, kept out of stdout."""
        self.err.write(printable(text) + "\n")

    def error(self, message: str) -> None:
        text = " ".join(printable(message).split()) or "failed"
        self.err.write(f"{PROG}: error: {text}\n")

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[object]],
        *,
        clip_last: bool = True,
    ) -> None:
        """Aligned columns; cells are clipped to MAX_CELL_WIDTH, except the last
        column's when `clip_last` is false (a free-text column such as details)."""
        last = len(headers) - 1
        cells = [
            [
                printable(c) if i == last and not clip_last else clip(printable(c))
                for i, c in enumerate(row)
            ]
            for row in rows
        ]
        widths = [width(h) for h in headers]
        for row in cells:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], width(cell))
        for row in [list(headers), *cells]:
            padded = [c + " " * (widths[i] - width(c)) for i, c in enumerate(row)]
            self.out.write("  ".join(padded).rstrip() + "\n")

    def fields(self, pairs: Sequence[tuple[str, object]]) -> None:
        """`label: value` lines, values aligned."""
        pad = max((width(label) for label, _ in pairs), default=0) + 1
        for label, value in pairs:
            self.out.write(f"{label + ':':<{pad}} {printable(value)}\n")
