"""`/hub/token`: a person's API tokens.

Creating one takes a note, an expiry from a short list (never beyond
`c.Hub.token_expires_in_max_seconds`) and its permissions: a named choice, or
scopes written out and checked against the scope table; the hub refuses any
the person does not hold (`hub.ops.tokens`). The new token is shown once, in
the answer to its creation, and never again. The list shows every token (note,
scopes, created, last used, expiry, and the OAuth client of tokens issued to
servers), each with a button to revoke it after confirmation.

Plain forms work (POST with `_xsrf`; revoking confirms on a page of its own);
`hub/static/token.js` does the same through the REST API without reloading.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from hub.errors import AtriumError, BadRequest
from hub.ops import tokens as token_ops
from hub.pages.base import PageHandler
from hub.rbac import scopes
from hub.rbac.access import Requester

DEFAULT_NOTE = "Created on the token page"
MAX_CUSTOM_SCOPES = 50
MAX_FIELD = 2000
DAY = 86400
# (seconds, label); 0 is "never"
EXPIRY = ((DAY, "1 day"), (7 * DAY, "7 days"), (30 * DAY, "30 days"), (0, "Never"))
DEFAULT_EXPIRY = 7 * DAY


@dataclass(frozen=True)
class ScopeChoice:
    key: str
    label: str
    description: str
    scopes: Callable[[str], list[str]]


SCOPE_CHOICES = (
    ScopeChoice(
        "self",
        "Act as me",
        "Your own servers, tokens and profile; no admin rights, even if you have them.",
        lambda user: ["self"],
    ),
    ScopeChoice(
        "servers",
        "Use my servers",
        "Start, stop and use your servers (from a script, say), and nothing else.",
        lambda user: [f"servers!user={user}", f"access:servers!user={user}"],
    ),
    ScopeChoice(
        "read",
        "Read only",
        "See your profile and your servers' state; change nothing.",
        lambda user: [f"read:users!user={user}", f"read:servers!user={user}"],
    ),
    ScopeChoice(
        "identify",
        "Only who I am",
        "Tell a service your user name, nothing more.",
        lambda user: ["(no_scope)"],
    ),
    ScopeChoice(
        "inherit",
        "Everything I can do",
        "All your permissions, now and later, including admin rights if you have them.",
        lambda user: ["inherit"],
    ),
)
CUSTOM = "custom"
_SPLIT = re.compile(r"[\s,]+")


def visible(text: str) -> str:
    """`text` with control and formatting characters (such as right-to-left overrides,
    which could disguise what follows) shown as `<U+202E>` instead of acting."""
    return "".join(
        f"<U+{ord(c):04X}>" if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t" else c
        for c in text
    )


def _duration(seconds: int) -> str:
    for unit, size in (("day", DAY), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def expiry_choices(max_seconds: int) -> list[tuple[str, str]]:
    """(form value, label) of the expiries offered; '' is never (only without a limit)."""
    if not max_seconds:
        return [(str(s) if s else "", label) for s, label in EXPIRY]
    offered = [(str(s), label) for s, label in EXPIRY if s and s <= max_seconds]
    if all(s != max_seconds for s, _ in EXPIRY):
        offered.append((str(max_seconds), f"{_duration(max_seconds)} (the longest allowed)"))
    return offered


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    value = datetime.datetime.fromisoformat(iso.removesuffix("Z"))
    return value.strftime("%Y-%m-%d %H:%M UTC")


def custom_scopes(text: str) -> list[str]:
    """Scopes written out (separated by spaces, commas or lines), each checked against
    the scope table."""
    wanted = [s for s in _SPLIT.split(text.strip()) if s]
    if not wanted:
        raise BadRequest("Write at least one scope, or choose one of the other options")
    if len(wanted) > MAX_CUSTOM_SCOPES:
        raise BadRequest(f"At most {MAX_CUSTOM_SCOPES} scopes")
    return [scopes.validate(s) for s in wanted]


class TokenPageHandler(PageHandler):
    async def get(self) -> None:
        req = self.require_login()
        revoked = self.get_query_argument("revoked", "") == "1"
        await self._show(req, message="The token was revoked." if revoked else "")

    async def post(self) -> None:
        req = self.require_login()
        action = self.get_body_argument("action", "")
        form = {
            "note": self.get_body_argument("note", "")[:MAX_FIELD],
            "expires_in": self.get_body_argument("expires_in", "")[:20],
            "access": self.get_body_argument("access", "")[:20],
            "custom_scopes": self.get_body_argument("custom_scopes", "")[:MAX_FIELD],
        }
        try:
            if action == "create":
                await self._create(req, form)
            elif action == "revoke":
                await self._revoke(req)
            else:
                raise BadRequest("Unknown action; use the buttons on this page")
        except AtriumError as e:
            await self._show(req, status=e.status, error=e.message, form=form)

    async def _create(self, req: Requester, form: dict[str, str]) -> None:
        choices = dict(expiry_choices(self.ctx.token_expires_in_max))
        if form["expires_in"] not in choices:
            raise BadRequest("Choose when the token expires from the list")
        expires_in = int(form["expires_in"]) if form["expires_in"] else None
        if form["access"] == CUSTOM:
            wanted = custom_scopes(form["custom_scopes"])
        else:
            choice = next((c for c in SCOPE_CHOICES if c.key == form["access"]), None)
            if choice is None:
                raise BadRequest("Choose what the token may do from the list")
            wanted = choice.scopes(req.name)
        body = {
            "note": form["note"].strip() or DEFAULT_NOTE,
            "expires_in": expires_in,
            "scopes": wanted,
        }
        model = await self.db.run(token_ops.create_token, self.ctx, req, req.name, body)
        await self._show(req, status=201, new_token=model["token"], new_id=model["id"])

    async def _revoke(self, req: Requester) -> None:
        token_id = self.get_body_argument("token_id", "")[:40]
        model = await self.db.run(token_ops.get_token, req, req.name, token_id)
        if self.get_body_argument("confirm", "") != "yes":
            # tokens issued through OAuth expire; a server's own token carries the client's
            # id but never expires, and revoking it affects that token alone
            issued = model["oauth_client"] != "atrium" and model["expires_at"] is not None
            self.page(
                "confirm.html",
                title="Revoke token?",
                section="token",
                heading=f"Revoke the token “{visible(model['note'])}”?",
                lead=(
                    f"Every token issued to {model['oauth_client']} for you is revoked with "
                    "it: that server's open tabs lose access until you log in to it again."
                    if issued
                    else "Whatever uses it loses access at once. This cannot be undone."
                ),
                action=f"{self.ctx.base_url}hub/token",
                fields={"action": "revoke", "token_id": model["id"], "confirm": "yes"},
                confirm_label="Revoke",
                cancel_url=f"{self.ctx.base_url}hub/token",
            )
            return
        await self.db.run(token_ops.revoke_token, req, req.name, token_id)
        self.hub.requester_cache.invalidate()  # it stops working now, not after the cache
        self.redirect(f"{self.ctx.base_url}hub/token?revoked=1")

    def _row(self, req: Requester, model: dict[str, Any]) -> dict[str, Any]:
        client = model["oauth_client"]
        return {
            "id": model["id"],
            "note": visible(model["note"] or ""),
            "scopes": [visible(s) for s in model["scopes"]],
            "created": _when(model["created"]),
            "last_used": _when(model["last_activity"]) or "Never",
            "expires": _when(model["expires_at"]) or "Never",
            "client": visible(client) if client != "atrium" else "",
            "this_login": bool(req.session_id and model["session_id"] == req.session_id),
            "kind": "issued" if client != "atrium" else "api",
            # what the JavaScript confirmation asks
            "question": (
                f"Revoke every token issued to {visible(client)} for you?"
                if client != "atrium"
                else f"Revoke the token “{visible(model['note'] or '')}”?"
            ),
        }

    async def _show(
        self,
        req: Requester,
        *,
        status: int = 200,
        message: str = "",
        error: str = "",
        form: dict[str, str] | None = None,
        new_token: str = "",
        new_id: str = "",
    ) -> None:
        tokens = await self.db.run(token_ops.list_tokens, req, req.name)
        expiries = expiry_choices(self.ctx.token_expires_in_max)
        default_expiry = (
            str(DEFAULT_EXPIRY)
            if any(v == str(DEFAULT_EXPIRY) for v, _ in expiries)
            else expiries[0][0]
        )
        values = form if form is not None and error else {}
        choices = [
            {
                "key": c.key,
                "label": c.label,
                "description": c.description,
                "scopes": orjson.dumps(c.scopes(req.name)).decode(),
            }
            for c in SCOPE_CHOICES
        ]
        self.page(
            "token.html",
            status,
            title="API tokens",
            section="token",
            layout="medium",
            user_name=req.name,
            rows=[self._row(req, t) for t in reversed(tokens)],
            expiries=expiries,
            chosen_expiry=values.get("expires_in", default_expiry),
            choices=choices,
            chosen_access=values.get("access", "self"),
            note=values.get("note", ""),
            custom=values.get("custom_scopes", ""),
            default_note=DEFAULT_NOTE,
            max_note=token_ops.MAX_NOTE_LEN,
            message=message,
            error=error,
            new_token=new_token,
            new_id=new_id,
            nonce=self.script_nonce(),
        )


routes = [(r"/token", TokenPageHandler)]
