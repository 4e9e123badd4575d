"""The queue: `mailroll unmatched` (messages no unit was found for), `mailroll review` (messages
waiting for a staff decision) and `mailroll dismiss` (not campaign material: out of both).

A message whose sender is only ``named`` (not registered for the unit, not in its domain, not a
reply to our mail to it, or a registered From the receiving server failed) waits here while a
trusted sender's message counts for the same item, or always with ``[attribution]
named_senders = "review"`` (docs/RECONCILE.md "Sender trust"). Staff decide with
``mailroll assign MESSAGE UNIT`` (it then counts, as ``staff``) or ``mailroll reject MESSAGE``.
"""

from __future__ import annotations

import click

from reconcile.cli.app import App, UsageProblem, campaign_option, cli, emit, json_option, pass_app
from reconcile.i18n import N_
from reconcile.i18n import gettext as _


def review_rows(app: App) -> list[dict]:
    """The `review --json` rows: the shape of `unmatched --json`, plus the unit."""
    from reconcile.cli.status_cmd import current_rows
    from reconcile.status import stored_time

    out = []
    for row in current_rows(app):
        for p in row.get("pending_review") or []:
            out.append(
                {
                    "message_id": p["message_id"],
                    "from": p["from"],
                    "subject": p["subject"],
                    "reason": p["reason"],
                    "received_at": p["received_at"],
                    "id": p["message"],
                    "unit": row["id"],
                    "items": p["items"],
                    "attribution": p["attribution"],
                }
            )
    return sorted(out, key=lambda r: (stored_time(r["received_at"]), r["id"]))


@cli.command("review")
@campaign_option
@json_option
@pass_app
def review_command(app: App, as_json: bool) -> None:
    """Messages from senders not registered for their unit that wait for a staff decision:
    `mailroll assign MESSAGE UNIT` lets one count, `mailroll reject MESSAGE --note ...` drops it."""
    from reconcile.cli.ingest_cmd import message_table

    rows = review_rows(app)

    def render(rs: list[dict]) -> None:
        message_table(
            [r | {"disposition": "review", "trust": "named"} for r in rs],
            _(
                "{n} message(s) pending review: `mailroll assign MESSAGE UNIT` or "
                "`mailroll reject MESSAGE --note WHY`"
            ).format(n=len(rs)),
            tz=app.config.campaign.timezone,
        )

    emit(rows, as_json, render)


@cli.command("unmatched")
@campaign_option
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help=N_("Also the messages staff decided (assigned, rejected, dismissed)."),
)
@click.option("--dismissed", is_flag=True, help=N_("Only the messages dismissed as not campaign material."))
@json_option
@pass_app
def unmatched_command(app: App, show_all: bool, dismissed: bool, as_json: bool) -> None:
    """Messages not attributed to any unit, with the reason: `mailroll assign MESSAGE UNIT`, or
    `mailroll dismiss MESSAGE --note WHY` for what is not campaign material."""
    from reconcile.cli.ingest_cmd import message_rows
    from reconcile.queue import DISMISSED, queue_rows

    rows = message_rows(app)
    if app.campaign_id:  # this campaign's, and those whose campaign is not known
        rows = [r for r in rows if r["campaign"] in (app.config.campaign.id, None)]
    rows = queue_rows(app.conn, rows, decided=show_all or dismissed)
    if dismissed:
        rows = [r for r in rows if r["state"] == DISMISSED]
    emit(rows, as_json, lambda rs: _queue_table(app, rs, show_all or dismissed))


def _queue_table(app: App, rows: list[dict], decided: bool) -> None:
    from reconcile.cli.ingest_cmd import message_table
    from reconcile.cli.status_cmd import local_time
    from reconcile.words import QUEUE_STATES, word

    tz = app.any_config.campaign.timezone
    if not decided:
        title = _("{n} unmatched message(s): assign them with `mailroll assign MESSAGE UNIT`").format(
            n=len(rows)
        )
        message_table([r | {"disposition": "unmatched"} for r in rows], title, show_unit=False, tz=tz)
        return
    shown = []
    for r in rows:
        why = r["reason"] or ""
        if r["state"] != "open":
            by = _("{state} by {actor} at {time}").format(
                state=word(QUEUE_STATES, r["state"]),
                actor=r["decided_by"],
                time=local_time(r["decided_at"], tz),
            )
            why = f"{by} (#{r['override']}): {r['note'] or ''}"
        shown.append(r | {"disposition": r["state"], "reason": why, "trust": None})
    title = _("{n} message(s) in the queue; `mailroll revoke N` brings a decided one back").format(
        n=len(rows)
    )
    message_table(shown, title, tz=tz)


@cli.command()
@click.argument("message")
@click.option("--note", required=True, help=N_("Why it is not campaign material (advertising, spam, ...)."))
@json_option
@pass_app
def dismiss(app: App, message: str, note: str, as_json: bool) -> None:
    """MESSAGE (number or Message-ID) is not campaign material: it leaves `unmatched` and `review`
    and counts for nothing; `mailroll revoke N` brings it back."""
    from reconcile import overrides

    try:
        mid = overrides.resolve_message(app.conn, message)
        oid = overrides.drop_message(app.conn, "dismiss", mid, app.actor, note)
    except overrides.OverrideError as e:
        raise UsageProblem(str(e)) from None
    emit(
        {"override": oid, "message": mid, "action": "dismiss"},
        as_json,
        lambda d: click.echo(
            _(
                "override {oid}: message #{id} dismissed (not campaign material); undo with `mailroll revoke {oid}`"
            ).format(oid=oid, id=mid)
        ),
    )
