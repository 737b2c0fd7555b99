"""What the admin panel's Groups, Import roster and Audit log pages share.

`AdminPage` is a `PageHandler` that needs the `admin-ui` scope: anonymous
visitors go to log in (and come back), everyone else gets the 403 page. What
each action may touch is still decided by the units of work it calls, with the
requester's own scopes. Forms post back to the page (XSRF-checked) and redirect
(post/redirect/get); the outcome travels in a short-lived signed cookie, the
*flash*, shown once by the next page. Also here: page numbers and relative times.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import orjson
from tornado import web

from hub.errors import BadRequest, Forbidden
from hub.pages.base import PageHandler
from hub.rbac.access import Requester

FLASH_COOKIE = "atrium-admin-flash"
# what a flash may hold: a cookie has about 4 KB, and the value is base64 and signed
FLASH_MAX_BYTES = 2400
FLASH_MAX_ITEMS = 30
FLASH_MAX_TEXT = 300
MAX_PAGE = 10**6

FlashKind = Literal["ok", "error"]


@dataclass(frozen=True)
class Flash:
    """One outcome to show on the next page: a sentence and, maybe, a list (per name)."""

    kind: FlashKind
    text: str
    items: tuple[str, ...] = ()


def _encode_flash(flash: Flash) -> bytes:
    """The flash as JSON no longer than FLASH_MAX_BYTES: long lists end in 'and N more'."""
    items = [i[:FLASH_MAX_TEXT] for i in flash.items]
    keep = min(len(items), FLASH_MAX_ITEMS)
    while True:
        shown = items[:keep]
        if keep < len(items):
            shown.append(f"and {len(items) - keep} more")
        data = orjson.dumps(
            {"kind": flash.kind, "text": flash.text[:FLASH_MAX_TEXT], "items": shown}
        )
        if len(data) <= FLASH_MAX_BYTES or keep == 0:
            return data
        keep -= 1


def _decode_flash(data: bytes) -> Flash | None:
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict) or raw.get("kind") not in ("ok", "error"):
        return None
    items = raw.get("items")
    return Flash(
        raw["kind"],
        str(raw.get("text", "")),
        tuple(str(i) for i in items) if isinstance(items, list) else (),
    )


@dataclass(frozen=True)
class Pager:
    """One page of a long list: which rows it shows and where the neighbours are."""

    page: int
    per_page: int
    total: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def first_shown(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last_shown(self) -> int:
        return min(self.offset + self.per_page, self.total)

    def link(self, base: str, query: dict[str, str], page: int) -> str:
        """`base` with `query` (empty values left out) and page number `page`."""
        args = {k: v for k, v in query.items() if v}
        if page > 1:
            args["page"] = str(page)
        return f"{base}?{urlencode(args)}" if args else base


def relative_time(when: datetime.datetime, now: datetime.datetime) -> str:
    """`when` as people say it: 'just now', '5 minutes ago', '3 days ago', or a date."""
    seconds = (now - when).total_seconds()
    if seconds < 0:
        return "just now" if seconds > -60 else when.strftime("%Y-%m-%d %H:%M UTC")
    for limit, unit, size in (
        (60, "", 1),
        (3600, "minute", 60),
        (86400, "hour", 3600),
        (86400 * 30, "day", 86400),
    ):
        if seconds < limit:
            if not unit:
                return "just now"
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return when.strftime("%Y-%m-%d")


class AdminPage(PageHandler):
    """A page of the admin panel (`/hub/admin/...`), inside the admin frame."""

    admin_tab = ""

    def require_admin(self) -> Requester:
        """The requester, who holds `admin-ui`; others are sent to log in, or get a 403."""
        req = self.require_login()
        if not req.has("admin-ui"):
            raise Forbidden("This page is part of the admin panel, which your account may not use.")
        return req

    @property
    def admin_url(self) -> str:
        return f"{self.ctx.base_url}hub/admin"

    def admin_page(self, template: str, status: int = 200, **values: Any) -> None:
        """Render `template` (which extends admin_base.html) inside the admin frame."""
        values.setdefault("flash", self.take_flash())
        # native accounts serve the Sign-ups page (hub.auth.native_admin)
        values.setdefault("signups_tab", any(a.owns_passwords for a in self.hub.auth.forms))
        self.page(
            template,
            status,
            admin_tab=self.admin_tab,
            layout="wide",
            section="admin",
            **values,
        )

    # --- the flash --------------------------------------------------------------------

    def flash(self, kind: FlashKind, text: str, items: list[str] | tuple[str, ...] = ()) -> None:
        """Keep an outcome for the next page this browser shows in the admin panel."""
        self.set_signed_cookie(
            FLASH_COOKIE,
            _encode_flash(Flash(kind, text, tuple(items))),
            expires_days=None,
            path=f"{self.ctx.base_url}hub/admin",
            httponly=True,
            secure=self.request.protocol == "https",
            samesite="Lax",
        )

    def take_flash(self) -> Flash | None:
        """The outcome kept by the last action, once (it is cleared as it is read)."""
        value = self.get_signed_cookie(FLASH_COOKIE, max_age_days=1 / 24)
        if self.get_cookie(FLASH_COOKIE) is not None:
            self.clear_cookie(FLASH_COOKIE, path=f"{self.ctx.base_url}hub/admin")
        return _decode_flash(value) if value else None

    def done(
        self, url: str, kind: FlashKind, text: str, items: list[str] | tuple[str, ...] = ()
    ) -> None:
        """The end of a form action: the outcome in the flash, then back to `url`."""
        self.flash(kind, text, items)
        self.redirect(url, status=303)

    # --- query arguments --------------------------------------------------------------

    def page_number(self) -> int:
        """`?page=N` (1 when absent); anything but a positive whole number is a 400."""
        raw = self.get_query_argument("page", "1").strip() or "1"
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
            raise BadRequest("The page number must be a whole number from 1 up.")
        return int(raw)

    def text_argument(self, name: str, limit: int = 256) -> str:
        """A short text field (query or form), stripped; longer than `limit` is a 400.
        (Tornado has already turned control characters into spaces.)"""
        value = self.get_argument(name, "").strip()
        if len(value) > limit:
            raise BadRequest(
                f"The {name.replace('_', ' ')} is too long (at most {limit} characters)."
            )
        return value


def clamp_page(page: int, per_page: int, total: int) -> Pager:
    """A pager for `page`, moved back to the last page when the list got shorter."""
    pager = Pager(page, per_page, total)
    if page > pager.pages:
        pager = Pager(pager.pages, per_page, total)
    return pager


def finish_json(handler: web.RequestHandler, data: Any, status: int = 200) -> None:
    """Answer with JSON (the pages' scripts ask for it with `Accept: application/json`)."""
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    handler.finish(orjson.dumps(data))


def wants_json(handler: web.RequestHandler) -> bool:
    return "application/json" in handler.request.headers.get("Accept", "")
