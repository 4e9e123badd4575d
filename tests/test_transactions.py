"""One way to write: ``ingest.db.transaction`` nests (a SAVEPOINT inside an open transaction),
and ``read_snapshot`` gives reads one state of the database while another process writes."""

from __future__ import annotations

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
