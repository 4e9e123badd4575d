"""The SQLite database: connection settings, migrations applied on open, the one way to write.

The schema itself is ``ingest.schema`` (every table, as versioned migrations). Migrations are
applied in order on open; ``PRAGMA user_version`` records the last one applied. Every
connection uses WAL (readers never block the writer) and a busy timeout, so ``status`` and
``report`` can run while ``ingest`` writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ingest import search_index
from ingest.schema import MIGRATIONS

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["MIGRATIONS", "inserted_id", "open_connection", "read_snapshot", "schema_version", "transaction"]


def open_connection(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database as a plain sqlite3 connection (autocommit; use ``transaction``).

    Cheap to import: commands that only read (``status --json``) use this directly.
    """
    path = Path(path)
    if not readonly:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn)
        search_index.catch_up(conn, transaction)  # messages recorded before migration 7, in batches
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _migrate(conn: sqlite3.Connection) -> None:
    current = schema_version(conn)
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"the database was written by a newer mailroll (schema {current}, this one knows "
            f"{len(MIGRATIONS)}): upgrade mailroll"
        )
    for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
        with transaction(conn):
            if schema_version(conn) < version:  # another process may have migrated meanwhile
                if callable(step):
                    step(conn)
                else:
                    for statement in _statements(step):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")


def _statements(sql: str) -> Iterator[str]:
    buf = ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf
            buf = ""


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The rowid an INSERT just made (``lastrowid`` typed as never None)."""
    rowid = cursor.lastrowid
    if rowid is None:
        raise RuntimeError("no row was inserted")
    return rowid


@contextmanager
def transaction(db: sqlite_utils.Database | sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.

    Nested inside an open transaction it is a SAVEPOINT (as sqlite-utils' ``atomic()``): an
    exception undoes the inner block's writes only, and the outer transaction commits or rolls
    back the whole. So a function that writes wraps itself, whoever calls it.

    Two guards, as sqlite-utils has them: SQLite may have rolled the whole transaction back by
    itself (a trigger's ``RAISE(ROLLBACK)``, a full disk), so there is no savepoint left to roll
    back to and the original error is what is raised; and a COMMIT that fails (the database is
    busy) is rolled back, so the connection is never left inside a half-done transaction."""
    conn = _conn(db)
    if conn.in_transaction:
        conn.execute("SAVEPOINT mailroll_nested")  # the innermost of equal names is meant
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO mailroll_nested")
                conn.execute("RELEASE mailroll_nested")
            raise
        else:
            conn.execute("RELEASE mailroll_nested")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def read_snapshot(db: sqlite_utils.Database | sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Reads that see one state of the database: BEGIN (deferred) ... COMMIT, taking no write
    lock (WAL: ingest keeps writing meanwhile). Inside an open transaction, that one."""
    conn = _conn(db)
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def _conn(db: sqlite_utils.Database | sqlite3.Connection) -> sqlite3.Connection:
    return db if isinstance(db, sqlite3.Connection) else db.conn
