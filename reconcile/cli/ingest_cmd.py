"""``ingest --once``, ``messages``: what came in and what became of it (``unmatched``: review_cmd)."""

from __future__ import annotations

import sys
from datetime import UTC
from typing import Any

import click

from reconcile.cli.app import App, campaign_option, cli, console, emit, json_option, pass_app
from reconcile.i18n import N_
from reconcile.i18n import gettext as _
from reconcile.words import DISPOSITIONS, QUEUE_STATES, TRUSTS, word


def run_poll(app: App, *, progress: bool = False, stop=None) -> dict:
    """Poll once under the ingest lock, attribute what arrived, return the contract's counts."""
    from ingest.pipeline import poll_once
    from reconcile.daemon.lock import ingest_lock
    from reconcile.outgoing.bounces import record_bounces
    from reconcile.status_cache import ensure_attributed

    config = app.any_config
    with ingest_lock(config, wait_s=config.service.lock_wait_s):
        with _progress_bar(progress) as bar:
            result = poll_once(config, app.conn, progress=bar, stop=stop)
        # the new messages, and any a crashed earlier run recorded but did not get to attribute
        ensure_attributed(app.conn, app.any_roster, config)
        record_bounces(app.conn, config, result.recorded_ids)  # bounces of our mail are no submissions
    attributed = unmatched = other = 0
    if result.recorded_ids:
        marks = ",".join("?" for _ in result.recorded_ids)
        for unit, method in app.conn.execute(
            f"SELECT unit, method FROM attributions WHERE message IN ({marks})", result.recorded_ids
        ):
            if unit:
                attributed += 1
            elif method == "other":
                other += 1
            else:
                unmatched += 1
    return {
        "seen": result.seen,
        "new": result.new,
        "attributed": attributed,
        "unmatched": unmatched,
        "duplicate": result.duplicate,
        "failed": result.failed,
        **({"other": other} if config.scoped else {}),
    }


