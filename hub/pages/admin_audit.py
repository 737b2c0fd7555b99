"""The admin panel's Audit log page: `/hub/admin/audit`.

What admins did, as `hub.ops.audit` recorded it (who, what, to what, when, and
the details), newest first, a page at a time. Plain GET arguments filter it —
`actor` and `target` match exactly, `action` is one action or all of a noun's
(`user.`) — so a filtered view is a link to share; a name in the table links to
the events of that name. Reading the log needs `read:audit` over the whole hub
(the admin role has it), as `GET /hub/api/audit` does.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.models import AuditEvent
from hub.errors import Forbidden
from hub.ops import audit as audit_ops
from hub.pages.admin_panel import AdminPage, clamp_page, relative_time
from hub.rbac.scopes import ALL
from hub.timeutil import parse_timestamp, utcnow

EVENTS_PER_PAGE = 50
# how much of an event's details the table shows
MAX_DETAIL_ITEMS = 10
MAX_DETAIL_CHARS = 200


def known_actions(session: Session) -> list[str]:
    """Every action the log holds, for the filter's menu."""
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def action_choices(actions: list[str]) -> list[tuple[str, str]]:
    """(value, label) for the menu: each noun's actions together, then each action."""
    choices: list[tuple[str, str]] = []
    nouns: list[str] = []
    for action in actions:
        noun = action.partition(".")[0]
        if "." in action and noun not in nouns:
            nouns.append(noun)
            choices.append((f"{noun}.", f"every {noun} action"))
        choices.append((action, action))
    return choices


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def detail_lines(details: Any) -> list[str]:
    """An event's details as short `key: value` lines (lists cut after a few items)."""
    if not isinstance(details, dict):
        return [_shorten(orjson.dumps(details).decode())] if details else []
    lines = []
    for key in sorted(details, key=str):
        value = details[key]
        if isinstance(value, list):
            shown = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in value]
            text = ", ".join(shown[:MAX_DETAIL_ITEMS])
            if len(shown) > MAX_DETAIL_ITEMS:
                text += f" and {len(shown) - MAX_DETAIL_ITEMS} more"
            text = text or "none"
        elif isinstance(value, str):
            text = value
        else:
            text = orjson.dumps(value).decode()
        lines.append(_shorten(f"{key}: {text}"))
    return lines


class AuditPage(AdminPage):
    """`/hub/admin/audit`: a page of the audit log, filtered by actor, action and target."""

    admin_tab = "audit"

    async def get(self) -> None:
        req = self.require_admin()
        if req.parsed.get("read:audit") != ALL:
            raise Forbidden("Reading the audit log needs the read:audit permission.")
        filters = {
            "actor": self.text_argument("actor", 300),
            "action": self.text_argument("action", 300),
            "target": self.text_argument("target", 300),
        }
        page = self.page_number()

        async def fetch(offset: int) -> tuple[list[dict[str, Any]], int]:
            return await self.db.run(
                audit_ops.list_events,
                offset=offset,
                limit=EVENTS_PER_PAGE,
                actor=filters["actor"] or None,
                action=filters["action"] or None,
                target=filters["target"] or None,
            )

        events, total = await fetch((page - 1) * EVENTS_PER_PAGE)
        pager = clamp_page(page, EVENTS_PER_PAGE, total)
        if pager.page != page:  # past the end: the last page instead
            events, total = await fetch(pager.offset)
        actions = await self.db.run(known_actions)
        now = utcnow()
        rows = [
            {
                **e,
                "relative": relative_time(parse_timestamp(e["at"]), now),
                "lines": detail_lines(e["details"]),
            }
            for e in events
        ]
        self.admin_page(
            "admin_audit.html",
            title="Audit log",
            events=rows,
            pager=pager,
            filters=filters,
            filtered=any(filters.values()),
            choices=action_choices(actions),
            list_url=f"{self.admin_url}/audit",
        )


routes = [(r"/admin/audit", AuditPage)]
