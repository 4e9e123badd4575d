"""Reminders: which units to remind now, at which stage, and sending them (at most once).

The stages (``before-<d>``, ``after-k``), "only the latest due stage is sent", quiet hours and
recipients are in docs/SERVICE.md ("What it does, and when"). What a unit has sent is judged as
of ``now`` (``remind --now T``), so a preview shows what would be sent then.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconcile.i18n import N_, zh
from reconcile.outgoing import outbox
from reconcile.outgoing.compose import contact_lines, render, valid_address
from reconcile.outgoing.receipt_files import our_reason
from reconcile.outgoing.smtp import Mailer

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- time rules


def in_quiet_hours(config, now: datetime) -> bool:
    """True when ``now`` falls in ``reminders.quiet_hours`` (campaign time zone)."""
    start, end = config.reminders.quiet_start, config.reminders.quiet_end
    if start is None or end is None or start == end:
        return False
    local = now.astimezone(config.campaign.timezone).time().replace(tzinfo=None)
    if start < end:
        return start <= local < end
    return local >= start or local < end  # spans midnight: 21:00-08:00


def quiet_hours_text(config) -> str:
    r = config.reminders
    return f"{r.quiet_start:%H:%M}-{r.quiet_end:%H:%M} {config.campaign.timezone.key}"


def stages(config, deadline: datetime) -> list[tuple[str, datetime, datetime | None]]:
    """Every stage as (name, due from, due until or None), in time order."""
    r = config.reminders
    out: list[tuple[str, datetime, datetime | None]] = []
    for label, d in sorted(zip(r.before_labels, r.before, strict=False), key=lambda x: -x[1]):
        out.append((f"before-{label.strip()}", deadline - d, deadline))
    for k in range(1, max(0, r.after_max) + 1):
        out.append((f"after-{k}", deadline + r.after_grace + (k - 1) * r.after_every, None))
    return sorted(out, key=lambda s: s[1])


def due_stage(config, deadline: datetime, now: datetime) -> str | None:
    """The latest stage due at ``now`` (None before the first, or between deadline and after-1)."""
    current = None
    for name, start, until in stages(config, deadline):
        if start <= now and (until is None or now < until):
            current = name
    return current


# ------------------------------------------------------------------------------- what is due


@dataclass
class Reminder:
    unit: str
    to: list[str]
    stage: str
    missing: list[str]
    invalid: list[str]
    reasons: dict[str, str] = field(default_factory=dict)
    deadline: str = ""
    status: str | None = None  # after sending: sent / deferred / failed / unknown
    error: str | None = None
    subject: str = ""  # filled by ``run_reminders`` (also on a dry run)
    body: str = ""
    folded: str = ""  # why it is folded into the mail the unit just got ("": it goes)

    def contract(self) -> dict:
        """The `remind --json` object (CONTRACT.md)."""
        return {
            "unit": self.unit,
            "to": self.to,
            "stage": self.stage,
            "missing": self.missing,
            "invalid": self.invalid,
        }


def unit_addresses(conn: sqlite3.Connection, unit) -> list[str]:
    """The roster addresses; without any, the addresses of the unit's trusted messages (never a
    sender only ``named``: a stranger must not get a unit's reminders). Invalid ones left out."""
    if unit.emails:
        return [a for a in dict.fromkeys(e.lower() for e in unit.emails) if valid_address(a)]
    rows = conn.execute(
        "SELECT DISTINCT m.from_addr FROM messages m JOIN attributions a ON a.message = m.id "
        "WHERE a.unit = ? AND m.from_addr IS NOT NULL AND a.trust IN ('registered', 'domain', 'thread', 'staff') "
        "ORDER BY m.received_at DESC LIMIT 3",
        (unit.id,),
    )
    return [r[0] for r in rows if valid_address(r[0])]