class _progress_bar:
    """A rich progress bar on stderr while messages are processed (only on a terminal)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.progress: Any = None  # a rich Progress while shown
        self.task: Any = None

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.progress.start()
        return self

    def __call__(self, event: str, total: int | None) -> None:
        if event == "start":
            self.task = self.progress.add_task("ingest", total=total)
        elif self.task is not None:
            self.progress.advance(self.task)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()


@cli.command("ingest")
@click.option(
    "--once", is_flag=True, help=N_("Poll the mailbox once and exit (the daemon is `mailroll serve`).")
)
@json_option
@pass_app
def ingest_command(app: App, once: bool, as_json: bool) -> None:
    """Poll the mailbox once, process every new message, print a summary.

    Messages are recorded, attachments kept and checked, and each message attributed to a
    unit or put in the unmatched queue. Sends no mail (receipts and reminders: `serve`).
    """
    if not once:
        raise click.UsageError(
            _("use `mailroll ingest --once` for one poll, or `mailroll serve` to keep polling")
        )
    from datetime import datetime

    from ingest.guards import DiskFull
    from reconcile.daemon.service import set_state

    try:
        counts = run_poll(app, progress=not as_json)
    except DiskFull as e:  # nothing is lost: the next poll goes on from the first unread message
        set_state(app.conn, last_error=str(e), last_error_at=datetime.now(UTC).isoformat(timespec="seconds"))
        click.echo(f"mailroll: {e}", err=True)
        sys.exit(1)

    # cron setups (ingest --once instead of serve): `status` shows the last poll too
    set_state(
        app.conn,
        last_poll=datetime.now(UTC).isoformat(timespec="seconds"),
        last_poll_result=counts,
        last_error="",
    )

    def render(c: dict) -> None:
        click.echo(
            _(
                "{new} new message(s) of {seen} in the mailbox: {attributed} attributed, "
                "{unmatched} unmatched, {duplicate} duplicate, {failed} failed"
            ).format(**c)
        )
        if c["failed"]:
            click.echo(
                _(
                    "failed messages are kept and retried on the next poll (those that hit a limit: after "
                    "`mailroll retry MESSAGE`); see `mailroll messages`"
                ),
                err=True,
            )
        if c["unmatched"]:
            click.echo(
                _("assign unmatched messages with `mailroll assign MESSAGE UNIT` (see `mailroll unmatched`)"),
                err=True,
            )

    emit(counts, as_json, render)


@cli.command("retry")
@click.argument("message")
@json_option
@pass_app
def retry_command(app: App, message: str, as_json: bool) -> None:
    """Process a failed MESSAGE (number or Message-ID) again on the next poll.

    For a message that failed for good: it hit a time or memory limit (raise
    limits.message_timeout_s / limits.worker_memory_bytes first), or mailroll stopped 3 times
    while reading it. Other failed messages are retried by every poll anyway."""
    from ingest.db import transaction
    from reconcile import overrides
    from reconcile.cli.app import UsageProblem

    try:
        mid = overrides.resolve_message(app.conn, message)
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    source, key, status, error = app.conn.execute(
        "SELECT source, source_key, status, error FROM messages WHERE id = ?", [mid]
    ).fetchone()
    if status != "failed":
        raise UsageProblem(
            _("message #{id} is {status}, not failed: there is nothing to retry").format(
                id=mid, status=status
            )
        )
    with transaction(app.conn) as conn:
        conn.execute("UPDATE messages SET retry = 1 WHERE id = ?", [mid])
        conn.execute("DELETE FROM reading WHERE source = ? AND source_key = ?", [source, key])
    emit(
        {"message": mid, "retry": True, "error": error},
        as_json,
        lambda d: click.echo(
            _("message #{id} will be processed again on the next poll (it failed: {error})").format(
                id=mid, error=error
            )
        ),
    )


def message_rows(app: App) -> list[dict]:
    """Every message with its disposition (reconcile.messages), attributions brought up to date first."""
    from reconcile.messages import message_rows as rows

    return rows(app.conn, app.any_roster, app.any_config)


_COLOURS = {
    "attributed": "green",
    "unmatched": "yellow",
    "duplicate": "dim",
    "failed": "red",
    "review": "yellow",
    "other": "dim",
    "open": "yellow",  # the queue (`unmatched --all`): reconcile/queue.py
    "dismissed": "dim",
    "rejected": "dim",
    "assigned": "green",
}


def message_table(rows: list[dict], title: str, show_unit: bool = True, tz=None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from reconcile.cli.status_cmd import local_time, wide_console

    table = Table(title=escape(title), title_justify="left")
    for col in (
        "#",
        _("received ({zone})").format(zone=tz or "UTC"),
        _("from"),
        _("subject"),
        *([_("unit"), _("trust")] if show_unit else []),
        _("disposition"),
        _("reason"),
    ):
        table.add_column(col, overflow="fold")
    for r in rows:
        colour = _COLOURS.get(r["disposition"], "")
        words = DISPOSITIONS if r["disposition"] in DISPOSITIONS else QUEUE_STATES
        # every cell a sender wrote is escaped: a subject '[/]' or '[link=...]' shows as written
        table.add_row(
            str(r["id"]),
            local_time(r["received_at"], tz) if tz else (r["received_at"] or "")[:16].replace("T", " "),
            escape(r["from"] or ""),
            escape(r["subject"] or ""),
            *([escape(r["unit"] or ""), escape(word(TRUSTS, r.get("trust")))] if show_unit else []),
            f"[{colour}]{escape(word(words, r['disposition']))}[/]",
            escape(r["reason"] or ""),
        )
    (wide_console() if tz else console()).print(table)


@cli.command("messages")
@campaign_option
@click.option(
    "--disposition",
    type=click.Choice(["attributed", "unmatched", "duplicate", "failed", "other"]),
    help=N_("Only messages with this outcome."),
)
@click.option("--unit", help=N_("Only messages attributed to this unit (id, name or alias)."))
@json_option
@pass_app
def messages_command(app: App, disposition: str | None, unit: str | None, as_json: bool) -> None:
    """Every message ever seen, oldest arrival first, with what became of it."""
    if unit:
        from reconcile.cli.status_cmd import find_unit

        unit = find_unit(app, unit).id  # exit 2 for an unknown unit, as `show` does
    rows = message_rows(app)
    if disposition:
        rows = [r for r in rows if r["disposition"] == disposition]
    if unit:
        rows = [r for r in rows if r["unit"] == unit]
    if app.campaign_id:
        rows = [r for r in rows if r["campaign"] in (app.config.campaign.id, None)]
    tz = app.any_config.campaign.timezone
    emit(rows, as_json, lambda rs: message_table(rs, _("{n} message(s)").format(n=len(rs)), tz=tz))
