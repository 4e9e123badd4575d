"""Receipts: a reply to each unit's message saying what arrived, how it checked, what is missing.

A receipt answers one message (``outbox.answers``; at most one per message, enforced by the
``outbox_receipt_once`` index) attributed to a roster unit. It is threaded (``In-Reply-To`` and
``References`` = the message's Message-ID) but its subject is ours, never the sender's text:
"回执：<campaign name>材料".

Who gets it (the mailbox's address is public: a stranger must not be able to use mailroll to
mail anyone, nor learn what a unit sent; docs/RECONCILE.md "Sender trust"):

* the sender, only when its trust is ``registered`` (From is a roster address of the unit) or
  ``domain`` (From is in the unit's own domain; the roster addresses are then copied, Cc). The
  From address is used, never a Reply-To (anyone can write one);
* otherwise (``named``, ``thread``, ``staff``) the unit's roster addresses only, and the receipt
  says from which address the material came ("以下材料由 someone@qq.com 代为报送"), so a unit
  learns when someone sends on its behalf, and whether that waits for staff review.

An address with a control character, a line or paragraph separator (U+2028/U+2029) or other
white space is never a recipient (``compose.valid_address``): it is left out, and a receipt
left with nobody to go to is not sent; the batch goes on. File names in the receipt are
shortened and stripped of control and format characters (``display_name``).

It lists the files received (name, kind, check result with the reason, in Chinese), the unit's
state for every item as of the moment the receipt is sent and what is still needed.

Time: everything is judged as of ``now`` (``receipts --now T``, ``MAILROLL_FAKE_NOW``, else
the clock): only messages received up to ``now`` are answered, and the unit's state in a
receipt counts only messages received up to ``now``.

Never answered (the reason is logged):

* automatic mail: ``Auto-Submitted`` other than ``no``; ``Precedence`` bulk/junk/list;
  ``List-Id``; ``X-Autoreply``/``X-Autorespond``; an empty Return-Path (``<>``);
  ``multipart/report`` (bounces, read receipts); From ``MAILER-DAEMON``, ``postmaster``,
  ``noreply``...; out-of-office subjects ("自动回复", "Automatic reply", ...);
* our own mail: ``X-Mailroll`` header, our Message-ID form, or our own From address;
* a reply to one of our receipts that carries no file (a "thank you" must not start a
  ping-pong);
* the loop and abuse guard, counting every recipient (To and Cc): more than
  ``reminders.receipts_per_day`` receipts to the same address within 24 hours, and more than
  ``reminders.receipts_per_hour`` recipients in all within an hour (the rest wait, in order,
  for the next run once the hour has room);
* messages older than ``reminders.receipts_max_age`` (so that starting mailroll on a mailbox
  with weeks of history does not answer all of it), duplicates and failed messages.

Receipts wait for the end of quiet hours like reminders: a unit that writes at 23:00 gets its
receipt at 08:00. Nothing is sent unless ``reminders.receipts`` is true.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from reconcile.attribute import DOMAIN, REGISTERED
from reconcile.i18n import N_, zh
from reconcile.outgoing import outbox
from reconcile.outgoing.compose import is_our_message_id, render, valid_address
from reconcile.outgoing.reminders import (
    duration_text,
    format_deadline,
    in_quiet_hours,
    zh_reason,
)
from reconcile.outgoing.smtp import Mailer
from reconcile.words import PART_KINDS

log = logging.getLogger(__name__)

NO_REPLY_LOCALS = re.compile(
    r"^(mailer-?daemon|mail-daemon|postmaster|no-?reply|do-?not-?reply|noreply\..*|bounces?|"
    r"notification|notifications|auto-?reply|system)$",
    re.I,
)
AUTO_SUBJECT = re.compile(
    r"^\s*(自动回复|自动答复|自动应答|auto(matic)?[ -]?reply|auto(matic)?[ -]?response|autoreply|"
    r"out of (the )?office|abwesenheit|absence|vacation|休假)",
    re.I,
)
NAME_MAX = 60  # characters of a file name shown in a receipt
REFERENCES_MAX = 10  # the original's References carried over (the latest ones)
_MESSAGE_ID = re.compile(r"[^\s<>@]+@[^\s<>@]+", re.ASCII)


def auto_reason(
    config,
    from_addr: str | None,
    subject: str | None,
    message_id: str | None,
    headers: dict,
) -> str | None:
    """Why this message must get no automatic answer; None if it may."""
    h = {str(k).lower().replace("-", "_"): v for k, v in headers.items()}
    auto = str(h.get("auto_submitted") or "").strip().lower()
    if auto and auto != "no":
        return f"it is automatic mail (Auto-Submitted: {auto})"
    prec = str(h.get("precedence") or "").strip().lower()
    if prec in ("bulk", "junk", "list", "auto_reply"):
        return f"it is bulk or list mail (Precedence: {prec})"
    if h.get("list_id"):
        return "it came through a mailing list (List-Id)"
    for key in ("x_autoreply", "x_autorespond"):
        if h.get(key):
            return f"it is an auto-reply ({key.replace('_', '-').title()})"
    if h.get("x_mailroll"):
        return "it is mail mailroll sent itself"
    rp = h.get("return_path")
    if rp is not None and str(rp).strip() in ("", "<>"):
        return "it has an empty Return-Path (a bounce or other automatic mail)"
    ctype = str(h.get("content_type") or "").lower()
    if ctype.startswith("multipart/report"):
        return "it is a delivery or read report (multipart/report)"
    addr = (from_addr or "").lower()
    local = addr.split("@", 1)[0]
    if NO_REPLY_LOCALS.match(local):
        return f"it comes from {addr}, which does not read replies"
    if addr and addr == config.smtp.from_addr.lower():
        return "it comes from our own address"
    if is_our_message_id(message_id):
        return "it is mail mailroll sent itself (its Message-ID is ours)"
    if subject and AUTO_SUBJECT.search(subject):
        return f"its subject says it is an auto-reply ({subject[:40]})"
    return None


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


def display_name(name: str, limit: int = NAME_MAX) -> str:
    """A file name as a receipt shows it: no control, format (bidi) or separator characters,
    white space collapsed, at most ``limit`` characters (the end, with the extension, kept)."""
    kept = "".join(
        " " if unicodedata.category(ch) in ("Zs", "Zl", "Zp") or ch in "\t\r\n" else ch
        for ch in name
        if unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs", "Cn") or ch in "\t\r\n"
    )
    kept = " ".join(kept.split())
    if len(kept) > limit:
        tail = min(15, limit // 3)
        kept = kept[: limit - tail - 1] + "…" + kept[-tail:]
    return kept or zh(N_("(unnamed file)"))


def recipients(unit, from_addr: str | None, trust: str | None) -> tuple[list[str], list[str], str | None]:
    """(To, Cc, the sender to name in the receipt or None).

    The sender gets the receipt only when it is registered (or in the unit's own domain: the
    roster addresses then get a copy); anyone else's material is reported to the roster
    addresses, naming the address it came from."""
    roster = [a for a in dict.fromkeys(e.strip().lower() for e in unit.emails) if valid_address(a)][:3]
    sender = (from_addr or "").strip().lower()
    if trust in (REGISTERED, DOMAIN) and valid_address(sender):
        return [sender], ([] if sender in roster else roster), None
    return roster, [], display_name(sender, 120) if sender else None


def _receipts_this_hour(conn: sqlite3.Connection, now: datetime) -> int:
    """Recipients (To and Cc) of the receipts made in the hour up to ``now``."""
    since = (now - timedelta(hours=1)).astimezone(UTC).isoformat(timespec="seconds")
    row = conn.execute(
        "SELECT coalesce(sum(json_array_length(to_addrs)), 0) FROM outbox "
        "WHERE kind = 'receipt' AND created_at >= ? AND status != 'deferred'",
        (since,),
    ).fetchone()
    return int(row[0])


def _receipts_today(conn: sqlite3.Connection, address: str, now: datetime) -> int:
    since = (now - timedelta(hours=24)).astimezone(UTC).isoformat(timespec="seconds")
    return conn.execute(
        "SELECT count(*) FROM outbox WHERE kind = 'receipt' AND created_at >= ? AND status != 'deferred' "
        "AND EXISTS (SELECT 1 FROM json_each(outbox.to_addrs) WHERE lower(value) = ?)",
        (since, address),
    ).fetchone()[0]


def pending(conn: sqlite3.Connection, config, now: datetime) -> list[tuple[dict, str | None]]:
    """Messages from units received up to ``now`` that have no receipt yet (or a deferred
    one), with the reason not to answer each (None: answer it)."""
    since = (now - config.reminders.receipts_max_age).astimezone(UTC).isoformat(timespec="seconds")
    until = now.astimezone(UTC).isoformat(timespec="seconds")
    rows = conn.execute(
        "SELECT m.id, m.message_id, m.from_addr, m.reply_to, m.subject, m.headers, m.received_at, a.unit, a.trust, "
        "  (SELECT count(*) FROM parts p WHERE p.message = m.id) + "
        "  (SELECT count(*) FROM links l WHERE l.message = m.id) AS files "
        "FROM messages m JOIN attributions a ON a.message = m.id "
        "WHERE m.status = 'recorded' AND a.unit IS NOT NULL AND a.campaign = ? "
        "AND m.received_at >= ? AND m.received_at <= ? "
        "AND m.id NOT IN (SELECT message FROM bounces) "
        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.kind = 'receipt' AND o.answers = m.id "
        "                AND o.status != 'deferred') "
        "ORDER BY m.received_at, m.id",
        (config.campaign.id, since, until),
    ).fetchall()
    keys = (
        "id",
        "message_id",
        "from_addr",
        "reply_to",
        "subject",
        "headers",
        "received_at",
        "unit",
        "trust",
        "files",
    )
    out = []
    for r in rows:
        row = dict(zip(keys, r, strict=True))
        try:
            row["headers"] = json.loads(row["headers"]) if row["headers"] else {}
        except ValueError:
            row["headers"] = {}
        if not isinstance(row["headers"], dict):
            row["headers"] = {}
        reason = auto_reason(config, row["from_addr"], row["subject"], row["message_id"], row["headers"])
        if reason is None and not row["files"]:
            irt = row["headers"].get("in_reply_to")
            if irt and is_our_message_id(str(irt)):
                reason = "it answers one of our mails and carries no file"
        out.append((row, reason))
    return out


def _files(conn: sqlite3.Connection, config, message: int) -> list[dict]:
    from reconcile.judge import judge_link, judge_part

    out = []
    for r in conn.execute(
        "SELECT id, location, filename, kind, facts, error, origin FROM parts WHERE message = ? ORDER BY seq",
        (message,),
    ):
        part = dict(zip(("id", "location", "filename", "kind", "facts", "error", "origin"), r, strict=True))
        kind = part["kind"] or "other"
        item = config.campaign.item_for_file(kind, part["filename"])
        if item is not None:
            j = judge_part(part, config, item)
            ok, reason, warnings = (
                j.state == "ok",
                j.reason_zh or "",
                list(j.warnings_zh),
            )
            verdict = zh(N_("passes")) if ok else zh(N_("a problem — {reason}")).format(reason=reason)
        else:  # not one of the items asked for: received, nothing to judge
            ok, reason, warnings = part["error"] is None, part["error"], []
            verdict = zh(N_("received")) if ok else zh(N_("cannot be read — {reason}")).format(reason=reason)
        out.append(
            {
                "name": display_name(part["location"] or part["filename"] or ""),
                "kind": kind,
                "kind_label": item.label if item is not None else zh(PART_KINDS.get(kind, kind)),
                "ok": ok,
                "verdict": verdict,
                "reason": reason or "",
                "warnings": warnings,
            }
        )
    for r in conn.execute(
        "SELECT url, host, provider, filename, status, error FROM links WHERE message = ? AND part IS NULL",
        (message,),
    ):
        link = dict(zip(("url", "host", "provider", "filename", "status", "error"), r, strict=True))
        j = judge_link(link)
        reason = j.reason_zh or ""
        out.append(
            {
                "name": display_name(link["filename"] or link["url"] or ""),
                "kind": "link",
                "kind_label": zh(N_("download link, {site}")).format(
                    site=display_name(link["provider"] or link["host"] or "")
                ),
                "ok": False,
                "verdict": zh(N_("a problem — {reason}")).format(reason=reason),
                "reason": reason,
                "warnings": [],
            }
        )
    return out


# long: one receipt put together: recipients by sender trust, the files, the state, the text
def build(
    conn: sqlite3.Connection,
    config,
    unit,
    row: dict,
    status: dict | None,
    now: datetime | None = None,
) -> Receipt:
    """The receipt for one message (not yet sent)."""
    items, still = [], []
    for it in config.campaign.items:
        st = (status or {}).get("items", {}).get(it.id, {"state": "missing", "reason": None})
        items.append(
            {
                "item": it.id,
                "label": it.said,
                "state": st.get("state"),
                "reason": zh_reason(st),
            }
        )
        if st.get("state") != "ok" and it.required:
            still.append(it.said)
    deadline = config.campaign.deadline
    if status and status.get("deadline"):
        try:
            deadline = datetime.fromisoformat(status["deadline"])
        except ValueError:
            pass
    received = datetime.fromisoformat(row["received_at"].replace("Z", "+00:00"))
    to, cc, on_behalf = recipients(unit, row["from_addr"], row.get("trust"))
    pending_review = any(p.get("message") == row["id"] for p in (status or {}).get("pending_review") or [])
    videos = [
        i
        for i in config.campaign.items
        if i.kind == "video" and (status or {}).get("items", {}).get(i.id, {}).get("state") != "ok"
    ]
    subj, body = render(
        config,
        "receipt.j2",
        campaign=config.campaign,
        unit=unit,
        on_behalf=on_behalf,
        claims_registered=bool(on_behalf)
        and (row["from_addr"] or "").lower() in {e.lower() for e in unit.emails},
        pending_review=pending_review,
        received_at=format_deadline(received, config),
        files=_files(conn, config, row["id"]),
        items=items,
        still_needed=still,
        deadline=format_deadline(deadline, config),
        deadline_passed=(now or datetime.now(UTC)) > deadline,
        video_needed=bool(videos),
        video_limit=duration_text(int(videos[0].max_duration_s)) if videos else "",
        exempt=bool((status or {}).get("exempt")),
        cc=cc,
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
    )


# long: pick, compose, send and record each receipt, under one rate limit
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
) -> list[Receipt]:
    """Send the receipts due at ``now``. Returns them (with ``status``); call with
    ``lock.send_lock`` held when not a dry run."""
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
    by_id = {u.id: u for u in roster.units}
    out: list[Receipt] = []
    sent_now = 0  # recipients of this run not yet in the outbox (dry run)
    own = mailer is None
    mailer = mailer or Mailer(config.smtp)
    try:
        for row, reason in todo:
            if stop is not None and stop.is_set():
                break
            unit = by_id.get(row["unit"])
            if unit is None:
                continue
            if reason is not None:
                log.info(
                    "no receipt for message #%d from %s: %s",
                    row["id"],
                    row["from_addr"],
                    reason,
                )
                continue
            receipt = build(conn, config, unit, row, by_status.get(unit.id), now)
            everyone = receipt.to + receipt.cc
            if not receipt.to:
                log.info("no receipt for message #%d: no address to send it to", row["id"])
                continue
            over = [a for a in everyone if _receipts_today(conn, a, now) >= config.reminders.receipts_per_day]
            if over:
                log.warning(
                    "no receipt for message #%d: already %d receipts to %s within 24 hours (loop guard)",
                    row["id"],
                    config.reminders.receipts_per_day,
                    ", ".join(over),
                )
                continue
            hour = _receipts_this_hour(conn, now) + sent_now
            if hour + len(everyone) > config.reminders.receipts_per_hour:
                log.warning(
                    "receipts stopped for this hour: %d recipients already, reminders.receipts_per_hour "
                    "is %d; the rest wait for the next run",
                    hour,
                    config.reminders.receipts_per_hour,
                )
                break
            out.append(receipt)
            if dry_run:
                receipt.status = "dry-run"
                sent_now += len(everyone)  # a dry run shows what the guard would let through
                continue
            result = outbox.send_one(
                conn,
                config,
                mailer,
                kind="receipt",
                unit=unit.id,
                answers=row["id"],
                to=receipt.to,
                subject=receipt.subject,
                body=receipt.body,
                now=now,
                cc=receipt.cc,
                in_reply_to=row["message_id"] if _MESSAGE_ID.fullmatch(row["message_id"] or "") else None,
                references=receipt.references,
            )
            receipt.status, receipt.error = result if result else ("already sent", None)
    finally:
        if own:
            mailer.close()
    return out
