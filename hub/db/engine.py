"""Engines and units of work.

The hub never runs a query on its event loop. Each piece of database work is a
plain synchronous function taking a `Session` (see `hub.ops`), run whole in a
worker thread by `Database.run`, and committed once at its end. SQLite gets a
single worker (it serialises writers anyway, and one connection avoids lock
contention); PostgreSQL gets a small pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from hub.errors import ConfigError, ServiceUnavailable
from hub.metrics import DB_DURATION

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def normalize_url(url: str) -> str:
    """Accept the URLs people write and pick our drivers.

    `postgresql://` and `postgres://` mean psycopg 3; `sqlite:///file` stays.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "db_url is not a database URL; expected e.g. sqlite:///atrium.sqlite "
            "or postgresql+psycopg://user@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend in {"postgres", "postgresql"}:
        if parsed.drivername in {"postgres", "postgresql"}:
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL makes NORMAL durable against application crashes; only an OS crash
    # can lose the last transactions, never corrupt the file.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _create_private(path: str | None) -> None:
    """Create a new SQLite file readable by its owner only (it holds credential hashes)."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    import os

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as e:
        raise ConfigError(f"cannot create the database file {path}: {e.strerror}") from None
    os.close(fd)


def make_engine(url: str, *, pool_size: int = 4, echo: bool = False) -> Engine:
    """An engine for `url` with the settings each backend needs."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if not database or database == ":memory:":
            raise ConfigError(
                "an in-memory SQLite database would lose every user at each restart, and "
                "the hub uses several connections: give a file, e.g. sqlite:///atrium.sqlite"
            )
        _create_private(database)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False},
            pool_size=1,
            max_overflow=2,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=3600,
        )
    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """An engine, a session factory and the worker threads that use them."""

    def __init__(self, url: str, *, pool_size: int = 4, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, pool_size=pool_size, echo=echo)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        workers = 1 if is_sqlite(self.engine) else pool_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atrium-db")
        self._local = threading.local()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def run_sync(self, fn: Callable[Concatenate[Session, P], T], *a: P.args, **kw: P.kwargs) -> T:
        """Run one unit of work in the calling thread."""
        began = time.perf_counter()
        try:
            with self.session() as session:
                return fn(session, *a, **kw)
        except OperationalError as e:
            log.warning("database unavailable: %s", type(e.orig).__name__ if e.orig else e)
            raise ServiceUnavailable(
                "The database is busy or unavailable; retry in a few seconds",
            ) from None
        except DBAPIError as e:
            if e.connection_invalidated:
                raise ServiceUnavailable(
                    "The database connection was lost; retry in a few seconds"
                ) from None
            raise
        finally:
            DB_DURATION.labels(operation=getattr(fn, "__name__", "unit")).observe(
                time.perf_counter() - began
            )

    async def run(self, fn: Callable[Concatenate[Session, P], T], *a: P.args, **kw: P.kwargs) -> T:
        """Run one unit of work in a database thread and return its result.

        Results must be plain data: ORM objects do not leave the worker.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: self.run_sync(fn, *a, **kw))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
