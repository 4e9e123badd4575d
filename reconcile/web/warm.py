"""Keeping the status cache current in the background, so that the first page after new mail
does not pay for recomputing the status of every unit (about a second at 2,000 units).

A daemon thread of `mailroll web` looks every few seconds whether each campaign's cached status
rows (``reconcile.status_cache``) still match the data, roster and config, and if not refreshes
them with the same ``refresh`` the CLI uses (no second implementation of status). A request
arriving meanwhile computes them itself, as before; nothing here changes what a page says.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("mailroll.web")

INTERVAL_S = 3.0


def refresh_stale(config_path) -> int:
    """Refresh the cached rows of every campaign whose cache is stale; returns how many."""
    from ingest.config import load_config
    from ingest.db import open_connection
    from reconcile.roster import load_roster
    from reconcile.status_cache import cached_rows, refresh

    config = load_config(config_path)
    conn = open_connection(config.storage.db)
    done = 0
    try:
        for campaign in config.each_campaign():
            if cached_rows(conn, campaign) is None:
                refresh(conn, load_roster(campaign.roster.path), campaign)
                done += 1
    finally:
        conn.close()
    return done


def keep_warm(config_path, stop: threading.Event, interval_s: float = INTERVAL_S) -> threading.Thread:
    """Start the thread; it ends when ``stop`` is set. Errors are logged and tried again later
    (a config being edited, a roster being saved): the pages say what is wrong."""

    def run() -> None:
        while not stop.wait(interval_s):
            try:
                refresh_stale(config_path)
            except Exception as e:  # noqa: BLE001 - logged; the next round tries again
                log.debug("status not refreshed in the background: %s", e)

    thread = threading.Thread(target=run, name="mailroll-web-warm", daemon=True)
    thread.start()
    return thread
