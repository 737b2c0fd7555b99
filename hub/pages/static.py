"""`/hub/static/...`: the pages' own scripts and images, shipped inside the package.

No script comes from a CDN: everything a page runs is in `hub/static`, served
here with `nosniff` and a content type from the file name. Pages name each file
with `static_url(name)`, which adds a hash of its content (`?v=...`): such a
request is cached for a year (a new release has new hashes, so nothing runs
stale); a bare one is revalidated each time. Paths outside the directory are 404.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from tornado import web

STATIC = Path(__file__).resolve().parent.parent / "static"


@cache
def _version(name: str) -> str:
    try:
        data = (STATIC / name).read_bytes()
    except OSError:
        return ""
    return hashlib.sha256(data).hexdigest()[:16]


def static_url(name: str) -> str:
    """`hub/static/<name>?v=<content hash>`, relative to the base URL."""
    version = _version(name)
    return f"hub/static/{name}?v={version}" if version else f"hub/static/{name}"


class StaticHandler(web.StaticFileHandler):
    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'")

    def get_cache_time(self, path: str, modified: object, mime_type: str) -> int:
        # the versioned URL of this very content: keep it (immutable below)
        return 365 * 24 * 3600 if self.get_query_argument("v", "") == _version(path) else 0

    def set_extra_headers(self, path: str) -> None:
        if self.get_query_argument("v", "") == _version(path):
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            # revalidated on each use (cheap: 304 by ETag)
            self.set_header("Cache-Control", "no-cache")

    def check_xsrf_cookie(self) -> None:
        return


routes = [(r"/static/(.*)", StaticHandler, {"path": str(STATIC)})]
