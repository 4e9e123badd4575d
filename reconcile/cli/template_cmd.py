"""``template``: the blank statistics form to send out with a notice."""

from __future__ import annotations

from pathlib import Path

import click

from reconcile.cli.app import App, UsageProblem, campaign_option, cli, pass_app
from reconcile.i18n import gettext as _


@cli.command("template")
@campaign_option
@click.option(
    "--xlsx", "xlsx_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the form as .xlsx."
)
@click.option(
    "--docx", "docx_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the form as .docx."
)
@click.option("--item", "item_id", help="Which sheet item's form, when the campaign asks for several.")
@pass_app
def template_command(app: App, xlsx_path: Path | None, docx_path: Path | None, item_id: str | None) -> None:
    """Write the blank statistics sheet (开展情况统计表) of the campaign's template.

    The form has the header cells (填报单位, 联系人, 联系电话), one row per figure with its unit,
    and the text rows; mailroll reads filled-in copies of it (and edited variants) by row label.
    """
    from ingest.checks.sheet_template import write_docx, write_xlsx

    if not xlsx_path and not docx_path:
        raise click.UsageError(_("say where to write the form: --xlsx PATH and/or --docx PATH"))
    campaign = app.config.campaign
    sheets = [i for i in campaign.items if i.kind == "sheet"]
    if item_id is not None:
        sheets = [i for i in sheets if i.id == item_id]
    if not sheets:
        raise UsageProblem(
            _("campaign {campaign} has no sheet item {item!r}").format(campaign=campaign.id, item=item_id)
            if item_id
            else _("campaign {campaign} asks for no statistics sheet: there is no form to write").format(
                campaign=campaign.id
            )
        )
    template = sheets[0].sheet
    assert template is not None, "a sheet item has its form"
    title = f"{campaign.name}{template.title}"  # 2022年山西省科技活动周开展情况统计表
    for path, writer in ((xlsx_path, write_xlsx), (docx_path, write_docx)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer(path, template, title=title)
            click.echo(_("wrote {path}").format(path=path))
    click.echo(_("{campaign} asks each unit for:").format(campaign=campaign.name))
    for item in campaign.items:
        note = _("this form") if item == sheets[0] else item.kind
        click.echo(f"  {item.said} ({item.id}): {note}" + ("" if item.required else _(", optional")))
