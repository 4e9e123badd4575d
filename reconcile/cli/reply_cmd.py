"""``reply`` and ``answers``: answering units' questions by mail, with answers saved to reuse."""

from __future__ import annotations

from pathlib import Path

import click

from reconcile.cli.app import App, UsageProblem, cli, emit_json, json_option, pass_app
from reconcile.i18n import N_
from reconcile.i18n import gettext as _


@cli.command("reply")
@click.argument("messages", nargs=-1, required=True)
@click.option("--text", help=N_("The answer."))
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=N_("The answer, from a UTF-8 file."),
)
@click.option("--saved", "saved", metavar="NAME", help=N_("A saved answer (see `mailroll answers`)."))
@click.option("--save", "save_as", metavar="NAME", help=N_("Also keep this answer under NAME, to reuse."))
@json_option
@pass_app
def reply_command(
    app: App,
    messages: tuple[str, ...],
    text: str | None,
    path: Path | None,
    saved: str | None,
    save_as: str | None,
    as_json: bool,
) -> None:
    """Answer the question MESSAGE (number or Message-ID; several: the same answer to each) by
    mail from the campaign's address, in the question's thread, to the sender when trusted for
    the unit, else to the unit's registered addresses. Once per question; the question is then
    answered."""
    from reconcile import overrides
    from reconcile.cli.service_cmd import sending_mail
    from reconcile.outgoing import replies
    from reconcile.outgoing.smtp import Mailer

    given = [x for x in (text, path, saved) if x]
    if len(given) != 1:
        raise UsageProblem(_("give the answer once: --text TEXT, --file PATH or --saved NAME"))
    try:
        answer = (
            text if text else path.read_text("utf-8") if path else replies.saved_answer(app.conn, saved or "")
        )
        ids = [overrides.resolve_message(app.conn, m) for m in messages]
        due = [replies.build(app.conn, app.config, app.any_roster, mid, answer) for mid in ids]
        if save_as:
            replies.save_answer(app.conn, save_as, answer, app.actor)
    except (replies.ReplyProblem, overrides.OverrideError, OSError, UnicodeDecodeError) as e:
        raise UsageProblem(str(e)) from None

    def run():
        mailer = Mailer(app.config.smtp)
        try:
            return [replies.send(app.conn, app.config, mailer, r) for r in due]
        finally:
            mailer.close()

    done = sending_mail(app, False, "replies", run)
    if as_json:
        emit_json([r.as_dict() for r in done])
        return
    for r in done:
        click.echo(
            _("#{id} → {to}: {status}").format(
                id=r.message, to=", ".join(r.to), status=_(replies.STATUS_WORDS.get(r.status, r.status))
            )
            + (f" ({r.error})" if r.error else "")
        )


@cli.command("answers")
@json_option
@pass_app
def answers_command(app: App, as_json: bool) -> None:
    """The answers saved to reuse (`reply --save NAME`, `reply --saved NAME`), with how often each was used."""
    from reconcile.outgoing.replies import saved_answers

    rows = saved_answers(app.conn)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(_("{name} (used {n} times):").format(name=r["name"], n=r["used"]))
        click.echo("  " + r["text"].replace("\n", "\n  "))
    if not rows:
        click.echo(_("no saved answer yet: `mailroll reply MESSAGE --text ... --save NAME` keeps one"))
