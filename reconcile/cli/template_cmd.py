"""``template``: the blank statistics form to send out with a notice."""

from __future__ import annotations

from pathlib import Path

import click

from reconcile.cli.app import App, cli, pass_app


@cli.command("template")
@click.option(
    "--xlsx", "xlsx_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the form as .xlsx."
)
@click.option(
    "--docx", "docx_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the form as .docx."
)
@pass_app
def template_command(app: App, xlsx_path: Path | None, docx_path: Path | None) -> None:
    """Write the blank statistics sheet (开展情况统计表) of the campaign's template.

    The form has the header cells (填报单位, 联系人, 联系电话), one row per figure with its unit,
    and the text rows; mailroll reads filled-in copies of it (and edited variants) by row label.
    """
    from ingest.checks.sheet_template import write_docx, write_xlsx

    if not xlsx_path and not docx_path:
        raise click.UsageError("say where to write the form: --xlsx PATH and/or --docx PATH")
    campaign = app.config.campaign
    template = campaign.sheet
    title = f"{campaign.name}{template.title}"  # 2022年山西省科技活动周开展情况统计表
    for path, writer in ((xlsx_path, write_xlsx), (docx_path, write_docx)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer(path, template, title=title)
            click.echo(f"wrote {path}")
