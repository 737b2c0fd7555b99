"""`/hub/static/...`: the pages' own scripts and images, shipped inside the package.

No script comes from a CDN: everything a page runs is in `hub/static`, served
here with `nosniff`, a content type from the file name, and a validator so that
browsers revalidate instead of refetching. Paths outside the directory are 404.
"""

from __future__ import annotations

from pathlib import Path

from tornado import web

STATIC = Path(__file__).resolve().parent.parent / "static"


class StaticHandler(web.StaticFileHandler):
    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'")

    def set_extra_headers(self, path: str) -> None:
        # revalidated on each use (cheap: 304 by ETag); a new release never runs stale code
        self.set_header("Cache-Control", "no-cache")

    def check_xsrf_cookie(self) -> None:
        return


routes = [(r"/static/(.*)", StaticHandler, {"path": str(STATIC)})]
