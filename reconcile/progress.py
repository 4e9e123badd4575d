"""Progress day by day: how many units were complete, incomplete or silent at the end of each day,
and how many messages arrived that day, from the first arrival to the deadline (or the last
arrival, if later). The web page draws it (reconcile/web/chart.py) and the workbook charts it.

The series is today's conclusions traced back, not a replay of history: a unit counts as
complete from the day its last counted item arrived (or a staff decision made it ok), and as
having reported from the day its first message arrived (a unit with nothing counted, e.g. mail
waiting for review, is silent on every day, as the table says). With several campaigns only
the campaign's messages (and those of none) count. A unit that was complete and then sent a
file that failed its check shows as incomplete on every day: what is true now wins. Cheap (one
pass over the status rows and one query), so the page stays fast at thousands of units.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from reconcile.status import stored_time

MAX_DAYS = 120  # a longer campaign shows its last 120 days


@dataclass(frozen=True)
class Day:
    day: date
    complete: int
    incomplete: int
    missing: int
    arrivals: int


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return stored_time(text)
    except ValueError:
        return None


def _completed_at(row: dict) -> datetime | None:
    """When a complete unit's last counted item arrived (or a staff accept made it ok)."""
    times = []
    for item in row["items"].values():
        t = _when(item.get("arrived_at")) or _when((item.get("override") or {}).get("at"))
        if t is None:
            return None
        times.append(t)
    return max(times, default=None)


def progress_series(conn: sqlite3.Connection, rows: list[dict], config) -> list[Day]:
    """One ``Day`` per calendar day (campaign time zone); [] before the first message."""
    tz = config.campaign.timezone
    first_message: dict[str, datetime] = {}
    mine, params = config.campaign_clause("a.campaign")  # this campaign's messages
    for unit, received in conn.execute(
        "SELECT a.unit, MIN(m.received_at) FROM attributions a JOIN messages m ON m.id = a.message "
        f"WHERE a.unit IS NOT NULL AND m.status = 'recorded' AND {mine} GROUP BY a.unit",
        params,
    ):
        t = _when(received)
        if t is not None:
            first_message[unit] = t
    # messages per local day, counted by SQLite (thousands of rows): the zone's offset at the
    # deadline shifts the stored UTC times (campaign zones like Asia/Shanghai keep one offset)
    offset = config.campaign.deadline.astimezone(tz).utcoffset() or timedelta(0)
    shift = f"{int(offset.total_seconds())} seconds"
    arrivals: dict[date, int] = {}
    for day, n in conn.execute(
        "SELECT date(m.received_at, ?), COUNT(*) FROM messages m LEFT JOIN attributions a ON a.message = m.id "
        f"WHERE m.status = 'recorded' AND (a.message IS NULL OR {mine}) GROUP BY 1",
        [shift, *params],
    ):
        if day:
            arrivals[date.fromisoformat(day)] = n
    if not arrivals:
        return []
    complete_on: list[date] = []
    reported_on: list[date] = []
    rows = [r for r in rows if r["state"] != "exempt"]  # not expected to send: never silent
    for r in rows:
        if r["state"] == "missing":  # nothing counts (yet): silent, whatever waits for review
            continue
        started = first_message.get(r["id"])
        done = _completed_at(r) if r["state"] == "complete" else None
        if done is not None:
            complete_on.append(done.astimezone(tz).date())
            started = min(started, done) if started else done
        if started is not None:
            reported_on.append(started.astimezone(tz).date())
    first = min(arrivals)
    last = max(max(arrivals), config.campaign.deadline.astimezone(tz).date())
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    complete_on.sort()
    reported_on.sort()
    days = []
    d = first
    while d <= last:
        complete = bisect_right(complete_on, d)
        reported = bisect_right(reported_on, d)
        days.append(Day(d, complete, reported - complete, len(rows) - reported, arrivals.get(d, 0)))
        d += timedelta(days=1)
    return days
