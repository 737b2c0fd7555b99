"""Request paths made safe to route: percent-decoded where harmless, dot segments resolved.

Routing and the upstream server must agree on which server a path names, so
the proxy routes *and forwards* the normalised path: `/user/a/../b/` goes to b's
route as `/user/b/`, never to a's server with a path that escapes its prefix.
Encoded slashes (`%2F`) stay encoded and so stay inside one segment.
"""

from __future__ import annotations

import re

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def normalize_path(path: str) -> str | None:
    """The normalised path, or None if it is not an absolute path."""
    if not path.startswith("/"):
        return None
    if "%" in path:
        path = _PCT.sub(_decode_unreserved, path)
    if "/." not in path:
        return path  # no dot segments (a dot inside a name, like x.js, is not one)
    out: list[str] = []
    segments = path.split("/")
    for segment in segments[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    trailing = segments[-1] in (".", "..")
    result = "/" + "/".join(out)
    if trailing and not result.endswith("/"):
        result += "/"
    return result
