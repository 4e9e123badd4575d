"""Receipts: a reply to each unit's message saying what arrived, how it checked, what is missing.

A receipt answers one message (``outbox.answers``; at most one per message, enforced by the
``outbox_receipt_once`` index) attributed to a roster unit. It is threaded (``In-Reply-To`` and
``References`` = the message's Message-ID) but its subject is ours, never the sender's text:
"回执：<campaign name>材料". Several messages of one unit waiting at once (to the same
addresses) get one receipt, answering the latest and listing the files of all; the others'
outbox rows say so (``skipped``, "answered together with message #N").

Who gets it (the mailbox's address is public: a stranger must not be able to use mailroll to
mail anyone, nor learn what a unit sent; docs/RECONCILE.md "Sender trust"):

* the sender, only when its trust is ``registered`` (From is a roster address of the unit) or
  ``domain`` (From is in the unit's own domain; the roster addresses are then copied, Cc). The
  From address is used, never a Reply-To (anyone can write one);
* otherwise (``named``, ``thread``, ``staff``) the unit's roster addresses only, and the receipt
  says that the material came from another address, by its domain ("[qq.com]"), so a unit
  learns when someone sends on its behalf, and whether that waits for staff review. A
  stranger's words never reach the unit: reconcile/outgoing/receipt_files.py.

An address with a control character, a line or paragraph separator (U+2028/U+2029) or other
white space is never a recipient (``compose.valid_address``): it is left out, and a receipt
left with nobody to go to is not sent; the batch goes on.

It lists the files received (name, kind, check result with the reason, in Chinese; a sheet's
填报单位), the unit's state for every item as of the moment the receipt is sent and what is
still needed; material that arrived after the deadline is called late (逾期, with both times);
it ends with the office's contacts (``[campaign] contacts``).

Time: everything is judged as of ``now`` (``receipts --now T``, ``MAILROLL_FAKE_NOW``, else
the clock): only messages received up to ``now`` are answered, and the unit's state in a
receipt counts only messages received up to ``now``.

Which messages are answered at all: reconcile/outgoing/answerable.py. Caps, per cause (a
stranger must not be able to keep a unit's own receipt waiting):

* a unit's own mail (trust ``registered``, ``domain``, ``thread`` or ``staff``): its receipt
  always goes, at the SMTP rate, before any receipt for others' mail; only the loop guard
  applies, ``reminders.receipts_per_day`` receipts for the unit's own mail to the same address
  within 24 hours;
* mail of anyone else naming a unit (``named``): ``reminders.receipts_per_hour`` recipients in
  all within an hour (the rest wait, in order, for the next run once the hour has room, and are
  the first to be dropped at ``receipts_max_age``), and ``receipts_per_day`` such receipts to one
  address within 24 hours;
* ``serve`` (``spacing=True``) never sends two mails to one unit within a minute: a receipt
  due sooner waits (``status`` "waiting") and goes, with everything that arrived meanwhile,
  once the minute is over.

Receipts wait for the end of quiet hours like reminders: a unit that writes at 23:00 gets its
receipt at 08:00. Nothing is sent unless ``reminders.receipts`` is true.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from reconcile.attribute import DOMAIN, REGISTERED, TRUSTED
from reconcile.i18n import N_, zh
from reconcile.outgoing import outbox
from reconcile.outgoing.answerable import pending
from reconcile.outgoing.compose import contact_lines, render, valid_address
from reconcile.outgoing.receipt_files import OWN_WORDS, display_name, files_of, our_reason, sender_shown
from reconcile.outgoing.reminders import (
    duration_text,
    format_deadline,
    in_quiet_hours,
    zh_reason,
)
from reconcile.outgoing.smtp import Mailer

log = logging.getLogger(__name__)

REFERENCES_MAX = 10  # the original's References carried over (the latest ones)
SPACING = timedelta(minutes=1)  # serve: never two mails to one unit within this
SPACING_WHY = "the unit got a mail less than a minute ago"
CAP_WHY = "the hourly cap on receipts for mail from other addresses"
_MESSAGE_ID = re.compile(r"[^\s<>@]+@[^\s<>@]+", re.ASCII)
_OWN_SQL = ", ".join(f"'{t}'" for t in sorted(TRUSTED))


@dataclass
class Receipt:
    message: int
    message_id: str | None
    unit: str
    to: list[str]
    subject: str = ""
    body: str = ""
    references: list[str] = field(default_factory=list)
    status: str | None = None
    error: str | None = None
    cc: list[str] = field(default_factory=list)
    together: list[int] = field(default_factory=list)  # earlier messages answered by this receipt

    def as_dict(self) -> dict:
        return {
            "message": self.message,
            "message_id": self.message_id,
            "unit": self.unit,
            "to": self.to,
            "cc": self.cc,
            "subject": self.subject,
            "status": self.status,
            "error": self.error,
        }


def recipients(unit, from_addr: str | None, trust: str | None) -> tuple[list[str], list[str], str | None]:
    """(To, Cc, the sender to name in the receipt or None).

    The sender gets the receipt only when it is registered (or in the unit's own domain: the
    roster addresses then get a copy); anyone else's material is reported to the roster
    addresses, naming the domain it came from (a roster address claimed without proof: in full,
    it is the unit's own)."""
    roster = [a for a in dict.fromkeys(e.strip().lower() for e in unit.emails) if valid_address(a)][:3]
    sender = (from_addr or "").strip().lower()
    if trust in (REGISTERED, DOMAIN) and valid_address(sender):
        return [sender], ([] if sender in roster else roster), None
    if not sender:
        return roster, [], None
    return roster, [], sender if sender in roster else sender_shown(sender)


def _own_clause(own: bool) -> str:
    """SQL: the outbox row ``o`` is a receipt for a unit's own mail (or for anyone else's)."""
    test = "IN" if own else "NOT IN"
    return (
        f"coalesce((SELECT a.trust FROM attributions a WHERE a.message = o.answers), 'named') "
        f"{test} ({_OWN_SQL})"
    )


def receipts_this_hour(conn: sqlite3.Connection, now: datetime, own: bool = False) -> int:
    """Recipients (To and Cc) of the receipts of one cause made in the hour up to ``now``."""
    since = (now - timedelta(hours=1)).astimezone(UTC).isoformat(timespec="seconds")
    row = conn.execute(
        "SELECT coalesce(sum(json_array_length(o.to_addrs)), 0) FROM outbox o "
        f"WHERE o.kind = 'receipt' AND o.created_at >= ? AND o.status NOT IN ('deferred', 'skipped') "
        f"AND {_own_clause(own)}",
        (since,),
    ).fetchone()
    return int(row[0])


def _receipts_today(conn: sqlite3.Connection, address: str, now: datetime, own: bool) -> int:
    since = (now - timedelta(hours=24)).astimezone(UTC).isoformat(timespec="seconds")
    return conn.execute(
        "SELECT count(*) FROM outbox o WHERE o.kind = 'receipt' AND o.created_at >= ? "
        f"AND o.status NOT IN ('deferred', 'skipped') AND {_own_clause(own)} "
        "AND EXISTS (SELECT 1 FROM json_each(o.to_addrs) WHERE lower(value) = ?)",
        (since, address),
    ).fetchone()[0]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def minute_text(value: datetime, config) -> str:
    """'2022-06-25 23:59' in the campaign's time zone."""
    return f"{value.astimezone(config.campaign.timezone):%Y-%m-%d %H:%M}"


def _items(config, status: dict | None) -> tuple[list[dict], list[str]]:
    items, still = [], []
    for it in config.campaign.items:
        st = (status or {}).get("items", {}).get(it.id, {"state": "missing", "reason": None})
        # the counted file by name only when the unit itself sent it (never a stranger's words)
        file = display_name(st["filename"]) if st.get("filename") and st.get("trust") in OWN_WORDS else ""
        items.append(
            {
                "item": it.id,
                "label": it.said,
                "state": st.get("state"),
                "reason": our_reason(zh_reason(st), st.get("trust")),
                "file": file,
            }
        )
        if st.get("state") != "ok" and it.required:
            still.append(it.said)
    return items, still


# long: one receipt put together: recipients by sender trust, the files, the state, the text
def build(
    conn: sqlite3.Connection,
    config,
    unit,
    rows: list[dict],
    status: dict | None,
    now: datetime | None = None,
) -> Receipt:
    """The receipt for a unit's messages ``rows`` (oldest first; it answers the latest)."""
    row = rows[-1]
    items, still = _items(config, status)
    deadline = config.campaign.deadline
    if status and status.get("deadline"):
        try:
            deadline = datetime.fromisoformat(status["deadline"])
        except ValueError:
            pass
    received = _when(row["received_at"])
    to, cc, on_behalf = recipients(unit, row["from_addr"], row.get("trust"))
    ids = {r["id"] for r in rows}
    pending_review = any(p.get("message") in ids for p in (status or {}).get("pending_review") or [])
    videos = [
        i
        for i in config.campaign.items
        if i.kind == "video" and (status or {}).get("items", {}).get(i.id, {}).get("state") != "ok"
    ]
    roster_addresses = {e.lower() for e in unit.emails}
    subj, body = render(
        config,
        "receipt.j2",
        campaign=config.campaign,
        unit=unit,
        on_behalf=on_behalf
        if not on_behalf or on_behalf in roster_addresses
        else zh(N_("an address at {domain}")).format(domain=on_behalf),
        claims_registered=bool(on_behalf) and on_behalf in roster_addresses,
        pending_review=pending_review,
        received_at=format_deadline(received, config),
        files=[f for r in rows for f in files_of(conn, config, r["id"], r.get("trust"), status)],
        items=items,
        still_needed=still,
        deadline=format_deadline(deadline, config),
        deadline_passed=(now or datetime.now(UTC)) > deadline,
        late=received > deadline,
        late_at=minute_text(received, config),
        late_deadline=minute_text(deadline, config),
        video_needed=bool(videos),
        video_limit=duration_text(int(videos[0].max_duration_s)) if videos else "",
        exempt=bool((status or {}).get("exempt")),
        cc=cc,
        contacts=contact_lines(config),
    )
    refs = row["headers"].get("references") or []
    if not isinstance(refs, list):
        refs = str(refs).split()
    refs = [str(r).strip("<>") for r in refs if _MESSAGE_ID.fullmatch(str(r).strip("<>"))]
    return Receipt(
        message=row["id"],
        message_id=row["message_id"],
        unit=unit.id,
        to=to,
        cc=cc,
        subject=subj,
        body=body,
        references=refs[-REFERENCES_MAX:],
        together=[r["id"] for r in rows[:-1]],
    )


def answer_groups(
    todo: list[tuple[dict, str | None]], by_id: dict, say: bool = True
) -> list[tuple[Any, list[dict]]]:
    """The messages to answer, one group per unit, recipients and sender shown, in the order
    of each group's first message (arrival order); automatic mail and the like are logged
    (``say``) and left out."""
    groups: dict[tuple, tuple[Any, list[dict]]] = {}
    for row, reason in todo:
        unit = by_id.get(row["unit"])
        if unit is None:
            continue
        if reason is not None:
            if say:
                log.info("no receipt for message #%d from %s: %s", row["id"], row["from_addr"], reason)
            continue
        to, cc, shown = recipients(unit, row["from_addr"], row.get("trust"))
        # (material sent on a unit's behalf is never folded into a receipt for its own mail)
        groups.setdefault((unit.id, tuple(to), tuple(cc), shown), (unit, []))[1].append(row)
    return list(groups.values())


class _Caps:
    """The guards of one run, per cause (see the module's docstring)."""

    def __init__(self, conn: sqlite3.Connection, config, now: datetime, spacing: bool):
        self.conn, self.config, self.now, self.spacing = conn, config, now, spacing
        self.strangers_now = 0  # recipients of this run's strangers' receipts (dry run: not in the outbox)
        self.said_full = False

    def why_not(self, unit: str, everyone: list[str], own: bool, now: datetime) -> tuple[str, str] | None:
        """("skip" | "wait", why) when a receipt to ``unit`` for ``everyone`` (To and Cc) must
        not go now; None when it may."""
        r = self.config.reminders
        over = [a for a in everyone if _receipts_today(self.conn, a, now, own) >= r.receipts_per_day]
        if over:
            return "skip", (
                f"already {r.receipts_per_day} receipts to {', '.join(over)} within 24 hours (loop guard)"
            )
        if not own:
            hour = receipts_this_hour(self.conn, now) + self.strangers_now
            if hour + len(everyone) > r.receipts_per_hour:
                if not self.said_full:
                    self.said_full = True
                    log.warning(
                        "receipts for mail from other addresses than the units' own stopped for this hour: "
                        "%d recipients already, reminders.receipts_per_hour is %d; they wait for the next run",
                        hour,
                        r.receipts_per_hour,
                    )
                return "wait", CAP_WHY
        if self.spacing:
            last = outbox.last_mail(self.conn, self.config, unit)
            if last is not None and timedelta(0) <= now - last < SPACING:
                return "wait", SPACING_WHY
        return None


# long: pick, compose, send and record each receipt, under the caps of its cause
def run_receipts(
    conn: sqlite3.Connection,
    roster,
    config,
    now: datetime,
    *,
    dry_run: bool = False,
    statuses: list[dict] | None = None,
    mailer: Mailer | None = None,
    stop=None,
    spacing: bool = False,
    clock=None,
) -> list[Receipt]:
    """Send the receipts due at ``now``. Returns them (with ``status``: sent, deferred, ...;
    "waiting" when a cap or the one-minute spacing keeps one for a later run). Call with
    ``lock.send_lock`` held when not a dry run. ``clock``: each mail is recorded at its own
    time (``serve``, whose runs may wait on the SMTP rate limit)."""
    if not config.reminders.receipts or in_quiet_hours(config, now):
        return []
    from reconcile.outgoing.bounces import record_bounces
    from reconcile.outgoing.reminders import statuses_as_of

    if statuses is None:  # first: it may attribute messages afresh
        statuses = statuses_as_of(conn, roster, config, now)
    if not dry_run:
        record_bounces(conn, config)  # then bounces: never answered, never submissions
    todo = pending(conn, config, now)
    if not todo:
        return []
    by_status = {s["id"]: s for s in statuses}
    caps = _Caps(conn, config, now, spacing)
    out: list[Receipt] = []
    own_mailer = mailer is None
    mailer = mailer or Mailer(config.smtp)
    try:
        groups = answer_groups(todo, {u.id: u for u in roster.units})
        # units first: receipts for their own mail never wait behind strangers' (each in arrival order)
        groups.sort(key=lambda g: not any(r.get("trust") in TRUSTED for r in g[1]))
        for unit, rows in groups:
            if stop is not None and stop.is_set():
                break
            at = clock.now() if clock is not None else now
            to, cc, _shown = recipients(unit, rows[-1]["from_addr"], rows[-1].get("trust"))
            if not to:
                log.info("no receipt for message #%d: no address to send it to", rows[-1]["id"])
                continue
            own = any(r.get("trust") in TRUSTED for r in rows)
            blocked = caps.why_not(unit.id, to + cc, own, at)
            if blocked is not None and blocked[0] == "skip":
                log.warning("no receipt for message #%d: %s", rows[-1]["id"], blocked[1])
                continue
            if blocked is not None:  # (not composed: it may wait a while)
                out.append(Receipt(rows[-1]["id"], rows[-1]["message_id"], unit.id, to, cc=cc))
                out[-1].status, out[-1].error = "waiting", blocked[1]
                continue
            receipt = build(conn, config, unit, rows, by_status.get(unit.id), at)
            out.append(receipt)
            if dry_run:
                receipt.status = "dry-run"
                caps.strangers_now += 0 if own else len(receipt.to + receipt.cc)
                continue
            _send(conn, config, mailer, receipt, rows[-1], at)
    finally:
        if own_mailer:
            mailer.close()
    return out


def _send(
    conn: sqlite3.Connection, config, mailer: Mailer, receipt: Receipt, row: dict, now: datetime
) -> None:
    result = outbox.send_one(
        conn,
        config,
        mailer,
        kind="receipt",
        unit=receipt.unit,
        answers=receipt.message,
        to=receipt.to,
        subject=receipt.subject,
        body=receipt.body,
        now=now,
        cc=receipt.cc,
        in_reply_to=row["message_id"] if _MESSAGE_ID.fullmatch(row["message_id"] or "") else None,
        references=receipt.references,
    )
    receipt.status, receipt.error = result if result else ("already sent", None)
    if receipt.status != "deferred":  # the earlier messages are answered by this one
        for message in receipt.together:
            outbox.answered_together(conn, config, receipt, message, now)
