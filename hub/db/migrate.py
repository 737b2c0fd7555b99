"""Schema versions: is the database current, and bring it up to date.

The hub refuses to start on a database that is behind the code (`DatabaseBehind`)
and tells the operator to run `atrium upgrade-db`, which backs a SQLite file up
before it upgrades. A brand-new, empty database is created at the head revision.
"""

from __future__ import annotations

import datetime
import logging
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

import migrations
from hub.db.engine import normalize_url
from hub.errors import ConfigError, DatabaseBehind

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(url: str, script_location: Path = MIGRATIONS_DIR) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    # '%' must be escaped for configparser interpolation
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def head_revision(script_location: Path = MIGRATIONS_DIR) -> str:
    head = ScriptDirectory.from_config(
        alembic_config("sqlite://", script_location)
    ).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_empty(engine: Engine) -> bool:
    return not inspect(engine).get_table_names()


def upgrade(engine: Engine, revision: str = "head", script_location: Path = MIGRATIONS_DIR) -> None:
    """Run migrations up to `revision` on `engine`'s database."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False), script_location)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def check_current(engine: Engine, script_location: Path = MIGRATIONS_DIR) -> None:
    """Create an empty database, or fail unless it is at the head revision."""
    if is_empty(engine):
        log.info("New database: creating the schema")
        upgrade(engine, script_location=script_location)
        return
    current = current_revision(engine)
    head = head_revision(script_location)
    if current == head:
        return
    if current is None:
        raise ConfigError(
            "The database has tables but no Atrium schema version; "
            "point db_url at an empty database or an Atrium database"
        )
    script = ScriptDirectory.from_config(alembic_config("sqlite://", script_location))
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise ConfigError(
            f"The database is at revision {current}, which this version of Atrium "
            "does not know: it was upgraded by a newer Atrium"
        )
    raise DatabaseBehind(
        f"The database is at revision {current} but this Atrium needs {head}. "
        "Back it up and run `atrium upgrade-db` (SQLite files are backed up for you)."
    )


def backup_sqlite(url: str) -> Path | None:
    """Copy a SQLite database file next to itself; returns the backup's path."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    source = Path(parsed.database)
    if not source.exists():
        return None
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = source.with_name(f"{source.name}.{stamp}.bak")
    n = 1
    while target.exists():
        target = source.with_name(f"{source.name}.{stamp}-{n}.bak")
        n += 1
    # the backup API copies a consistent snapshot even if the hub is running
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    target.chmod(0o600)
    return target


def upgrade_database(url: str, script_location: Path = MIGRATIONS_DIR) -> list[str]:
    """What `atrium upgrade-db` does; returns the lines to show the operator."""
    from hub.db.engine import make_engine

    engine = make_engine(url)
    try:
        if is_empty(engine):
            upgrade(engine, script_location=script_location)
            return ["Created a new database at the current schema."]
        before = current_revision(engine)
        head = head_revision(script_location)
        if before == head:
            return [f"The database is already at the current schema ({head})."]
        lines = []
        backup = backup_sqlite(url)
        if backup is not None:
            lines.append(f"Backed up the database to {backup}")
        upgrade(engine, script_location=script_location)
        lines.append(f"Upgraded the database from {before} to {head}.")
        return lines
    finally:
        engine.dispose()