def _sent_stage(conn: sqlite3.Connection, config, unit: str, stage: str) -> str | None:
    row = outbox.existing(conn, kind="reminder", unit=unit, stage=stage, config=config)
    return row[1] if row else None


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def statuses_as_of(conn: sqlite3.Connection, roster, config, now: datetime) -> list[dict]:
    """Every unit's status as it stood at ``now``: messages received after ``now`` don't count.

    Brings attributions and the status cache up to date first (``status_cache.refresh``); when no
    message arrived after ``now`` (the usual case, real time) the cached rows are the answer,
    else the statuses are computed afresh with ``unit_statuses(..., as_of=now)``.
    """
    from reconcile import status, status_cache

    rows = status_cache.refresh(conn, roster, config)
    latest = conn.execute("SELECT max(received_at) FROM messages WHERE status = 'recorded'").fetchone()[0]
    if latest is None or _ts(latest) <= now:
        return rows
    return status.unit_statuses(conn, roster, config, now=now, as_of=now)


def zh_reason(item: dict) -> str:
    """The reason for an item's state in Chinese (``reason_zh``, for mail to units); the
    English one only if a reason has no Chinese wording (better than no reason at all)."""
    return item.get("reason_zh") or item.get("reason") or ""


def due_reminders(
    conn: sqlite3.Connection, roster, config, now: datetime, statuses: list[dict] | None = None
) -> list[Reminder]:
    """The reminders due at ``now`` and not yet sent (a ``deferred`` one counts as due).

    ``statuses`` default: ``statuses_as_of(now)``."""
    if in_quiet_hours(config, now):
        return []
    if statuses is None:
        statuses = statuses_as_of(conn, roster, config, now)
    return _due(conn, roster, config, now, statuses)


def _deadline_of(row: dict, config) -> datetime:
    text = row.get("deadline")
    if text:
        try:
            return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            pass
    return config.campaign.deadline


def _due(conn: sqlite3.Connection, roster, config, now: datetime, statuses: list[dict]) -> list[Reminder]:
    if in_quiet_hours(config, now):
        return []
    by_id = {u.id: u for u in roster.units}
    receipts_waiting = _receipts_waiting(conn, config, now) & {u.id for u in roster.units if u.emails}
    out: list[Reminder] = []
    for row in statuses:
        unit = by_id.get(row["id"])
        if unit is None or row.get("exempt") or row["state"] == "complete":
            continue
        deadline = _deadline_of(row, config)
        stage = due_stage(config, deadline, now)
        if stage is None:
            continue
        status = _sent_stage(conn, config, unit.id, stage)
        if status is not None and status != "deferred":
            continue
        items = row["items"]
        asked = [i.id for i in config.campaign.items if i.required]
        missing = [i for i in asked if items.get(i, {}).get("state") == "missing"]
        invalid = [i for i in asked if items.get(i, {}).get("state") == "invalid"]
        if not missing and not invalid:
            continue
        to = unit_addresses(conn, unit)
        if not to:
            log.warning("unit %s (%s) has no address to remind: add one to the roster", unit.id, unit.name)
            continue
        reminder = Reminder(
            unit=unit.id,
            to=to,
            stage=stage,
            missing=missing,
            invalid=invalid,
            reasons={i: our_reason(zh_reason(items[i]), items[i].get("trust")) for i in invalid},
            deadline=deadline.isoformat(),
        )
        reminder.folded = _folded(conn, config, unit.id, now, receipts_waiting)
        if reminder.folded != "wait":
            out.append(reminder)
    return out


def _folded(conn: sqlite3.Connection, config, unit: str, now: datetime, receipts_waiting: set[str]) -> str:
    """ "" when the reminder goes; "wait" when a receipt to the unit is waiting (the reminder is
    looked at again once it went); else why it is folded into the mail the unit just got (a
    receipt lists what is still missing): never a second mail within
    ``reminders.min_gap_minutes``."""
    if unit in receipts_waiting:
        return "wait"
    last = outbox.last_mail(conn, config, unit)
    # (a mail recorded "after" now: a preview of another time, not a mail just sent)
    if last is None or not timedelta(minutes=-1) < now - last < timedelta(
        minutes=config.reminders.min_gap_minutes
    ):
        return ""
    local = last.astimezone(config.campaign.timezone)
    return f"folded into the mail sent to the unit at {local:%Y-%m-%d %H:%M} (reminders.min_gap_minutes)"


