"""The notice: the campaign's call for material, sent by mailroll to every roster unit.

``mailroll notify`` renders ``notice.j2`` for each unit (the campaign's notice text from the
file named by the campaign's ``notice`` key, the deadline, the items asked for) with the blank
form of each ``sheet`` item attached (.xlsx, as `mailroll template` writes it), and sends it
through the outbox: at most once per campaign and unit (``outbox_notice_once``), across
restarts, each with its own Message-ID. A unit's reply in that thread, also from a personal
mailbox, is that unit's material for that campaign (reconcile/scope.py, method ``thread``).
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconcile.outgoing import outbox
from reconcile.outgoing.compose import render
from reconcile.outgoing.reminders import duration_text, format_deadline, unit_addresses
from reconcile.outgoing.smtp import Mailer

log = logging.getLogger(__name__)


@dataclass
class Notice:
    unit: str
    to: list[str]
    subject: str
    body: str
    status: str | None = None  # after sending: sent / deferred / failed / unknown; dry-run
    error: str | None = None

    def contract(self) -> dict:
        return {
            "unit": self.unit,
            "to": self.to,
            "subject": self.subject,
            "status": self.status,
            "error": self.error,
        }


def blank_forms(config) -> list[tuple[str, bytes]]:
    """The blank form of each sheet item: (file name, .xlsx bytes)."""
    from ingest.checks.sheet_template import write_xlsx

    campaign = config.campaign
    out = []
    with tempfile.TemporaryDirectory(prefix="mailroll-form-") as tmp:
        for item in campaign.items:
            if item.kind != "sheet" or item.sheet is None:
                continue
            title = f"{campaign.name}{item.sheet.title}"
            path = write_xlsx(Path(tmp) / f"{item.id}.xlsx", item.sheet, title=title)
            out.append((f"{title}.xlsx", path.read_bytes()))
    return out


def notice_text(config) -> str:
    path = config.campaign.notice
    return path.read_text(encoding="utf-8-sig").strip() if path else ""


def render_notice(config, unit, forms: list[str], text: str) -> tuple[str, str]:
    campaign = config.campaign
    items = [
        {
            "id": i.id,
            "label": i.said,
            "kind": i.kind,
            "required": i.required,
            "min_count": i.min_count,
            "limit": duration_text(int(i.max_duration_s)),
        }
        for i in campaign.items
    ]
    return render(
        config,
        "notice.j2",
        campaign=campaign,
        unit=unit,
        text=text,
        deadline=format_deadline(campaign.deadline, config),
        items=items,
        forms=forms,
    )


def run_notices(
    conn: sqlite3.Connection,
    roster,
    config,
    now: datetime,
    *,
    dry_run: bool = False,
    mailer: Mailer | None = None,
    stop=None,
) -> list[Notice]:
    """The notices not yet sent (to every roster unit with an address); sends them unless
    ``dry_run``. Call with ``lock.send_lock`` held when not a dry run."""
    forms = blank_forms(config)
    text = notice_text(config)
    due: list[Notice] = []
    for unit in roster.units:
        row = outbox.existing(conn, kind="notice", unit=unit.id, config=config)
        if row is not None and row[1] != "deferred":
            continue
        to = unit_addresses(conn, unit)
        if not to:
            log.warning(
                "unit %s (%s) has no address for the notice: add one to the roster", unit.id, unit.name
            )
            continue
        subject, body = render_notice(config, unit, [name for name, _ in forms], text)
        due.append(Notice(unit.id, to, subject, body, status="dry-run" if dry_run else None))
    if dry_run or not due:
        return due

    def send(m: Mailer, n: Notice):
        return outbox.send_one(
            conn,
            config,
            m,
            kind="notice",
            unit=n.unit,
            to=n.to,
            subject=n.subject,
            body=n.body,
            now=now,
            attachments=forms,
        )

    outbox.send_each(config, mailer, due, send, stop)
    return due
