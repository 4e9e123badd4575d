"""``campaigns``: every campaign of the config, whether it is open, and how far its units are."""

from __future__ import annotations

import click

from reconcile.cli.app import App, cli, emit, json_option, pass_app
from reconcile.i18n import gettext as _


def campaign_rows(app: App, now) -> list[dict]:
    from reconcile.scope import rosters
    from reconcile.status import iso_text, summary
    from reconcile.status_cache import refresh

    out = []
    by_campaign = rosters(app.all_config)
    for config in app.all_config.each_campaign():
        c = config.campaign
        s = summary(refresh(app.conn, by_campaign[c.id], config))
        out.append(
            {
                "id": c.id,
                "name": c.name,
                "deadline": iso_text(c.deadline, c.timezone),
                "open": c.is_open(now),
                "units": {k: s[k] for k in ("complete", "incomplete", "missing", "exempt")},
                "opens": iso_text(c.opens, c.timezone) if c.opens else None,
                "closes": iso_text(c.closes, c.timezone) if c.closes else None,
                "items": [
                    {"id": i.id, "label": i.label, "kind": i.kind, "required": i.required} for i in c.items
                ],
            }
        )
    return out


@cli.command("campaigns")
@click.option("--now", "now_text", metavar="TIME", help="Whether each campaign is open at TIME (RFC 3339).")
@json_option
@pass_app
def campaigns_command(app: App, now_text: str | None, as_json: bool) -> None:
    """The campaigns of the config: id (for --campaign), name, deadline, open or closed, and
    how many units are complete, incomplete or missing."""
    from reconcile.cli.service_cmd import now_option_time

    rows = campaign_rows(app, now_option_time(app, now_text))

    def render(rows: list[dict]) -> None:
        for r in rows:
            u = r["units"]
            click.echo(
                "  ".join(
                    (
                        r["id"],
                        r["name"],
                        _("deadline {time}").format(time=r["deadline"][:16].replace("T", " ")),
                        _("open") if r["open"] else _("closed"),
                        _("{complete} complete, {incomplete} incomplete, {missing} missing").format(**u),
                        _("items: {items}").format(items=_(", ").join(i["label"] for i in r["items"])),
                    )
                )
            )

    emit(rows, as_json, render)
