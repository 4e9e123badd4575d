"""`export DIR [--zip PATH] [--all-versions]`: every unit's files under recognisable names
(see reconcile.export)."""

from __future__ import annotations

import click

from reconcile.cli.app import App, campaign_option, cli, emit_json, json_option, pass_app
from reconcile.i18n import gettext as _


@cli.command()
@campaign_option
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--zip", "zip_path", type=click.Path(dir_okay=False), help="Also write a zip of the folder here."
)
@click.option("--all-versions", is_flag=True, help="Also every earlier version, under <unit>/历史版本/.")
@json_option
@pass_app
def export(app: App, directory: str, zip_path: str | None, all_versions: bool, as_json: bool) -> None:
    """One folder per unit with its counted files named <unit>-<item>.<ext>, plus 清单.xlsx/.csv."""
    if zip_path and not zip_path.lower().endswith(".zip"):
        raise click.UsageError(_("--zip {path}: the file name must end in .zip").format(path=zip_path))
    from reconcile.export import export as run_export
    from reconcile.status_cache import refresh

    rows = refresh(app.conn, app.roster, app.config)
    result = run_export(
        app.conn, rows, app.roster, app.config, directory, all_versions=all_versions, zip_path=zip_path
    )
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(
        _(
            "{units} units, {files} files in {directory}: {written} written, {unchanged} unchanged, {removed} removed"
        ).format(
            units=result.units,
            files=result.files,
            directory=result.directory,
            written=len(result.written),
            unchanged=result.unchanged,
            removed=len(result.removed),
        )
    )
    if result.zip:
        said = _("zip {path}: written") if result.zip_written else _("zip {path}: unchanged")
        click.echo(said.format(path=result.zip))
