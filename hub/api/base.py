"""The base for every REST API handler: credentials, JSON in and out, errors.

Handlers stay thin: parse the request, declare the scope they need with
`needs_scope`, run a unit of work from `hub.ops` through `self.db.run`, and
write the result. This module is the one place that turns exceptions into the
`{"status": N, "message": "..."}` error shape.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.httputil import HTTPServerRequest

from hub.db.engine import Database
from hub.errors import (
    AtriumError,
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
)
from hub.log import bounded, redact
from hub.ops.context import HubContext
from hub.ops.identity import resolve_cookie, resolve_token
from hub.rbac import scopes
from hub.rbac.access import Requester
from hub.state import HubState

log = logging.getLogger("hub.api")
access_log = logging.getLogger("hub.access")

PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# offsets beyond this cannot name a row and would overflow the database's integers
MAX_OFFSET = 2**31 - 1
# an oversized body up to this many times max_body_size is read and discarded, so that
# the client reads the JSON 413 rather than a connection reset in mid-upload; beyond
# that the connection is cut once the answer is written
DRAIN_FACTOR = 16
LOG_URI_SCAN = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")

H = TypeVar("H", bound="APIHandler")
Method = Callable[..., Awaitable[None]]


def needs_scope(*required: str) -> Callable[[Method], Method]:
    """Declare the scopes a handler method needs (any one of them).

    Names are checked against the scope table when the module is imported, so a
    typo fails at start-up, not on the first request. Holding the scope for
    *some* resource passes this gate; the unit of work then checks the specific
    user, server or group (not visible -> 404).
    """
    for scope in required:
        if scope not in scopes.SCOPES:
            raise ValueError(f"needs_scope: unknown scope {scope!r}")

    def decorator(method: Method) -> Method:
        @functools.wraps(method)
        async def wrapper(self: APIHandler, *args: Any, **kwargs: Any) -> None:
            req = self.requester
            if req is None:
                raise Unauthorized()
            if not req.has_any(required):
                raise Forbidden(
                    f"Action is not authorized with current scopes; requires any of "
                    f"[{', '.join(required)}]"
                )
            await method(self, *args, **kwargs)

        wrapper.__scopes__ = required  # type: ignore[attr-defined]
        return wrapper

    return decorator


def keeps_permissions(method: Method) -> Method:
    """Mark a write that cannot change any existing token's permissions (creating a
    user, posting activity, starting a server), so it leaves the requester cache be."""
    method.__keeps_permissions__ = True  # type: ignore[attr-defined]
    return method


def limit_streamed_body(request: HTTPServerRequest, limit: int) -> int | None:
    """Prepare the connection for a streamed body of at most `limit` bytes.

    Returns the declared size when it is over `limit` (the caller answers 413); the
    connection then reads and drops the rest (up to DRAIN_FACTOR times the limit), so
    the client sees that answer instead of a reset. A chunked body is counted as it
    arrives, and the 413 comes when it is read."""
    declared = request.headers.get("Content-Length", "")
    size = int(declared) if declared.isascii() and declared.isdigit() else None
    connection = request.connection
    http1 = connection if isinstance(connection, HTTP1Connection) else None
    if size is not None and size > limit:
        if http1 is not None and size <= limit * DRAIN_FACTOR:
            http1.set_max_body_size(size)
        return size
    if size is None and http1 is not None:
        http1.set_max_body_size(limit * DRAIN_FACTOR)
    return None


@web.stream_request_body
class APIHandler(web.RequestHandler):
    """Authenticates the request and speaks JSON.

    The request body is streamed (read it with `body` or `json_body()`, not
    `self.request.body`), so that a body over `max_body_size` is answered with a
    JSON 413 instead of the connection being cut with a bare 400.
    """

    requester: Requester | None = None
    _body_chunks: list[bytes] | None = None
    _body_size = 0

    @property
    def req(self) -> Requester:
        """The authenticated requester (only inside a `needs_scope` method)."""
        if self.requester is None:
            raise Unauthorized()
        return self.requester

    @property
    def hub(self) -> HubState:
        return self.settings["atrium"]  # type: ignore[no-any-return]

    @property
    def db(self) -> Database:
        return self.hub.db

    @property
    def ctx(self) -> HubContext:
        return self.hub.ctx

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "frame-ancestors 'none'; default-src 'none'")

    def check_xsrf_cookie(self) -> None:
        # token-authenticated API calls carry no ambient credentials
        return

    async def prepare(self) -> None:
        self._started = time.perf_counter()
        self._body_chunks = []
        limit = self.hub.max_body_size
        too_large = limit_streamed_body(self.request, limit)
        if too_large is not None:
            raise PayloadTooLarge(f"Request body too large ({too_large} bytes, at most {limit})")
        token = self.token_from_request()
        if token:
            cache = self.hub.requester_cache
            self.requester = cache.get(token)
            if self.requester is None:
                self.requester = await self.db.run(resolve_token, self.ctx.roles, token)
                if self.requester is not None:
                    cache.put(token, self.requester, self.requester.token_expires_at)
        elif not self.request.headers.get("Authorization"):
            await self._cookie_login()

    async def _cookie_login(self) -> None:
        """A browser's own requests (the hub's pages) carry the login cookie instead of a
        token; a write with it must also carry the XSRF token, as forms do."""
        from hub.pages.base import login_cookie

        login = login_cookie(self, self.hub.cookie_max_age_days)
        if login is None:
            return
        requester = await self.db.run(resolve_cookie, self.ctx.roles, *login)
        if requester is not None and self.request.method not in ("GET", "HEAD", "OPTIONS"):
            web.RequestHandler.check_xsrf_cookie(self)  # raises 403 without a valid token
        self.requester = requester

    def token_from_request(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        if header:
            kind, _, value = header.partition(" ")
            if kind.lower() in {"token", "bearer"} and value.strip():
                return value.strip()
            return None
        # ?token= is accepted for compatibility (websockets cannot set headers)
        return self.get_query_argument("token", None)

    # --- input -------------------------------------------------------------

    def data_received(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_chunks is None:
            return
        if self._body_size <= self.hub.max_body_size:
            self._body_chunks.append(chunk)
        else:
            self._body_chunks.clear()  # too large: keep nothing, answer 413 when it is read

    @property
    def body(self) -> bytes:
        """The request body; PayloadTooLarge if it was over `max_body_size`."""
        limit = self.hub.max_body_size
        if self._body_size > limit:
            raise PayloadTooLarge(
                f"Request body too large ({self._body_size} bytes, at most {limit})"
            )
        return b"".join(self._body_chunks or ())

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """URL path parts and query values: control characters are never valid in them."""
        text = super().decode_argument(value, name)
        if _CONTROL_CHARS.search(text):
            what = f"query argument {bounded(name, 32)}" if name else "URL"
            raise BadRequest(f"The {what} contains control characters")
        return text

    def json_body(self, *, allow_empty: bool = False) -> Any:
        """The parsed JSON body; BadRequest if it is not valid JSON."""
        body = self.body
        if not body or not body.strip():
            if allow_empty:
                return None
            raise BadRequest("Request body must be JSON")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise BadRequest(
                f"Request body is not valid JSON: {e.msg} at position {e.pos}"
            ) from None
        if _contains_nul(data):
            # no database column can store it, and no name or note needs it
            raise BadRequest("Strings in the request body must not contain NUL characters")
        return data

    def json_object(self, *, allow_empty: bool = False) -> dict[str, Any]:
        data = self.json_body(allow_empty=allow_empty)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise BadRequest("Request body must be a JSON object")
        return data

    def int_argument(self, name: str, default: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise BadRequest(f"{name} must be an integer, not {bounded(raw, 20)}") from None

    def flag_argument(self, name: str) -> bool:
        """A query flag as JupyterHub reads one: absent, `0` and `false` are off."""
        value = self.get_query_argument(name, "0")
        return value.lower() not in {"0", "false"}

    @property
    def accepts_pagination(self) -> bool:
        return PAGINATION_MEDIA_TYPE in self.request.headers.get("Accept", "")

    def pagination(self) -> tuple[int, int]:
        """offset and limit from the query, clamped like JupyterHub does."""
        max_limit = self.ctx.page_max_limit
        default = self.ctx.page_default_limit if self.accepts_pagination else max_limit
        offset = self.int_argument("offset", 0)
        limit = self.int_argument("limit", default)
        if offset < 0:
            raise BadRequest("offset must not be negative")
        if offset > MAX_OFFSET:
            raise BadRequest(f"offset must be at most {MAX_OFFSET}")
        return offset, max(1, min(limit, max_limit))

    def paginated(self, items: list[Any], offset: int, limit: int, total: int) -> dict[str, Any]:
        from urllib.parse import urlencode

        next_page = None
        if offset + limit < total:
            args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
            args.update(offset=str(offset + limit), limit=str(limit))
            next_page = {
                "offset": offset + limit,
                "limit": limit,
                "url": f"{self.request.protocol}://{self.request.host}{self.request.path}"
                f"?{urlencode(args)}",
            }
        return {
            "items": items,
            "_pagination": {"offset": offset, "limit": limit, "total": total, "next": next_page},
        }

    # --- output ------------------------------------------------------------

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(orjson.dumps(data))

    def no_content(self) -> None:
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()

    # --- errors ------------------------------------------------------------

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, AtriumError):
            if value.status >= 500:
                log.error("%s %s: %s", self.request.method, self._log_path(), value.log_message)
            else:
                log.info(
                    "%s %s -> %s: %s",
                    self.request.method,
                    self._log_path(),
                    value.status,
                    value.log_message,
                )
        elif isinstance(value, web.HTTPError):
            log.info("%s %s -> %s", self.request.method, self._log_path(), value.status_code)
        else:
            log.error(
                "Uncaught error in %s %s",
                self.request.method,
                self._log_path(),
                exc_info=(typ, value, tb),
            )

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, AtriumError):
            status_code = exc.status
        super().send_error(status_code, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, AtriumError):
            message = exc.message
        elif isinstance(exc, web.HTTPError) and exc.log_message and status_code < 500:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            message = self._reason
        if isinstance(exc, TooManyRequests):
            self.set_header("Retry-After", str(exc.retry_after))
        elif status_code == 503:
            self.set_header("Retry-After", "5")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(orjson.dumps({"status": status_code, "message": message}))

    def _log_path(self) -> str:
        # only the first 200 characters are kept; redact() costs time quadratic in the
        # length of a long run of word characters, so it never sees more than it must
        return bounded(redact((self.request.uri or "")[:LOG_URI_SCAN]), 200)

    def on_finish(self) -> None:
        method = getattr(self, (self.request.method or "").lower(), None)
        if (
            self.request.method not in _READ_METHODS
            and self.get_status() < 400
            and not getattr(method, "__keeps_permissions__", False)
        ):
            # A write may have changed someone's permissions: resolve tokens afresh.
            # This runs in the same loop callback that sent the response, so no request
            # that follows the write can see the old permissions.
            self.hub.requester_cache.invalidate()
        started = getattr(self, "_started", None)
        duration = (time.perf_counter() - started) * 1000 if started else 0.0
        status = self.get_status()
        level = logging.DEBUG if status < 400 else logging.INFO
        if status >= 500:
            level = logging.ERROR
        if access_log.isEnabledFor(level):
            who = self.requester.name if self.requester else "-"
            access_log.log(
                level,
                "%d %s %s (%s) %.2fms",
                status,
                self.request.method,
                self._log_path(),
                bounded(who, 64),
                duration,
                extra={
                    "status": status,
                    "method": self.request.method,
                    "path": self._log_path(),
                    "duration_ms": round(duration, 2),
                    "user": who,
                },
            )


def _contains_nul(data: Any) -> bool:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class API404(APIHandler):
    """Anything under /hub/api that matched no route."""

    async def prepare(self) -> None:
        raise web.HTTPError(404, "No such API endpoint: %s", bounded(self.request.path, 200))
