"""What a request reads: the config and roster (reloaded when their files change, like the CLI
re-reads them on every run) and a database connection of its own."""

from __future__ import annotations

import sqlite3
import threading

from flask import abort, current_app, g, has_request_context, request

from ingest.config import Config, load_config
from reconcile.i18n import N_, zh
from reconcile.status_cache import file_fingerprint

MEMO_ENTRIES = 64  # what ``memo`` keeps: rows, series, pages per campaign and filter


class Sources:
    """The config file named at start, and what it names, loaded once per change.

    With several campaigns (``[[campaigns]]``) a request is about one of them: ``?campaign=ID``
    (``choose_campaign``, before each request), else the first. ``config()`` and ``roster()`` are
    then that campaign's, as the CLI's ``--campaign ID``; ``any_config()`` / ``any_roster()``
    those for what concerns every campaign (the message list), as the CLI's ``App.any_*``."""

    def __init__(self, config_path, default_campaign: str | None = None):
        self.config_path = config_path
        self.default_campaign = default_campaign  # `mailroll --campaign ID web`
        self._lock = threading.Lock()
        self._config: tuple[str, Config] | None = None
        self._rosters: dict[str, tuple[str, object]] = {}
        self._known: dict[str, tuple[str, object]] = {}

    def all_config(self) -> Config:
        """The config as written (re-read when the file changed), every campaign in it."""
        with self._lock:
            fp = file_fingerprint(self.config_path)
            if self._config is None or self._config[0] != fp:
                self._config = (fp, load_config(self.config_path))
            return self._config[1]

    def several(self) -> bool:
        return len(self.all_config().campaigns) > 1

    def config(self) -> Config:
        """The config with this request's campaign selected, looked at once per request."""
        if has_request_context() and "config" in g:
            return g.config
        config = self.all_config()
        chosen = g.get("campaign_id") if has_request_context() else None
        if chosen and len(config.campaigns) > 1:
            config = config.for_campaign(chosen)
        if has_request_context():
            g.config = config
        return config

    def any_config(self) -> Config:
        """With several campaigns the config as written (messages of every campaign), else config()."""
        return self.all_config() if self.several() else self.config()

    def roster(self):
        """This request's campaign's roster."""
        return self._roster(self.config().roster.path)

    def any_roster(self):
        return self._roster(self.any_config().roster.path)

    def _roster(self, path):
        from reconcile.roster import load_roster

        key = str(path)
        with self._lock:
            fp = file_fingerprint(path)
            known = self._rosters.get(key)
            if known is None or known[0] != fp:
                known = self._rosters[key] = (fp, load_roster(path))
            return known[1]

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
            g.rows = self.memo("rows", self._refreshed)
        return g.rows

    def progress(self):
        """The day-by-day progress series (reconcile.progress), for the current rows."""
        from reconcile.progress import progress_series

        rows = self.rows()
        return self.memo("progress", lambda: progress_series(self.connection(), rows, self.config()))

    def messages(self, campaign: str | None = None) -> list[dict]:
        """Every message with its disposition (`mailroll messages --json`'s rows), read-only; with
        ``campaign``, those of that campaign and those of none known (`--campaign ID messages`)."""
        from reconcile.messages import message_rows

        rows = self.memo(
            "messages", lambda: message_rows(self.connection(), self.any_roster(), self.any_config())
        )
        if campaign is None:
            return rows
        return [r for r in rows if r["campaign"] in (campaign, None)]

    def messages_json(self, campaign: str | None = None) -> str:
        """`mailroll [--campaign ID] messages --json`, the same text."""
        from reconcile.status_cache import json_text

        return self.memo(f"messages_json:{campaign}", lambda: json_text(self.messages(campaign)))

    def stats(self) -> dict:
        """The statistics (reconcile.stats.collect) of the current rows."""
        from reconcile.stats import collect

        rows = self.rows()
        return self.memo("stats", lambda: collect(self.connection(), rows, self.config()))

    def _refreshed(self) -> list[dict]:
        from reconcile.status_cache import refresh

        return refresh(self.connection(), self.roster(), self.config())

    def memo(self, what: str, compute):
        """``compute()``, or what it gave before if the status cache's fingerprint (data version,
        roster and config files) is unchanged since: one query instead of thousands of rows."""
        from reconcile.status_cache import fingerprint, status_key

        conn, config = self.connection(), self.config()
        key = f"{what}@{config.campaign.id}"
        before = fingerprint(conn, config)
        with self._lock:
            known = self._known.get(key)
        if known is not None and known[0] == before:
            return known[1]
        value = compute()
        after = fingerprint(conn, config)
        current = conn.execute(
            "SELECT value FROM reconcile_state WHERE key = ?", [status_key(config.campaign.id)]
        )
        row = current.fetchone()
        # kept when nothing changed while computing, or what was computed is what the status
        # cache says now (refresh stores the fingerprint of the snapshot it read)
        if before == after or (row and row[0] == after):
            with self._lock:
                self._known.pop(key, None)
                self._known[key] = (after, value)
                while len(self._known) > MEMO_ENTRIES:  # the oldest first (filtered pages)
                    del self._known[next(iter(self._known))]
        return value


def choose_campaign() -> None:
    """This request's campaign: ``?campaign=ID`` (an unknown id: 404 naming the ids), else the
    default (``mailroll --campaign ID web``), else the first. Links made with ``url_for`` keep it
    (``keep_campaign``)."""
    sources = current_app.extensions["mailroll"]
    ids = sources.all_config().campaign_ids
    wanted = request.args.get("campaign") or sources.default_campaign
    if wanted is not None and wanted not in ids:
        abort(
            404,
            zh(N_("No campaign “{campaign}”: the ids are {ids}")).format(
                campaign=wanted, ids=zh(", ").join(ids)
            ),
        )
    g.campaign_id = wanted or ids[0]
    g.campaign_given = wanted is not None
    g.pop("config", None)  # the sign-in gate looked at it before the campaign was known


def keep_campaign(endpoint: str, values: dict) -> None:
    """``url_for`` adds ``campaign=ID`` to every link of a page about one of several campaigns."""
    if endpoint == "static" or "campaign" in values or "campaign_id" not in g:
        return
    if current_app.extensions["mailroll"].several():
        values["campaign"] = g.campaign_id


def close_connection(_exc=None) -> None:
    conn = g.pop("conn", None)
    if conn is not None:
        conn.close()
