"""The 待回复 page (`/questions`): units' open questions, alike ones together, each closed by
staff (answered by phone) through the same function as `mailroll answered`; `?all=1` also the
answered ones."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from reconcile import questions as asked
from reconcile.i18n import N_, zh
from reconcile.questions import NotAQuestion, mark_answered, questions
from reconcile.web.auth import signed_in, staff_only
from reconcile.web.files import MAX_ID
from reconcile.web.pages import local_text, sources

bp = Blueprint("questions", __name__)


def question_rows(include_answered: bool = False) -> list[dict]:
    src = sources()
    config = src.config()
    tz = config.campaign.timezone
    rows = questions(src.connection(), tz, config.campaign.id, include_answered)
    names = {u.id: u.name for u in src.roster().units}
    for r in rows:
        r["when"] = local_text(r["received_at"], tz)
        r["unit_name"] = names.get(r["unit"] or "", r["unit"] or "")
        r["answered_when"] = local_text(r["answered_at"], tz) if r["answered_at"] else ""
    return rows


def open_count() -> int:
    src = sources()
    return asked.open_count(src.connection(), src.config().campaign.id)


@bp.route("/questions")
def open_questions():
    every = request.args.get("all") == "1"
    rows = question_rows(every)
    # alike ones together (their group), groups in the order of their first question
    first = {r["group"]: i for i, r in reversed(list(enumerate(rows))) if "group" in r}
    shown = sorted(rows, key=lambda r: (r["answered_at"] is not None, first.get(r.get("group"), 0), r["id"]))
    from reconcile.web.replies_page import saved_answers

    return render_template("questions.html", rows=shown, every=every, saved=saved_answers())


@bp.route(f"/questions/<int(max={MAX_ID}):message>/answered", methods=["POST"])
@staff_only
def answered(message: int):
    src = sources()
    note = (request.form.get("note") or "").strip() or None
    try:
        oid = mark_answered(src.connection(), message, signed_in() or "staff", note)
    except NotAQuestion as e:
        flash(str(e), "error")
        return redirect(url_for("questions.open_questions"), code=303)
    flash(
        zh(N_("Message #{id} answered (decision {override}, can be revoked)")).format(
            id=message, override=oid
        ),
        "ok",
    )
    return redirect(url_for("questions.open_questions"), code=303)
