"""Password checks for native accounts, off the event loop (argon2id is slow on purpose)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.engine import Database
from hub.db.models import User
from hub.secrets_hash import password_matches


def _stored_hash(session: Session, name: str) -> str | None:
    return session.scalar(select(User.password_hash).where(User.name == name, ~User.blocked))


async def check_password(db: Database, name: str, password: str) -> bool:
    """True if `name` is a native account with this password.

    Unknown users cost the same time as wrong passwords.
    """
    if len(password) > 1024:
        return False
    hashed = await db.run(_stored_hash, name)
    return await asyncio.to_thread(password_matches, password, hashed)
