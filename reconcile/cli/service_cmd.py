"""`serve` (the daemon), ``remind`` and ``receipts`` (one sending run, e.g. from cron)."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click

from ingest.config import ConfigError
from reconcile.cli.app import (
    App,
    UsageProblem,
    campaign_option,
    cli,
    console,
    emit,
    emit_json,
    json_option,
    pass_app,
)
from reconcile.i18n import N_
from reconcile.i18n import gettext as _
from reconcile.vocab import NOT_SENT


def now_option_time(app: App, text: str | None) -> datetime:
    """``--now`` as the clerk types it (``reconcile.clerk_time``: RFC 3339, '2022-06-24 10:00',
    '6月24日 10:00', '明天'; a day alone means its noon: midnight is in the quiet hours), else
    the clock."""
    from reconcile.clerk_time import NOON, NotATime, examples, parse_clerk_time
    from reconcile.daemon.clock import default_clock

    try:
        now = default_clock().now()
    except ValueError as e:
        raise UsageProblem(str(e)) from None
    if not text:
        return now
    tz = app.any_config.campaign.timezone
    try:
        return parse_clerk_time(text, tz, now, NOON)
    except NotATime:
        raise UsageProblem(
            _("--now {text!r} is not a time; write e.g. {examples} (campaign time zone)").format(
                text=text, examples=examples(tz, now)
            )
        ) from None


def _need_smtp(app: App, what: str) -> None:
    smtp = app.config.smtp
    if not smtp.configured:
        unset = " and ".join(k for k, v in (("smtp.host", smtp.host), ("smtp.from", smtp.from_addr)) if not v)
        raise ConfigError(
            f"{app.config.path}: cannot send {what}: {unset} {'is' if ' and ' not in unset else 'are'} not set. "
            f'Set them in the [smtp] section, e.g. host = "smtp.126.com" and from = "sxskjtrcc@126.com" '
            f"(and username / password_env for the login); or use --dry-run to see what would be sent"
        )
    if app.config.smtp.username:
        app.config.smtp.password()  # ConfigError (exit 2) when the variable is not set


def sending_mail(app: App, dry_run: bool, what: str, run):
    """``run(dry_run=True)`` for a dry run; else, with the SMTP settings checked (exit 2 saying
    what to set), ``run()`` under the send lock after mail a crash left in ``sending`` is
    marked ``unknown`` (never sent twice)."""
    from reconcile.daemon.lock import sending

    if dry_run:
        return run(dry_run=True)
    _need_smtp(app, what)
    with sending(app.config, app.conn):
        return run()


def _show_mail(*, to: list[str], cc: list[str], subject: str, body: str, title: str) -> None:
    """Print one mail as the unit would get it (``--show``): plain text, unwrapped."""
    click.echo(f"\n── {title} ──")
    click.echo(f"To: {', '.join(to)}")
    if cc:
        click.echo(f"Cc: {', '.join(cc)}")
    click.echo(f"Subject: {subject}\n")
    click.echo(body.rstrip("\n"))


def _quiet_note(config, now: datetime, what: str) -> str:
    from reconcile.outgoing.reminders import quiet_hours_text

    local = now.astimezone(config.campaign.timezone)
    return _("{time} is in the quiet hours ({hours}): no {what} are sent at this time").format(
        time=f"{local:%Y-%m-%d %H:%M}", hours=quiet_hours_text(config), what=_(what)
    )


SHOW_HELP = "Also print each mail in full (To, Cc, Subject, body) as the unit gets it."


def sending_options(what: str):
    """The options of a command that sends what is due (``remind``, ``receipts``): --campaign,
    --dry-run, --show, --now TIME, --json."""
    options = (
        campaign_option,
        click.option("--dry-run", is_flag=True, help=f"Show the {what} due; send and record nothing."),
        click.option("--show", is_flag=True, help=SHOW_HELP),
        click.option(
            "--now",
            "now_text",
            metavar="TIME",
            help=N_(
                "Act as if it were TIME (RFC 3339, '2022-06-24 10:00', '6月24日 10:00', '明天'; "
                "a day alone: its noon): only mail received by then counts."
            ),
        ),
        json_option,
    )

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@cli.command("remind")
@sending_options("reminders")
@pass_app
def remind_command(app: App, dry_run: bool, show: bool, now_text: str | None, as_json: bool) -> None:
    """Send the reminders due now to units that are not complete.

    Each unit gets at most one reminder per stage (before-3d, before-1d, after-1, ...), never
    during quiet hours, never when complete or exempt. Exit status 1 if some could not be sent
    (they are retried on the next run unless the server refused them for good).

    What units have sent is judged as of --now: a message received after it does not count.
    `--dry-run --show` previews every mail in full.
    """
    from reconcile.outgoing.reminders import in_quiet_hours, quiet_hours_text, run_reminders

    config = app.config
    now = now_option_time(app, now_text)
    conn, roster = app.conn, app.roster
    due = sending_mail(app, dry_run, "reminders", lambda **kw: run_reminders(conn, roster, config, now, **kw))
    quiet = in_quiet_hours(config, now)

    def render(_data) -> None:
        out = console()
        if quiet:
            out.print(
                _("Quiet hours ({hours}): no reminders are sent now.").format(hours=quiet_hours_text(config))
            )
            return
        if not due:
            out.print(_("No reminders due."))
            return
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=(_("Reminders that would be sent") if dry_run else _("Reminders")), show_lines=False)
        for col in (_("unit"), _("stage"), _("to"), _("missing"), _("invalid"), _("result")):
            t.add_column(col)
        for r in due:
            result = _("dry run") if dry_run else (r.status or "")
            cells = (r.unit, r.stage, ", ".join(r.to), ", ".join(r.missing), ", ".join(r.invalid), result)
            t.add_row(*(escape(c) for c in cells))
        out.print(t)
        if not dry_run:
            out.print(_("{sent} of {n} sent.").format(sent=sum(r.status == "sent" for r in due), n=len(due)))
        if show:
            for r in due:
                _show_mail(to=r.to, cc=[], subject=r.subject, body=r.body, title=f"{r.unit} {r.stage}")

    if as_json and quiet:
        click.echo(f"mailroll: {_quiet_note(config, now, N_('reminders'))}", err=True)
    data = [r.contract() | ({"subject": r.subject, "body": r.body} if show else {}) for r in due]
    emit(data, as_json, render)
    _report_failures(due, dry_run)


def _report_failures(done, dry_run: bool) -> None:
    """Say on stderr what could not be sent (grouped by reason) and exit 1."""
    bad = [r for r in done if r.status in NOT_SENT]
    if not bad or dry_run:
        return
    groups: dict[tuple, list[str]] = {}
    for r in bad:
        groups.setdefault((r.status, r.error), []).append(r.unit)
    for (status, error), units in groups.items():
        what = NOT_SENT[status]
        click.echo(
            f"mailroll: {len(units)} mail(s) {what} ({', '.join(units[:5])}"
            f"{', ...' if len(units) > 5 else ''}): {error}",
            err=True,
        )
    sys.exit(1)


@cli.command("notify")
@campaign_option
@click.option("--dry-run", is_flag=True, help="Show the notices that would be sent; send and record nothing.")
@click.option("--show", is_flag=True, help=SHOW_HELP)
@json_option
@pass_app
def notify_command(app: App, dry_run: bool, show: bool, as_json: bool) -> None:
    """Send the campaign's notice to every roster unit that has not had it yet.

    The notice (template notice.j2: the campaign's `notice` text, the deadline, the items) goes
    with the blank form of each statistics sheet attached, at most once per unit, also across
    restarts. A unit's reply to it counts for that unit, even from a personal mailbox.
    """
    from reconcile.outgoing.notices import run_notices

    config = app.config
    now = now_option_time(app, None)
    conn, roster = app.conn, app.roster
    due = sending_mail(app, dry_run, "the notice", lambda **kw: run_notices(conn, roster, config, now, **kw))

    def render(_data) -> None:
        if not due:
            click.echo(_("Every unit has had the notice."))
            return
        for n in due:
            click.echo(
                f"{n.unit} -> {', '.join(n.to)}: {n.subject} [{n.status}]"
                + (f" {n.error}" if n.error else "")
            )
        if show:
            for n in due:
                _show_mail(to=n.to, cc=[], subject=n.subject, body=n.body, title=n.unit)

    data = [n.contract() | ({"body": n.body} if show else {}) for n in due]
    emit(data, as_json, render)
    _report_failures(due, dry_run)


# long: the dry-run and report paths of one command
@cli.command("receipts")
@sending_options("receipts")
@pass_app
def receipts_command(app: App, dry_run: bool, show: bool, now_text: str | None, as_json: bool) -> None:
    """Send the receipts not yet sent (`serve` does this after every poll).

    For use without the daemon, e.g. ``mailroll ingest --once && mailroll receipts`` from cron.
    Only messages received up to --now are answered, and each receipt states the unit's
    materials as of then. `--dry-run --show` previews every receipt in full.
    """
    from reconcile.outgoing.receipts import run_receipts
    from reconcile.outgoing.reminders import in_quiet_hours

    config = app.config
    now = now_option_time(app, now_text)
    if not config.reminders.receipts:
        note = _(
            "Receipts are switched off in {path} (reminders.receipts = false): none sent. "
            "Set reminders.receipts = true to answer units' messages."
        ).format(path=config.path)
        if as_json:
            click.echo(f"mailroll: {note}", err=True)
            emit_json([])
        else:
            click.echo(note)
        return
    conn, roster = app.conn, app.roster
    done = sending_mail(app, dry_run, "receipts", lambda **kw: run_receipts(conn, roster, config, now, **kw))
    waiting = [r for r in done if r.status == "waiting"]
    done = [r for r in done if r.status != "waiting"]
    for why in dict.fromkeys(r.error for r in waiting):
        units = [r.unit for r in waiting if r.error == why]
        click.echo(
            _("mailroll: {n} receipt(s) wait for a later run ({units}): {why}").format(
                n=len(units), units=", ".join(units[:5]) + (", ..." if len(units) > 5 else ""), why=why
            ),
            err=True,
        )

    quiet = in_quiet_hours(config, now)

    def render(_data) -> None:
        out = console()
        if quiet:
            out.print(_quiet_note(config, now, N_("receipts")) + _("; they go when the quiet hours end."))
            return
        if not done:
            out.print(_("No receipts due."))
            return
        for r in done:
            cc = f" (cc {', '.join(r.cc)})" if r.cc else ""
            click.echo(
                f"#{r.message} {r.unit} -> {', '.join(r.to)}{cc}: {r.subject} [{r.status}]"
                + (f" {r.error}" if r.error else "")
            )
        if show:
            for r in done:
                _show_mail(
                    to=r.to,
                    cc=r.cc,
                    subject=r.subject,
                    body=r.body,
                    title=_("receipt for message #{id} ({unit})").format(id=r.message, unit=r.unit),
                )

    if as_json and quiet:
        click.echo(f"mailroll: {_quiet_note(config, now, N_('receipts'))}", err=True)
    emit([r.as_dict() | ({"body": r.body} if show else {}) for r in done], as_json, render)
    _report_failures(done, dry_run)


@cli.command("serve")
@click.option(
    "--check",
    is_flag=True,
    help="Don't serve: report whether a running `serve` is alive (exit 0) or not (exit 1).",
)
@json_option
@pass_app
def serve_command(app: App, check: bool, as_json: bool) -> None:
    """Run the daemon: poll on a schedule (and on IMAP IDLE), send receipts and reminders.

    Stops cleanly on SIGTERM or Ctrl-C (finishes the message in hand, exit 0). Only one
    `serve` (or `ingest`) at a time per mailbox.
    """
    if check:
        _check(app, as_json)
        return
    from reconcile.daemon.service import Service
    from reconcile.daemon.stopping import catch_stop_signals

    stop = catch_stop_signals()  # (already done by the entry point when run as `mailroll serve`)
    # a fault in a C library (lxml, Pillow, the archive codecs) leaves every thread's Python
    # stack in the journal, not only "Segmentation fault"
    import faulthandler

    faulthandler.enable(all_threads=True)

    config = app.any_config  # one poller for every campaign; each gets its receipts and reminders
    if config.mailbox.kind == "imap":
        config.mailbox.password()  # a missing password variable is a config error: exit 2 now
    if config.smtp.configured and config.smtp.username:
        config.smtp.password()
    if app.verbose == 0:
        import logging
        import os

        if not os.environ.get("MAILROLL_LOG_LEVEL"):
            logging.getLogger().setLevel(logging.INFO)  # a daemon's log is its journal
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        code = Service(config, stop=stop).run()
    except ValueError as e:  # MAILROLL_FAKE_NOW malformed
        raise UsageProblem(str(e)) from None
    sys.exit(code)


def _check(app: App, as_json: bool) -> None:
    from reconcile.authcheck import coverage_warning, hops_warning, unplaced_warning
    from reconcile.daemon.service import check
    from reconcile.heartbeat import ago

    ok, d = check(app.conn, app.any_config)
    unproven = coverage_warning(app.conn, app.any_config)
    found = (unproven, unplaced_warning(app.conn), hops_warning(app.any_config))
    d["warnings"] = [w for w in found if w]
    if as_json:
        emit_json({"ok": ok, **d})
    else:
        if d["last_poll"] is None:
            click.echo(_("mailroll serve has never polled this mailbox."))
        else:
            said = _("mailroll serve (pid {pid}) is running; last poll {ago} ({time})")
            if not d["running"]:
                said = _("mailroll serve (pid {pid}) is not running; last poll {ago} ({time})")
            said = said.format(pid=d["pid"], ago=ago(d["age_s"]), time=d["last_poll"])
            click.echo(said + (_(" - STALE") if d["stale"] else "") + ".")
            if d["last_poll_result"]:
                click.echo(_("last poll: ") + json.dumps(d["last_poll_result"], ensure_ascii=False))
            if d["last_error"]:
                click.echo(_("last error: {error}").format(error=d["last_error"]))
        _say_waiting(d.get("waiting"))
        for warning in d["warnings"]:
            click.echo(_("warning: {warning}").format(warning=warning))
    sys.exit(0 if ok else 1)


def _say_waiting(waiting: dict | None) -> None:
    """ "mails waiting to go out: 3 (2 in the queue at the SMTP rate; 1 ...)"."""
    from reconcile.outgoing.queue import REASONS

    if not waiting:
        return
    if not waiting["total"]:
        click.echo(_("mails waiting to go out: none"))
        return
    why = "; ".join(f"{n} {_(REASONS[k])}" for k, n in waiting["why"].items())
    click.echo(_("mails waiting to go out: {n} ({why})").format(n=waiting["total"], why=why))
