"""The tornado application: routes under `<base_url>hub/`, plus the base URL and users'
server addresses (`hub.pages.fallback`); anything else is a 404 page, or JSON for API paths."""

from __future__ import annotations

import re
from typing import Any

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from hub import api
from hub.auth import login as auth_login
from hub.metrics import observe_request
from hub.oauth import handlers as oauth_handlers
from hub.pages import (
    admin_audit,
    admin_groups,
    admin_import,
    admin_users,
    error,
    fallback,
    home,
    login,
    logo,
    spawn,
    static,
    token,
)
from hub.state import HubState


class Compression(web.GZipContentEncoding):
    """gzip for pages and JSON, never for event streams: each event must reach the
    browser as it is written, not wait in a compressor or a buffering proxy."""

    def _compressible_type(self, ctype: str) -> bool:
        return not ctype.startswith("text/event-stream") and super()._compressible_type(ctype)


def make_app(state: HubState, base_url: str, cookie_secret: bytes) -> web.Application:
    prefix = re.escape(base_url + "hub")
    pages = [*error.routes, *auth_login.routes, *login.routes, *spawn.routes, *static.routes]
    pages += state.auth.routes()  # the authenticators' own: OAuth callbacks, sign-up
    pages += [*admin_groups.routes, *admin_import.routes, *admin_audit.routes]  # admin panel
    pages += admin_users.routes  # the admin panel's users page and its forms
    pages += [*home.routes, *token.routes, *logo.routes]  # a person's pages, the logo
    # the OAuth endpoints live under /api but before the API's catch-all 404
    routes: list[tuple[Any, ...]] = [*oauth_handlers.routes, *api.all_routes(), *pages]
    handlers: list[Any] = [(prefix + route[0], *route[1:]) for route in routes]
    handlers += fallback.routes(base_url)
    return web.Application(
        handlers,
        default_handler_class=fallback.PageNotFound,
        atrium=state,
        cookie_secret=cookie_secret,
        # pages' forms carry the token; the API checks it for cookie-authenticated writes
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"path": base_url + "hub/", "httponly": True, "samesite": "Lax"},
        # handlers log their own request line; every request is timed for the metrics
        log_function=observe_request,
        # pages are mostly markup (a 50-row admin page: 170 KB, 11 KB gzipped); XSRF tokens
        # in them are masked anew for each response, so compression reveals nothing
        transforms=[Compression],
        serve_traceback=False,
    )


def listen(
    app: web.Application,
    ip: str,
    port: int,
    max_body_size: int,
    *,
    behind_proxy: bool = True,
    trusted_downstream: list[str] | None = None,
) -> tuple[HTTPServer, int]:
    """Start serving `app`; returns the server and the port (useful when `port` is 0).

    Behind a proxy, the client's address is the last one the proxy added to
    X-Forwarded-For (skipping `trusted_downstream` addresses: a load balancer or an
    ingress in front of the proxy). Serving the public directly, the header is ignored:
    a client could otherwise claim any address and dodge per-address login throttling.
    """
    server = HTTPServer(
        app,
        xheaders=behind_proxy,
        trusted_downstream=trusted_downstream or None,
        max_body_size=max_body_size + 1024,
    )
    sockets = bind_sockets(port, ip)
    server.add_sockets(sockets)
    return server, int(sockets[0].getsockname()[1])
