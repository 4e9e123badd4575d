"""``questions`` and ``answered``: what units asked staff, and closing a question answered by phone."""

from __future__ import annotations

import click

from reconcile.cli.app import App, UsageProblem, cli, emit_json, json_option, pass_app
from reconcile.i18n import N_
from reconcile.i18n import gettext as _


def _campaign(app: App) -> str | None:
    return app.config.campaign.id if app.campaign_id or len(app.all_config.campaigns) == 1 else None


@cli.command("questions")
@click.option(
    "--all", "include_answered", is_flag=True, help=N_("Answered questions too, with who answered when.")
)
@json_option
@pass_app
def questions_command(app: App, include_answered: bool, as_json: bool) -> None:
    """Questions units asked staff (a question mark, 请问, 能否, 可以吗 ...), oldest first: the
    open ones (close one answered by phone with `mailroll answered`). Questions that look alike
    are grouped, so one answer can go to all of them."""
    from reconcile.questions import questions
    from reconcile.status_cache import ensure_attributed

    ensure_attributed(app.conn, app.any_roster, app.any_config)
    rows = questions(app.conn, app.any_config.campaign.timezone, _campaign(app), include_answered)
    if as_json:
        emit_json(rows)
    else:
        _render(rows, app)


def _render(rows: list[dict], app: App) -> None:
    from rich.markup import escape
    from rich.table import Table

    from reconcile.cli.status_cmd import wide_console

    names = {u.id: u.name for u in app.any_roster.units}
    table = Table(title=_("{n} question(s), oldest first").format(n=len(rows)), show_lines=True)
    for heading in (_("#"), _("received"), _("unit"), _("from"), _("question"), _("answered")):
        table.add_column(heading)
    for r in rows:
        alike = r.get("group") not in (None, r["id"])
        asked = (r["subject"] or "") + "\n" + (r["text"] or "")
        answered = (
            _("{time} by {who}").format(time=r["answered_at"][:16].replace("T", " "), who=r["answered_by"])
            if r["answered_at"]
            else _("like #{id}").format(id=r["group"])
            if alike
            else ""
        )
        table.add_row(
            str(r["id"]),
            r["received_at"][:16].replace("T", " "),
            escape(names.get(r["unit"] or "", r["unit"] or "")),
            escape(r["from"] or ""),
            escape(asked.strip()),
            escape(answered),
        )
    wide_console().print(table)


@cli.command("answered")
@click.argument("message")
@click.option("--note", help=N_("How it was answered (kept in the audit log), e.g. 'by phone'."))
@json_option
@pass_app
def answered_command(app: App, message: str, note: str | None, as_json: bool) -> None:
    """Close the question MESSAGE (number or Message-ID) without mail: answered by phone or in
    person. Undo with `mailroll revoke N`."""
    from reconcile import overrides
    from reconcile.questions import NotAQuestion, mark_answered

    try:
        mid = overrides.resolve_message(app.conn, message)
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    try:
        oid = mark_answered(app.conn, mid, app.actor, note)
    except NotAQuestion as e:
        raise UsageProblem(str(e)) from None
    if as_json:
        emit_json({"override": oid, "message": mid, "action": "answered"})
    else:
        click.echo(
            _("override {oid}: message #{id} answered; undo with `mailroll revoke {oid}`").format(
                oid=oid, id=mid
            )
        )
