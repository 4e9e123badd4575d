"""``search WORDS...``: find a message by what it says, who sent it or what it carried."""

from __future__ import annotations

import click

from reconcile.cli.app import App, cli, emit_json, json_option, pass_app
from reconcile.i18n import N_
from reconcile.i18n import gettext as _


@cli.command("search")
@click.argument("words", nargs=-1, required=True)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, 1000),
    help=N_("Show at most this many messages."),
)
@json_option
@pass_app
def search_command(app: App, words: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Messages whose subject, sender (address or name), text or attachment names hold every
    word, newest first, with the words marked «thus» in a snippet. Chinese words of any length
    (经费, 李明) are found."""
    from reconcile.search import search
    from reconcile.status_cache import ensure_attributed

    ensure_attributed(app.conn, app.any_roster, app.any_config)
    tz = app.any_config.campaign.timezone
    rows = search(app.conn, list(words), tz, limit=limit)
    if as_json:
        emit_json([{k: v for k, v in r.items() if k != "pieces"} for r in rows])
    else:
        _render(rows)


def _render(rows: list[dict]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from reconcile.cli.status_cmd import wide_console

    table = Table(title=_("{n} message(s) found, newest first").format(n=len(rows)), show_lines=True)
    for heading in (_("#"), _("received"), _("from"), _("unit"), _("subject"), _("found")):
        table.add_column(heading)
    for r in rows:
        found = "".join(
            f"[bold reverse]{escape(p.text)}[/]" if p.found else escape(p.text) for p in r["pieces"]
        )
        table.add_row(
            str(r["id"]),
            r["received_at"][:16].replace("T", " "),
            escape(r["from"] or ""),
            escape(r["unit"] or ""),
            escape(r["subject"] or ""),
            found,
        )
    wide_console().print(table)
