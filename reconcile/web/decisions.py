"""Staff decisions from the page: POST forms (CSRF-protected by the app), signed-in staff only,
through the same functions as the CLI (``reconcile.overrides``), recorded in the audit log under
the signed-in name. Each answer redirects to the page that shows the result, with a note saying
what was done and how to undo it (or why nothing was done)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for

from reconcile.web.auth import signed_in, staff_only
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
    found = _sources().roster().find_all(text.strip()) if text.strip() else []
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
            f"“{text}”对应{len(found)}个单位，请填写单位编号"
            if found
            else f"名单中没有“{text}”：请填写单位编号、名称或别名",
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
        flash(f"未能归属：{e}", "error")
        return redirect(url_for("pages.unmatched"), code=303)
    flash(f"第{mid}号邮件已归属{unit.name}（处理编号{done.override}，可撤销）", "ok")
    return redirect(url_for("pages.unit", unit_id=unit.id), code=303)


@bp.route("/decide/reject-message", methods=["POST"])
@staff_only
def reject_message():
    """`mailroll reject MESSAGE --note WHY`: the message stays on record but counts for nothing."""
    from reconcile import overrides

    conn = _sources().connection()
    note = _note()
    try:
        if not note:
            raise overrides.OverrideError("不予计入须写明理由")
        mid = overrides.resolve_message(conn, request.form.get("message") or "")
        row = conn.execute("SELECT unit FROM attributions WHERE message = ?", [mid]).fetchone()
        oid = overrides.add(conn, "reject", _actor(), unit=row[0] if row else None, message=mid, note=note)
    except overrides.OverrideError as e:
        flash(f"未能处理：{e}", "error")
        return redirect(url_for("pages.unmatched"), code=303)
    flash(f"第{mid}号邮件不予计入（处理编号{oid}，可撤销）", "ok")
    return redirect(url_for("pages.unmatched"), code=303)


@bp.route("/units/<unit_id>/decide", methods=["POST"])
@staff_only
def decide(unit_id: str):
    from reconcile import overrides

    src = _sources()
    conn = src.connection()
    back = redirect(url_for("pages.unit", unit_id=unit_id), code=303)
    if unit_id not in src.roster().by_id:
        flash(f"名单中没有单位 {unit_id}", "error")
        return redirect(url_for("pages.overview"), code=303)
    action = request.form.get("action") or ""
    item = request.form.get("item") or None
    note = _note()
    actor = _actor()
    try:
        if action in ("accept", "reject"):
            labels = src.config().campaign.labels
            if item not in labels:
                raise overrides.OverrideError("请选择材料")
            if action == "reject" and not note:
                raise overrides.OverrideError("认定不合格须写明理由")
            oid = overrides.add(
                conn, action, actor, unit=unit_id, item=item, note=note, campaign=src.config().campaign.id
            )
            flash(f"{labels[item]}已{ACTION_ZH[action]}（处理编号{oid}，可撤销）", "ok")
        elif action == "exempt":
            if not note:
                raise overrides.OverrideError("免报须写明理由")
            oid = overrides.add(
                conn, "exempt", actor, unit=unit_id, note=note, campaign=src.config().campaign.id
            )
            flash(f"已设为免报（处理编号{oid}，可撤销）", "ok")
        elif action == "extend":
            oid, value = overrides.extend(
                conn,
                src.config(),
                unit_id,
                request.form.get("until") or "",
                actor,
                note,
                campaign=src.config().campaign.id,
            )
            flash(f"截止时间已延至{value}（处理编号{oid}，可撤销）", "ok")
        else:
            raise overrides.OverrideError(f"未知的处理：{action}")
    except overrides.OverrideError as e:
        flash(f"未能处理：{e}", "error")
    return back


@bp.route("/overrides/<int:override_id>/revoke", methods=["POST"])
@staff_only
def revoke(override_id: int):
    from reconcile import overrides

    src = _sources()
    try:
        o = overrides.revoke_decision(
            src.connection(), src.any_roster(), src.any_config(), override_id, _actor(), _note()
        )
    except overrides.OverrideError as e:
        flash(f"未能撤销：{e}", "error")
        return redirect(url_for("pages.overview"), code=303)
    flash(f"处理{override_id}（{ACTION_ZH.get(o.action, o.action)}）已撤销", "ok")
    if o.unit and o.unit in src.roster().by_id:
        return redirect(url_for("pages.unit", unit_id=o.unit), code=303)
    return redirect(url_for("pages.overview"), code=303)
