"""The audit log: who did what to what, recorded in the same transaction as the change.

Actions are `noun.verb` strings (`user.create`, `group.add_users`,
`roster.import`, ...). `list_events` reads the log newest first, for the
`/hub/api/audit` handler (`hub.api.audit`), the admin panel and `hub-admin audit`.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, insert, select
from sqlalchemy.orm import Session

from hub.db.models import AuditEvent
from hub.timeutil import isoformat, utcnow

_audit = cast(Table, AuditEvent.__table__)


def record(session: Session, actor: str, action: str, target: str = "", **details: Any) -> None:
    record_many(session, actor, action, [target], **details)


def record_many(
    session: Session, actor: str, action: str, targets: Sequence[str], **details: Any
) -> None:
    """One event per target, in a single statement."""
    record_each(session, actor, action, [(t, details) for t in targets])


def record_each(
    session: Session, actor: str, action: str, events: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """One event per (target, details) pair, in a single statement."""
    if not events:
        return
    now = utcnow()
    session.execute(
        insert(_audit),
        [
            {"at": now, "actor": actor, "action": action, "target": t, "details": d}
            for t, d in events
        ],
    )


def action_is_prefix(action: str) -> bool:
    """`user.` and `user.*` select every `user.` action; anything else is one action."""
    return action.endswith((".", ".*"))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_events(
    session: Session,
    *,
    offset: int = 0,
    limit: int = 100,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: datetime.datetime | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of events, newest first, and how many match in all.

    `action` is one action (`user.create`) or, ending in `.` or `.*`, every action
    of a noun (`user.`); `actor` and `target` match exactly; `since` (naive UTC)
    keeps events at or after that time.
    """
    conditions: list[ColumnElement[bool]] = []
    if action:
        if action_is_prefix(action):
            prefix = action.removesuffix("*")
            conditions.append(AuditEvent.action.like(f"{_escape_like(prefix)}%", escape="\\"))
        else:
            conditions.append(AuditEvent.action == action)
    if actor:
        conditions.append(AuditEvent.actor == actor)
    if target:
        conditions.append(AuditEvent.target == target)
    if since is not None:
        conditions.append(AuditEvent.at >= since)
    where = and_(True, *conditions)
    query = select(AuditEvent).where(where)
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).offset(offset).limit(limit)).all()
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(where)) or 0
    return [
        {
            "id": e.id,
            "at": isoformat(e.at),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "details": e.details,
        }
        for e in rows
    ], total
