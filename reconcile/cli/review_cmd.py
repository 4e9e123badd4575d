"""`mailroll review`: messages waiting for a staff decision.

A message whose sender is only ``named`` (not registered for the unit, not in its domain, not a
reply to our mail to it, or a registered From the receiving server failed) waits here while a
trusted sender's message counts for the same item, or always with ``[attribution]
named_senders = "review"`` (docs/RECONCILE.md "Sender trust"). Staff decide with
``mailroll assign MESSAGE UNIT`` (it then counts, as ``staff``) or ``mailroll reject MESSAGE``.
"""

from __future__ import annotations

from reconcile.cli.app import App, campaign_option, cli, emit, json_option, pass_app
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
