"""One way to write: ``ingest.db.transaction`` nests (a SAVEPOINT inside an open transaction),
and ``read_snapshot`` gives reads one state of the database while another process writes."""

from __future__ import annotations

import sqlite3

import pytest

from ingest.db import open_connection, read_snapshot, transaction


@pytest.fixture
def conn(tmp_path):
    conn = open_connection(tmp_path / "t.db")
    conn.execute("CREATE TABLE t (v TEXT)")
    yield conn
    conn.close()


def _values(conn) -> list[str]:
    return [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")]


def test_a_failing_inner_block_undoes_only_its_own_writes(conn):
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES ('outer')")
        with pytest.raises(ValueError), transaction(conn):
            conn.execute("INSERT INTO t VALUES ('inner')")
            raise ValueError("refused")
        assert conn.in_transaction  # the outer transaction goes on
        conn.execute("INSERT INTO t VALUES ('after')")
    assert not conn.in_transaction
    assert _values(conn) == ["outer", "after"]


def test_a_failing_outer_block_undoes_the_inner_ones_too(conn):
    with pytest.raises(ValueError), transaction(conn):
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES ('inner')")
        with transaction(conn), transaction(conn):
            conn.execute("INSERT INTO t VALUES ('deeper')")
        raise ValueError("refused")
    assert not conn.in_transaction
    assert _values(conn) == []


def test_a_transaction_of_its_own_commits(conn, tmp_path):
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES ('one')")
    other = open_connection(tmp_path / "t.db")
    try:
        assert _values(other) == ["one"]
    finally:
        other.close()


def test_a_read_snapshot_does_not_see_a_write_made_meanwhile(conn, tmp_path):
    conn.execute("INSERT INTO t VALUES ('before')")
    writer = open_connection(tmp_path / "t.db")
    try:
        with read_snapshot(conn):
            assert _values(conn) == ["before"]
            with transaction(writer):  # WAL: the writer is not blocked by the reader
                writer.execute("INSERT INTO t VALUES ('meanwhile')")
            assert _values(conn) == ["before"]
        assert _values(conn) == ["before", "meanwhile"]
    finally:
        writer.close()


def test_a_trigger_that_rolls_everything_back_raises_its_own_error(conn):
    """RAISE(ROLLBACK) in a trigger ends the whole transaction: the inner block has no
    savepoint left to roll back to, and the error the caller sees is the trigger's."""
    conn.execute(
        "CREATE TRIGGER no_spam BEFORE INSERT ON t WHEN NEW.v = 'spam' "
        "BEGIN SELECT RAISE(ROLLBACK, 'no spam here'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="no spam here"), transaction(conn):
        conn.execute("INSERT INTO t VALUES ('outer')")
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES ('spam')")
    assert not conn.in_transaction
    assert _values(conn) == []
    with transaction(conn):  # the connection goes on
        conn.execute("INSERT INTO t VALUES ('next')")
    assert _values(conn) == ["next"]


def test_a_commit_refused_as_busy_is_rolled_back(tmp_path):
    """A COMMIT that cannot get the lock (a reader holds it: rollback journal, not WAL) raises,
    and the writer's connection is not left inside the transaction."""
    path = tmp_path / "busy.db"
    writer = open_connection(path)
    writer.execute("PRAGMA journal_mode = DELETE")
    writer.execute("CREATE TABLE t (v TEXT)")
    writer.execute("PRAGMA busy_timeout = 50")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # holds a SHARED lock until it ends
    with pytest.raises(sqlite3.OperationalError, match="locked"), transaction(writer):
        writer.execute("INSERT INTO t VALUES ('lost')")
    assert not writer.in_transaction
    reader.execute("COMMIT")
    assert _values(writer) == []
    with transaction(writer):
        writer.execute("INSERT INTO t VALUES ('kept')")
    assert _values(reader) == ["kept"]
