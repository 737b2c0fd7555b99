"""What every page has: templates, the login cookie, safe redirects, security headers.

Pages are rendered on the server from `hub/templates` (Jinja2, autoescaped).
A person is identified by the signed login cookie (`LOGIN_COOKIE`, holding the
user's `cookie_id`; rotating that id logs them out everywhere), scoped to the
hub's path, httponly, SameSite=Lax, and secure over https. Every form that
changes something carries tornado's XSRF token. Pages run no script, except
one that asks for `script_nonce()`: its CSP then allows that page's own inline
script and connections back to this site (EventSource), nothing else.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from tornado import web

from hub.db.engine import Database
from hub.errors import AtriumError
from hub.log import bounded
from hub.ops.context import HubContext
from hub.ops.identity import resolve_cookie
from hub.pages.static import static_url
from hub.rbac.access import Requester
from hub.state import HubState

log = logging.getLogger("hub.pages")

LOGIN_COOKIE = "atrium-hub-login"
GENERIC = "The hub could not do that just now. Please try again in a moment."
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
)
_env.globals["static_url"] = static_url
# control characters, backslashes and whitespace have no place in a redirect target
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def safe_next(target: str | None, base_url: str, default: str) -> str:
    """`target` if it is a path on this site under `base_url`, else `default`.

    Refuses what browsers would take off-site: `//evil`, `///evil`, `/\\evil`,
    `https:///evil`, `javascript:...`, and anything with control characters.
    """
    if not target or _UNSAFE.search(target):
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    if not target.startswith(base_url):
        return default
    return target


def login_cookie(handler: web.RequestHandler, max_age_days: float) -> tuple[str, str] | None:
    """(the user's cookie_id, this login session's id) from the signed login cookie."""
    value = handler.get_signed_cookie(LOGIN_COOKIE, max_age_days=max_age_days)
    if not value:
        return None
    cookie_id, _, session_id = value.decode().partition(" ")
    return (cookie_id, session_id) if cookie_id and session_id else None


class _LazyXsrf:
    """The XSRF token, made (and its cookie set) only when a template prints it.

    A page without a form, such as the 404 a browser gets for /favicon.ico while the
    login page loads, must not set a fresh XSRF cookie: it would replace the one the
    login form was made with, and that first login would fail."""

    def __init__(self, handler: web.RequestHandler) -> None:
        self._handler = handler

    def __str__(self) -> str:
        return self._handler.xsrf_token.decode()


class PageHandler(web.RequestHandler):
    requester: Requester | None = None
    _script_nonce: str | None = None

    @property
    def hub(self) -> HubState:
        return self.settings["atrium"]  # type: ignore[no-any-return]

    @property
    def ctx(self) -> HubContext:
        return self.hub.ctx

    @property
    def db(self) -> Database:
        return self.hub.db

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "same-origin")
        self._script_nonce = None
        self.set_header("Content-Security-Policy", self._csp())

    def _csp(self, scripts: str = "") -> str:
        return (
            f"default-src 'none'; {scripts}style-src 'unsafe-inline'; img-src 'self' data:; "
            f"form-action 'self'; frame-ancestors {self.hub.frame_ancestors}"
        )

    def script_nonce(self) -> str:
        """The nonce of this page's inline script (`<script nonce="...">`), new for each
        response; the page may then also connect back to this site."""
        if self._script_nonce is None:
            self._script_nonce = secrets.token_urlsafe(18)
            scripts = f"script-src 'nonce-{self._script_nonce}'; connect-src 'self'; "
            self.set_header("Content-Security-Policy", self._csp(scripts))
        return self._script_nonce

    async def prepare(self) -> None:
        login = login_cookie(self, self.hub.cookie_max_age_days)
        if login is not None:
            self.requester = await self.db.run(resolve_cookie, self.ctx.roles, *login)
        if self.requester is not None and self.hub.auth.refreshes:
            from hub.auth.refresh import refresh_user

            if not await refresh_user(self.hub, self.requester.name):
                # the identity provider no longer vouches for them
                self.requester = None
                self.clear_login_cookie()

    # --- helpers -------------------------------------------------------------------

    def login_url(self, next_url: str) -> str:
        return f"{self.ctx.base_url}hub/login?next={quote(next_url, safe='/')}"

    def require_login(self) -> Requester:
        if self.requester is None:
            self.redirect(self.login_url(self.request.uri or f"{self.ctx.base_url}hub/"))
            raise web.Finish()
        return self.requester

    def set_login_cookie(self, cookie_id: str) -> None:
        """Log in: the user's cookie_id and a new session id (tokens issued through this
        login carry it, and logging out revokes them)."""
        self.set_signed_cookie(
            LOGIN_COOKIE,
            f"{cookie_id} {secrets.token_hex(16)}",
            expires_days=self.hub.cookie_max_age_days,
            path=f"{self.ctx.base_url}hub/",
            httponly=True,
            secure=self.request.protocol == "https",
            samesite="Lax",
        )

    def set_cookie(self, name: str, value: str | bytes, *args: Any, **kwargs: Any) -> None:
        # over https every cookie a page sets is secure: the login's and tornado's XSRF one
        if self.request.protocol == "https":
            kwargs["secure"] = True
        super().set_cookie(name, value, *args, **kwargs)

    def clear_login_cookie(self) -> None:
        self.clear_cookie(LOGIN_COOKIE, path=f"{self.ctx.base_url}hub/")

    def page(self, template: str, status: int = 200, **values: Any) -> None:
        self.set_status(status)
        req = self.requester
        values.setdefault("section", "")
        self.finish(
            _env.get_template(template).render(
                base_url=self.ctx.base_url,
                user=req.name if req is not None else None,
                can_admin=req is not None and req.has("admin-ui"),
                services=self._service_links(req),
                xsrf=_LazyXsrf(self),
                brand=self.hub.branding,
                **values,
            )
        )

    def _service_links(self, req: Requester | None) -> list[tuple[str, str]]:
        """(name, address) of the services this person may open (with a url, shown)."""
        if req is None:
            return []
        return [
            (name, spec.prefix(self.ctx.base_url))
            for name, spec in sorted(self.hub.services.items())
            if spec.url and spec.display and req.allows("access:services", service=name)
        ]

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, AtriumError):
            status_code = exc.status
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, AtriumError) and value.status < 500:
            log.info(
                "%s %s -> %s: %s",
                self.request.method,
                bounded(self.request.path, 200),
                value.status,
                value.log_message,
            )
        else:
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            self.set_header("Retry-After", str(retry_after))
        message = exc.message if isinstance(exc, AtriumError) else self._reason
        self.page(
            "error.html",
            status_code,
            title=self._reason,
            code=status_code,
            reason=self._reason,
            heading="Something went wrong",
            lead=message if isinstance(exc, AtriumError) or status_code < 500 else GENERIC,
            shown="",
            tail="",
            start_url=None,
            next="",
        )