def _receipts_waiting(conn: sqlite3.Connection, config, now: datetime) -> set[str]:
    """Units with a receipt for their own mail about to go (a message of the last
    ``min_gap_minutes`` not answered yet): they get it first, and the reminder folded into it."""
    if not config.reminders.receipts:
        return set()
    from reconcile.attribute import TRUSTED
    from reconcile.outgoing.answerable import pending

    recent = now - timedelta(minutes=config.reminders.min_gap_minutes)
    return {
        row["unit"]
        for row, reason in pending(conn, config, now)
        if reason is None and row["trust"] in TRUSTED and _ts(row["received_at"]) >= recent
    }


def format_deadline(deadline: datetime, config) -> str:
    local = deadline.astimezone(config.campaign.timezone)
    return zh(N_("{month}/{day}/{year} {time}")).format(
        year=local.year, month=local.month, day=local.day, time=f"{local:%H:%M}"
    )


def render_reminder(config, unit, reminder: Reminder) -> tuple[str, str]:
    deadline = datetime.fromisoformat(reminder.deadline) if reminder.deadline else config.campaign.deadline
    local = deadline.astimezone(config.campaign.timezone)
    said = {i.id: i.said for i in config.campaign.items}
    videos = [
        i for i in config.campaign.items if i.kind == "video" and i.id in reminder.missing + reminder.invalid
    ]
    limit = int(videos[0].max_duration_s) if videos else 0
    return render(
        config,
        "reminder.j2",
        campaign=config.campaign,
        unit=unit,
        stage=reminder.stage,
        after=reminder.stage.startswith("after-"),
        deadline=format_deadline(deadline, config),
        deadline_short=zh(N_("{month}/{day}")).format(month=local.month, day=local.day),
        missing=[{"item": i, "label": said.get(i, i)} for i in reminder.missing],
        invalid=[
            {"item": i, "label": said.get(i, i), "reason": reminder.reasons.get(i, "")}
            for i in reminder.invalid
        ],
        video_needed=bool(videos),
        video_limit=duration_text(limit),
        contacts=contact_lines(config),
    )


def duration_text(seconds: int) -> str:
    m, s = divmod(seconds, 60)
    if not m:
        return zh(N_("{s} s")).format(s=s)
    return zh(N_("{m} min")).format(m=m) + (zh(N_("{s} s")).format(s=s) if s else "")


def _skip_overtaken(conn: sqlite3.Connection, config, reminder: Reminder) -> None:
    """Deferred reminders of earlier stages will never go: the current stage replaces them."""
    clause, params = config.campaign_clause()
    conn.execute(
        "UPDATE outbox SET status = 'skipped', error = coalesce(error || '; ', '') || ? "
        f"WHERE kind = 'reminder' AND unit = ? AND stage != ? AND status = 'deferred' AND {clause}",
        (f"not sent: overtaken by {reminder.stage}", reminder.unit, reminder.stage, *params),
    )


def run_reminders(
    conn: sqlite3.Connection,
    roster,
    config,
    now: datetime,
    *,
    dry_run: bool = False,
    statuses: list[dict] | None = None,
    mailer: Mailer | None = None,
    stop=None,
) -> list[Reminder]:
    """Work out the reminders due at ``now`` and (unless ``dry_run``) send them.

    Returns the reminders due, each with ``status`` set after sending. Call with
    ``lock.send_lock`` held when not a dry run.
    """
    due = due_reminders(conn, roster, config, now, statuses)
    by_id = {u.id: u for u in roster.units}
    folded = [r for r in due if r.folded]
    due = [r for r in due if not r.folded]
    for r in due:
        r.subject, r.body = render_reminder(config, by_id[r.unit], r)
    if dry_run:
        return due
    for r in folded:
        _skip_overtaken(conn, config, r)
        outbox.record_folded(conn, config, r, now)
        log.info("reminder %s to %s not sent: %s", r.stage, r.unit, r.folded)
    if not due:
        return due

    def send(m: Mailer, r: Reminder):
        _skip_overtaken(conn, config, r)
        return outbox.send_one(
            conn,
            config,
            m,
            kind="reminder",
            unit=r.unit,
            stage=r.stage,
            to=r.to,
            subject=r.subject,
            body=r.body,
            now=now,
        )

    outbox.send_each(config, mailer, due, send, stop)
    return due
