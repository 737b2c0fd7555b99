"""The database layer: engines, units of work, and what the schema guarantees."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from hub.db.engine import Database, normalize_url
from hub.db.models import APIToken, User
from hub.errors import ConfigError, ServiceUnavailable
from tests.pg import free_port


def test_ids_are_never_reused(db_url: str) -> None:
    """A revoked token's id (`aN` in the API) must never name a newer token."""
    db = Database(db_url)
    try:
        with db.session() as session:
            user = User(name="ann", cookie_id="c-ann")
            session.add(user)
            session.flush()
            first = APIToken(user_id=user.id, prefix="p1", hashed="h1")
            session.add(first)
            session.flush()
            first_id = first.id
        with db.session() as session:
            session.execute(delete(APIToken).where(APIToken.id == first_id))
        with db.session() as session:
            user_id = session.scalar(select(User.id).where(User.name == "ann"))
            second = APIToken(user_id=user_id, prefix="p2", hashed="h2")
            session.add(second)
            session.flush()
            assert second.id > first_id
    finally:
        db.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.sqlite", "sqlite:///x.sqlite"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/d", "nonsense", "oracle://x"])
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        normalize_url(url)


async def test_unreachable_database_is_a_503_with_no_secret() -> None:
    db = Database(f"postgresql://atrium:s3cret-pw@127.0.0.1:{free_port()}/atrium")
    try:
        with pytest.raises(ServiceUnavailable) as info:
            await db.run(lambda session: session.execute(select(1)).all())
        assert "retry" in info.value.message
        assert "s3cret" not in info.value.message
    finally:
        db.close()
