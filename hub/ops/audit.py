"""The audit log: who did what to what, recorded in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.db.models import AuditEvent
from hub.timeutil import isoformat


def record(session: Session, actor: str, action: str, target: str = "", **details: Any) -> None:
    session.add(AuditEvent(actor=actor, action=action, target=target, details=details))


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
