"""`/hub/logo`: the class's or lab's logo (`c.Hub.logo_file`), from memory.

The file was checked and read at start-up (`hub.branding.read_logo`); its type
comes from its content, never from the request. An SVG opened on its own
cannot run script here: the response's CSP allows none and sandboxes it.
Without a logo the route is a 404.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from hub.state import HubState


class LogoHandler(web.RequestHandler):
    @property
    def hub(self) -> HubState:
        return self.settings["atrium"]  # type: ignore[no-any-return]

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header(
            "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox"
        )

    def check_xsrf_cookie(self) -> None:
        return  # read only

    def _logo(self) -> None:
        logo = self.hub.branding.logo
        if logo is None:
            raise web.HTTPError(404)
        self.set_header("Content-Type", logo.content_type)
        self.set_header("ETag", logo.etag)
        # revalidated on each use (304 by ETag): a new logo shows after a restart
        self.set_header("Cache-Control", "no-cache")

    def get(self) -> None:
        self._logo()
        if self.check_etag_header():
            self.set_status(304)
            self.finish()
            return
        logo = self.hub.branding.logo
        assert logo is not None
        self.finish(logo.data)

    def head(self) -> None:
        self._logo()
        self.finish()

    def write_error(self, status_code: int, **kwargs: object) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(f"{status_code} {self._reason}\n")


routes: list[tuple[Any, ...]] = [(r"/logo", LogoHandler)]
