"""The 待回复 page's reply form: staff's answer by mail, through the same functions as
`mailroll reply` (``reconcile.outgoing.replies``), under the send lock, at the SMTP rate."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for

from reconcile.daemon.lock import sending
from reconcile.i18n import N_, zh
from reconcile.outgoing import replies
from reconcile.outgoing.smtp import Mailer
from reconcile.web.auth import signed_in, staff_only
from reconcile.web.files import MAX_ID
from reconcile.web.pages import sources

bp = Blueprint("replies", __name__)


def saved_answers() -> list[dict]:
    return replies.saved_answers(sources().connection())


@bp.route(f"/questions/<int(max={MAX_ID}):message>/reply", methods=["POST"])
@staff_only
def reply(message: int):
    src = sources()
    conn, config = src.connection(), src.config()
    text, saved = (request.form.get("text") or "").strip(), (request.form.get("saved") or "").strip()
    save_as = (request.form.get("save_as") or "").strip()
    back = redirect(url_for("questions.open_questions"), code=303)
    if not config.smtp.configured:
        flash(zh(N_("Mail cannot be sent: [smtp] host and from are not set in the config")), "error")
        return back
    try:
        answer = text or (replies.saved_answer(conn, saved) if saved else "")
        mail = replies.build(conn, config, src.roster(), message, answer)
        if save_as:
            replies.save_answer(conn, save_as, answer, signed_in() or "staff")
        with sending(config, conn):
            mailer = Mailer(config.smtp)
            try:
                replies.send(conn, config, mailer, mail)
            finally:
                mailer.close()
    except replies.ReplyProblem as e:
        flash(str(e), "error")
        return back
    said = zh(N_("Reply to message #{id} to {to}: {status}")).format(
        id=message, to=", ".join(mail.to), status=replies.status_text(mail.status)
    )
    flash(said + (f" ({mail.error})" if mail.error else ""), "ok" if mail.status == "sent" else "error")
    return back
