"""`report --xlsx PATH` / `--csv DIR`: the workbook for staff (see reconcile.report)."""

from __future__ import annotations

from pathlib import Path

import click

from reconcile.cli.app import App, campaign_option, cli, emit_json, json_option, pass_app
from reconcile.i18n import gettext as _


@cli.command()
@campaign_option
@click.option("--xlsx", "xlsx_path", type=click.Path(dir_okay=False), help="Write the workbook here (.xlsx).")
@click.option(
    "--csv", "csv_dir", type=click.Path(file_okay=False), help="Write one CSV per sheet into this folder."
)
@json_option
@pass_app
def report(app: App, xlsx_path: str | None, csv_dir: str | None, as_json: bool) -> None:
    """The formatted workbook: summary, every unit's items, the statistics, unmatched mail."""
    if not xlsx_path and not csv_dir:
        raise click.UsageError(_("say where to write: --xlsx PATH (a workbook) and/or --csv DIR"))
    if xlsx_path and not xlsx_path.lower().endswith(".xlsx"):
        raise click.UsageError(_("--xlsx {path}: the file name must end in .xlsx").format(path=xlsx_path))
    from reconcile import report as rep
    from reconcile.stats import collect
    from reconcile.status_cache import refresh
    from reconcile.tables_csv import write_csv

    rows = refresh(app.conn, app.roster, app.config)
    tables = rep.build_tables(app.conn, rows, collect(app.conn, rows, app.config), app.config)
    written = []
    if xlsx_path:
        written.append(str(rep.write_xlsx(tables, Path(xlsx_path), app.config.campaign.name)))
    if csv_dir:
        written += [str(p) for p in write_csv(tables, Path(csv_dir))]
    if as_json:
        emit_json({"written": written, "units": len(rows)})
    else:
        for p in written:
            click.echo(f"wrote {p}")
