"""How many mails wait to go out, and why (``serve --check``, the web overview).

Counted as the sender would see them now, per campaign:

* ``quiet_hours``: receipts due, held until the quiet hours end;
* ``strangers_cap``: receipts for mail from other addresses than the units' own, beyond what
  ``reminders.receipts_per_hour`` still lets through this hour;
* ``smtp``: mails the SMTP server did not take for now (``deferred``), tried again on the
  next run;
* ``queued``: the rest, waiting for their turn at the SMTP rate (``smtp.per_minute``).

One receipt per unit and recipients (several messages waiting are answered together).
``serve``'s sender stores the counts after every run (``service_state`` "waiting"): the web
overview shows them from there; ``serve --check`` counts afresh.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from reconcile.attribute import TRUSTED
from reconcile.heartbeat import WAITING_REASONS as REASONS


def waiting(conn: sqlite3.Connection, config, by_campaign: dict, now: datetime) -> dict:
    """``{"total": N, "why": {reason: n}}`` over every campaign (``by_campaign``: campaign id ->
    roster). Only reasons with mail waiting are listed."""
    from reconcile.outgoing.answerable import pending
    from reconcile.outgoing.receipts import answer_groups, receipts_this_hour
    from reconcile.outgoing.reminders import in_quiet_hours

    why = dict.fromkeys(REASONS, 0)
    deferred = {
        r[0]
        for r in conn.execute("SELECT answers FROM outbox WHERE kind = 'receipt' AND status = 'deferred'")
    }
    why["smtp"] += conn.execute(
        "SELECT count(*) FROM outbox WHERE kind != 'receipt' AND status = 'deferred'"
    ).fetchone()[0]
    for campaign in config.each_campaign():
        if not campaign.reminders.receipts:
            continue
        roster = by_campaign[campaign.campaign.id]
        groups = answer_groups(pending(conn, campaign, now), {u.id: u for u in roster.units}, say=False)
        room = campaign.reminders.receipts_per_hour - receipts_this_hour(conn, now)
        quiet = in_quiet_hours(campaign, now)
        for _unit, rows in groups:
            own = any(r.get("trust") in TRUSTED for r in rows)
            if quiet:
                why["quiet_hours"] += 1
            elif any(r["id"] in deferred for r in rows):
                why["smtp"] += 1
            elif not own and room <= 0:
                why["strangers_cap"] += 1
            else:
                room -= 0 if own else 1
                why["queued"] += 1
    why = {k: v for k, v in why.items() if v}
    return {"total": sum(why.values()), "why": why}
