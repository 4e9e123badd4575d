"""What a request reads: the config and roster (reloaded when their files change, like the CLI
re-reads them on every run) and a database connection of its own."""

from __future__ import annotations

import sqlite3
import threading

from flask import g, has_request_context

from ingest.config import Config, load_config
from reconcile.status_cache import file_fingerprint


class Sources:
    """The config file named at start, and what it names, loaded once per change."""

    def __init__(self, config_path):
        self.config_path = config_path
        self._lock = threading.Lock()
        self._config: tuple[str, Config] | None = None
        self._roster: tuple[str, object] | None = None
        self._known: dict[str, tuple[str, object]] = {}

    def config(self) -> Config:
        """The config, looked at once per request (re-read when the file changed)."""
        if has_request_context() and "config" in g:
            return g.config
        with self._lock:
            fp = file_fingerprint(self.config_path)
            if self._config is None or self._config[0] != fp:
                self._config = (fp, load_config(self.config_path))
            config = self._config[1]
        if has_request_context():
            g.config = config
        return config

    def roster(self):
        from reconcile.roster import load_roster

        path = self.config().roster.path
        with self._lock:
            fp = f"{path}:{file_fingerprint(path)}"
            if self._roster is None or self._roster[0] != fp:
                self._roster = (fp, load_roster(path))
            return self._roster[1]

    def connection(self) -> sqlite3.Connection:
        """This request's connection (closed when the request ends)."""
        if "conn" not in g:
            from ingest.db import open_connection

            g.conn = open_connection(self.config().storage.db)
        return g.conn

    def rows(self) -> list[dict]:
        """The status rows, exactly as `mailroll status --json` concludes them (read-only: shared
        by the requests until the data, roster or config change)."""
        if "rows" not in g:
            g.rows = self._current("rows", self._refreshed)
        return g.rows

    def progress(self):
        """The day-by-day progress series (reconcile.progress), for the current rows."""
        from reconcile.progress import progress_series

        rows = self.rows()
        return self._current("progress", lambda: progress_series(self.connection(), rows, self.config()))

    def messages(self) -> list[dict]:
        """Every message with its disposition (`mailroll messages --json`'s rows), read-only."""
        from reconcile.messages import message_rows

        return self._current(
            "messages", lambda: message_rows(self.connection(), self.roster(), self.config())
        )

    def messages_json(self) -> str:
        """`mailroll messages --json`, the same text."""
        from reconcile.status_cache import json_text

        return self._current("messages_json", lambda: json_text(self.messages()))

    def stats(self) -> dict:
        """The statistics (reconcile.stats.collect) of the current rows."""
        from reconcile.stats import collect

        rows = self.rows()
        return self._current("stats", lambda: collect(self.connection(), rows, self.config()))

    def _refreshed(self) -> list[dict]:
        from reconcile.status_cache import refresh

        return refresh(self.connection(), self.roster(), self.config())

    def _current(self, what: str, compute):
        """``compute()``, or what it gave before if the status cache's fingerprint (data version,
        roster and config files) is unchanged since: one query instead of thousands of rows."""
        from reconcile.status_cache import fingerprint

        conn, config = self.connection(), self.config()
        before = fingerprint(conn, config)
        with self._lock:
            known = self._known.get(what)
        if known is not None and known[0] == before:
            return known[1]
        value = compute()
        current = conn.execute(
            "SELECT value FROM reconcile_state WHERE key = 'status_fingerprint'"
        ).fetchone()
        after = fingerprint(conn, config)
        if current and current[0] == after:  # what was computed is what the cache says now
            with self._lock:
                self._known[what] = (after, value)
        return value


def close_connection(_exc=None) -> None:
    conn = g.pop("conn", None)
    if conn is not None:
        conn.close()
