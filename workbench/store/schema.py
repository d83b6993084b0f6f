"""Schema versions with Alembic: every change to orm.py is a migration in migrations/versions/.

Opening the store brings its database to the newest revision (`upgrade`). One process migrates at a time:
an fcntl lock on a file beside a SQLite database, a transaction-level advisory lock on PostgreSQL, so
two processes opening a fresh home at once do not both create the tables. A SQLite file is copied to
`<file>.bak-<revision>` before it is changed (`bak-unversioned` for a database made before migrations).
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, func, inspect, select

from workbench.errors import UserError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "workbench_alembic_version"
BASELINE = "0001"  # the schema of the store before it had migrations
UNVERSIONED = "unversioned"
_ADVISORY_LOCK_KEY = zlib.crc32(b"workbench schema migration")
# Alembic says "Context impl SQLiteImpl." at INFO each time a store opens: noise in every worker's log.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@cache
def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The database's revision; UNVERSIONED for tables made before migrations, None for an empty database."""
    revision = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if revision is None and inspect(connection).has_table("datasets"):
        return UNVERSIONED
    return revision


def history() -> list[tuple[str, str, bool]]:
    """(revision, first line of its message, is head), newest first."""
    script = ScriptDirectory.from_config(_config())
    return [(r.revision, r.doc.splitlines()[0] if r.doc else "", r.is_head) for r in script.walk_revisions()]


def upgrade(engine: Engine) -> str:
    """Bring the database to the head revision if it is behind; returns the head revision."""
    head = head_revision()
    with engine.connect() as connection:
        if current_revision(connection) == head:  # the common case: no lock, no Alembic run
            return head
    with _migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))
        current = current_revision(connection)  # again, under the lock: another process may have done it
        if current == head:
            return head
        if current not in {None, UNVERSIONED, *(r for r, _, _ in history())}:
            raise UserError(f"The database was made by a newer version of the workbench (schema revision {current}); "
                            "update the workbench to open it.")
        if current is not None and engine.dialect.name == "sqlite":
            _backup_sqlite(engine, current)
        config = _config()
        config.attributes["connection"] = connection
        if current == UNVERSIONED:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
    return head


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL (None in memory or for another database)."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database) if database and database != ":memory:" else None


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    path = sqlite_path(engine.url)
    if path is None:  # PostgreSQL takes its advisory lock inside the migration's transaction
        yield
        return
    with open(path.with_name(path.name + ".migrate-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _backup_sqlite(engine: Engine, revision: str) -> None:
    """A consistent copy (WAL included) made by SQLite's online backup; an existing backup is kept as it is."""
    path = sqlite_path(engine.url)
    if path is None:
        return
    backup = path.with_name(f"{path.name}.bak-{revision}")
    if backup.exists():
        return
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    target = sqlite3.connect(backup)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
