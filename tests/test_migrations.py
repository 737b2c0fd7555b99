"""Schema migrations on SQLite and PostgreSQL: no drift, full upgrade path,
refusal to run on a database that is behind, and `atrium upgrade-db`."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from hub.db import migrate
from hub.db.engine import Database
from hub.db.models import Base
from hub.errors import ConfigError, DatabaseBehind
from tests.pg import PostgresServer
from tests.procs import run_atrium


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"empty_{abs(hash(request.node.nodeid)) % 10**8}"
    server.drop_database(name)
    yield server.create_database(name)
    server.drop_database(name)


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def test_models_and_migrations_do_not_drift(empty_db: str) -> None:
    db = Database(empty_db)
    try:
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == [], f"models differ from migrations; add a revision: {diff}"
    finally:
        db.close()


def test_upgrade_walks_every_revision_from_the_first(empty_db: str) -> None:
    db = Database(empty_db)
    try:
        for rev in revisions():
            migrate.upgrade(db.engine, rev)
            assert migrate.current_revision(db.engine) == rev
        assert migrate.current_revision(db.engine) == migrate.head_revision()
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
    finally:
        db.close()


def test_empty_database_is_created_at_head(empty_db: str) -> None:
    db = Database(empty_db)
    try:
        migrate.check_current(db.engine)
        assert migrate.current_revision(db.engine) == migrate.head_revision()
        migrate.check_current(db.engine)  # idempotent
    finally:
        db.close()


@pytest.fixture
def newer_migrations(tmp_path: Path) -> Path:
    """A copy of our migrations plus one newer revision, as a future Atrium would ship."""
    target = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.head_revision()
    (target / "versions" / "9999_newer.py").write_text(
        f'''"""a newer revision"""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("nickname", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("nickname")
'''
    )
    return target


def test_database_behind_is_refused_then_upgraded(empty_db: str, newer_migrations: Path) -> None:
    db = Database(empty_db)
    try:
        migrate.upgrade(db.engine)
        with pytest.raises(DatabaseBehind, match="atrium upgrade-db"):
            migrate.check_current(db.engine, newer_migrations)
        migrate.upgrade(db.engine, script_location=newer_migrations)
        migrate.check_current(db.engine, newer_migrations)
        columns = {c["name"] for c in inspect(db.engine).get_columns("users")}
        assert "nickname" in columns
    finally:
        db.close()


def test_database_from_a_newer_atrium_is_refused(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffff'"))
        with pytest.raises(ConfigError, match="newer Atrium"):
            migrate.check_current(db.engine)
    finally:
        db.close()


def test_foreign_tables_without_version_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE something (id INTEGER)")
    db = Database(f"sqlite:///{path}")
    try:
        with pytest.raises(ConfigError, match="no Atrium schema version"):
            migrate.check_current(db.engine)
    finally:
        db.close()


async def test_hub_refuses_a_newer_database_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'atrium.sqlite'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffff'"))
    db.close()
    code, out, err = await run_atrium("--db", url, "--port", "0", cwd=tmp_path)
    assert code == 2
    assert "newer Atrium" in err
    assert "Traceback" not in err + out


async def test_upgrade_db_backs_up_sqlite_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "atrium.sqlite"
    url = f"sqlite:///{path}"
    db = Database(url)
    first = revisions()[0]
    migrate.upgrade(db.engine, first)
    db.close()
    code, out, err = await run_atrium("upgrade-db", "--db", url, cwd=tmp_path)
    assert code == 0, err
    db = Database(url)
    assert migrate.current_revision(db.engine) == migrate.head_revision()
    db.close()
    code, out, err = await run_atrium("upgrade-db", "--db", url, cwd=tmp_path)
    assert code == 0, err
    assert "already at the current schema" in out


def test_upgrade_database_backs_up_a_sqlite_file_first(
    tmp_path: Path, newer_migrations: Path
) -> None:
    path = tmp_path / "atrium.sqlite"
    url = f"sqlite:///{path}"
    db = Database(url)
    migrate.upgrade(db.engine)
    db.close()
    lines = migrate.upgrade_database(url, newer_migrations)
    backups = list(tmp_path.glob("atrium.sqlite.*.bak"))
    assert len(backups) == 1
    assert lines[0] == f"Backed up the database to {backups[0]}"
    assert lines[1].endswith("to 9999.")
    assert backups[0].stat().st_mode & 0o077 == 0
    with sqlite3.connect(backups[0]) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (migrate.head_revision(),)
        ]
    db = Database(url)
    assert migrate.current_revision(db.engine) == "9999"
    db.close()


def test_backup_sqlite_copies_a_consistent_private_file(tmp_path: Path) -> None:
    path = tmp_path / "atrium.sqlite"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db.engine)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (name, admin, blocked, created, cookie_id) "
                "VALUES ('ann', 0, 0, '2024-01-01', 'c1')"
            )
        )
    backup = migrate.backup_sqlite(db.url)
    db.close()
    assert backup is not None
    assert backup.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(backup) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("ann",)]


async def test_upgrade_db_reads_the_config_file(tmp_path: Path) -> None:
    target = tmp_path / "from-config.sqlite"
    (tmp_path / "site.py").write_text(f"c.Hub.db_url = 'sqlite:///{target}'\n")
    code, out, err = await run_atrium("upgrade-db", "--config", "site.py", cwd=tmp_path)
    assert code == 0, err
    assert "Created a new database" in out
    db = Database(f"sqlite:///{target}")
    assert migrate.current_revision(db.engine) == migrate.head_revision()
    db.close()
    code, out, err = await run_atrium("upgrade-db", "--config", "missing.py", cwd=tmp_path)
    assert code == 2
    assert "config file not found" in err
