"""The service's heartbeat as staff see it: when the last poll was and whether it is overdue."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from reconcile.i18n import N_
from reconcile.status import iso_text, stored_time

# why mail waits to go out (reconcile/outgoing/queue.py counts them)
WAITING_REASONS = {
    "queued": N_("in the queue at the SMTP rate"),
    "quiet_hours": N_("held until the quiet hours end"),
    "strangers_cap": N_("for mail from other addresses than the units' own: over the hourly cap"),
    "smtp": N_("not taken by the SMTP server for now: tried again"),
}


def heartbeat(conn: sqlite3.Connection, config, now: datetime | None = None) -> dict | None:
    """The service's last poll (service_state 'last_poll'), with its age and whether it is stale."""
    try:
        rows = dict(
            conn.execute(
                "SELECT key, value FROM service_state WHERE key IN ('last_poll', 'last_error', 'waiting')"
            ).fetchall()
        )
    except sqlite3.Error:
        return None
    polled = poll_age(rows.get("last_poll"), config, now or datetime.now(UTC))
    if polled is None:
        return None
    last, age, stale = polled
    return {
        "last_poll": iso_text(last),
        "age_s": age,
        "stale": stale,
        "last_error": rows.get("last_error") or None,
        "waiting": _waiting_said(rows.get("waiting")),
    }


def _waiting_said(text: str | None) -> list[str]:
    """The sender's last count of mails waiting, in Chinese: ["3 封按 SMTP 发信速率排队", ...]."""
    import json

    from reconcile.i18n import zh

    try:
        counts = json.loads(text) if text else {}
        why = counts.get("why") or {}
        return [f"{int(n)} {zh(WAITING_REASONS[k])}" for k, n in why.items() if k in WAITING_REASONS and n]
    except (ValueError, TypeError, AttributeError):
        return []


def poll_age(last_poll: str | None, config, now: datetime) -> tuple[datetime, float, bool] | None:
    """The last poll's time, its age in seconds, and whether it is stale (older than
    ``service.heartbeat_stale_s``, by default three poll intervals); None when there is none."""
    if not last_poll:
        return None
    try:
        last = stored_time(last_poll)
    except ValueError:
        return None
    age = (now - last).total_seconds()
    return last, age, age > (config.service.heartbeat_stale_s or 3 * config.service.poll_every_s)


def ago(seconds: float) -> str:
    """'2 minutes ago' (in the current language)."""
    from reconcile.i18n import gettext as _

    s = int(max(0, seconds))
    if s < 5:
        return _("just now")
    if s < 90:
        return _("{n} seconds ago").format(n=s)
    if s < 90 * 60:
        return _("{n} minutes ago").format(n=round(s / 60))
    if s < 36 * 3600:
        return _("{n} hours ago").format(n=round(s / 3600))
    return _("{n} days ago").format(n=round(s / 86400))


# ---------------------------------------------------------------------------------- one unit
