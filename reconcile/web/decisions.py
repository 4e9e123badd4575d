"""Staff decisions from the page: POST forms (CSRF-protected by the app), signed-in staff only,
through the same functions as the CLI (``reconcile.overrides``), recorded in the audit log under
the signed-in name. Each answer redirects to the page that shows the result, with a note saying
what was done and how to undo it (or why nothing was done)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for

from reconcile.daemon.clock import default_clock
from reconcile.i18n import N_, zh
from reconcile.web.auth import signed_in, staff_only
from reconcile.web.files import MAX_ID
from reconcile.web.words import ACTION_ZH

bp = Blueprint("decisions", __name__)


def _actor() -> str:
    """The signed-in staff name (the views below are ``staff_only``: there always is one)."""
    name = signed_in()
    if name is None:
        abort(403)
    return name


def _note() -> str | None:
    return (request.form.get("note") or "").strip() or None


def _sources():
    return current_app.extensions["mailroll"]


def _find_unit(text: str):
    found = _sources().roster().lookup(text.strip()) if text.strip() else []
    return found[0] if len(found) == 1 else None, found


@bp.route("/decide/assign", methods=["POST"])
@staff_only
def assign():
    from reconcile import overrides

    src = _sources()
    conn = src.connection()
    unit, found = _find_unit(request.form.get("unit") or "")
    if unit is None:
        text = request.form.get("unit") or ""
        flash(
            zh(N_("“{text}” fits {n} units: give the unit's id")).format(text=text, n=len(found))
            if found
            else zh(N_("No “{text}” in the roster: give a unit's id, name or alias")).format(text=text),
            "error",
        )
        return redirect(url_for("pages.unmatched"), code=303)
    try:
        mid = overrides.resolve_message(conn, request.form.get("message") or "")
        done = overrides.assign(
            conn,
            src.roster(),
            src.config(),
            mid,
            unit.id,
            _actor(),
            _note(),
            campaign=src.config().campaign.id,
        )
    except overrides.OverrideError as e:
        flash(zh(N_("Not attributed: {error}")).format(error=e), "error")
        return redirect(url_for("pages.unmatched"), code=303)
    flash(
        zh(N_("Message #{id} attributed to {unit} (decision {override}, can be revoked)")).format(
            id=mid, unit=unit.name, override=done.override
        ),
        "ok",
    )
    return redirect(url_for("pages.unit", unit_id=unit.id), code=303)


@bp.route("/decide/reject-message", methods=["POST"])
@staff_only
def reject_message():
    """`mailroll reject MESSAGE --note WHY`: the message stays on record but counts for nothing."""
    return _drop_message("reject", N_("Message #{id} does not count (decision {override}, can be revoked)"))


@bp.route("/decide/dismiss", methods=["POST"])
@staff_only
def dismiss():
    """不相关 — `mailroll dismiss MESSAGE --note WHY`: not campaign material, out of the queue."""
    return _drop_message(
        "dismiss",
        N_("Message #{id} dismissed as not campaign material (decision {override}, can be revoked)"),
    )


def _drop_message(action: str, done: str):
    from reconcile import overrides

    conn = _sources().connection()
    note = _note()
    try:
        if not note:
            raise overrides.OverrideError(zh(N_("Say why it does not count")))
        mid = overrides.resolve_message(conn, request.form.get("message") or "")
        oid = overrides.drop_message(conn, action, mid, _actor(), note)
    except overrides.OverrideError as e:
        flash(zh(N_("Not done: {error}")).format(error=e), "error")
        return redirect(url_for("pages.unmatched"), code=303)
    flash(zh(done).format(id=mid, override=oid), "ok")
    return redirect(url_for("pages.unmatched"), code=303)


@bp.route("/units/<unit_id>/decide", methods=["POST"])
@staff_only
def decide(unit_id: str):
    from reconcile import overrides

    src = _sources()
    conn = src.connection()
    back = redirect(url_for("pages.unit", unit_id=unit_id), code=303)
    if unit_id not in src.roster().by_id:
        flash(zh(N_("No unit {unit} in the roster")).format(unit=unit_id), "error")
        return redirect(url_for("pages.overview"), code=303)
    action = request.form.get("action") or ""
    item = request.form.get("item") or None
    note = _note()
    actor = _actor()
    try:
        if action in ("accept", "reject"):
            labels = src.config().campaign.labels
            if item not in labels:
                raise overrides.OverrideError(zh(N_("Choose an item")))
            if action == "reject" and not note:
                raise overrides.OverrideError(zh(N_("Say why it is rejected")))
            oid = overrides.add(
                conn, action, actor, unit=unit_id, item=item, note=note, campaign=src.config().campaign.id
            )
            flash(
                zh(N_("{item}: {action} (decision {override}, can be revoked)")).format(
                    item=labels[item], action=ACTION_ZH[action], override=oid
                ),
                "ok",
            )
        elif action == "exempt":
            if not note:
                raise overrides.OverrideError(zh(N_("Say why the unit is exempt")))
            oid = overrides.add(
                conn, "exempt", actor, unit=unit_id, note=note, campaign=src.config().campaign.id
            )
            flash(zh(N_("Exempt (decision {override}, can be revoked)")).format(override=oid), "ok")
        elif action == "extend":
            oid, value = overrides.extend(
                conn,
                src.config(),
                unit_id,
                request.form.get("until") or "",
                actor,
                note,
                campaign=src.config().campaign.id,
                now=default_clock().now(),  # 明天, 下周一: as the CLI reads them (MAILROLL_FAKE_NOW too)
            )
            flash(
                zh(N_("Deadline extended to {time} (decision {override}, can be revoked)")).format(
                    time=value, override=oid
                ),
                "ok",
            )
        else:
            raise overrides.OverrideError(zh(N_("Unknown decision: {action}")).format(action=action))
    except overrides.OverrideError as e:
        flash(zh(N_("Not done: {error}")).format(error=e), "error")
    return back


@bp.route(f"/overrides/<int(max={MAX_ID}):override_id>/revoke", methods=["POST"])
@staff_only
def revoke(override_id: int):
    from reconcile import overrides

    src = _sources()
    try:
        o = overrides.revoke_decision(
            src.connection(), src.any_roster(), src.any_config(), override_id, _actor(), _note()
        )
    except overrides.OverrideError as e:
        flash(zh(N_("Not revoked: {error}")).format(error=e), "error")
        return redirect(url_for("pages.overview"), code=303)
    flash(
        zh(N_("Decision {id} ({action}) revoked")).format(
            id=override_id, action=ACTION_ZH.get(o.action, o.action)
        ),
        "ok",
    )
    if o.action in ("dismiss", "reject") and o.message and not o.item:
        return redirect(url_for("pages.unmatched", all="1"), code=303)
    if o.unit and o.unit in src.roster().by_id:
        return redirect(url_for("pages.unit", unit_id=o.unit), code=303)
    return redirect(url_for("pages.overview"), code=303)
