"""The audit log: who did what to what, recorded in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
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
    now = utcnow()
    session.execute(
        insert(_audit),
        [
            {"at": now, "actor": actor, "action": action, "target": t, "details": details}
            for t in targets
        ],
    )


def list_events(
    session: Session, *, offset: int = 0, limit: int = 100, action: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    query = select(AuditEvent)
    count = select(func.count()).select_from(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
        count = count.where(AuditEvent.action == action)
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).offset(offset).limit(limit)).all()
    total = session.scalar(count) or 0
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
