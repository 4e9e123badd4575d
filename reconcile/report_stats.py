"""The workbook's 统计汇总 sheet: each unit's figures from its counted valid sheet, a 全省合计
totals row, the units left out with the reason, and notes (reconcile.stats) in Chinese."""

from __future__ import annotations

from reconcile.i18n import N_, zh
from reconcile.report import ITEM_STATE_CN, LATE, SEP, Table


def stats_table(stats: dict, config) -> Table:
    t = Table(zh(N_("Statistics totals")), freeze_row=1)
    sheet = config.campaign.first("sheet")
    fields = sheet.sheet.fields if sheet is not None and sheet.sheet else []
    header = [
        zh(N_("Unit id")),
        zh(N_("Unit name")),
        zh(N_("Category")),
        zh(N_("Unit named in the sheet")),
        *(f"{label}（{unit}）" if unit else label for label, unit in fields),
        LATE,
    ]
    t.add(header, header=True)
    for u in stats["per_unit"]:
        t.add(
            [
                u["id"],
                u["name"],
                u.get("category") or "",
                u.get("unit_cell") or "",
                *(u["figures"].get(label, "") for label, _ in fields),
                LATE if u.get("late") else "",
            ]
        )
    t.filter_range = (0, len(t.rows) - 1, len(header))
    t.add(
        [
            zh(N_("Province total")),
            zh(N_("{n} units")).format(n=stats["units"]),
            "",
            "",
            *(stats["fields"][label] for label, _ in fields),
            "",
        ],
        bold=True,
    )
    t.add([])
    t.add([zh(N_("Units not in the totals ({n})")).format(n=len(stats["left_out"]))], bold=True)
    t.add([zh(N_("Unit id")), zh(N_("Unit name")), zh(N_("statistics sheet")), zh(N_("Why"))], header=True)
    for u in stats["left_out"]:
        t.add(
            [u["id"], u["name"], ITEM_STATE_CN.get(u["state"], u["state"]), u.get("reason_zh") or u["reason"]]
        )
    notes = stats_notes_zh(stats)
    if notes:
        t.add([])
        t.add([zh(N_("Notes"))], bold=True)
        for note in notes:
            t.add([note])
    return t


def stats_notes_zh(stats: dict) -> list[str]:
    """What is counted but deserves a look (reconcile.stats notes), in Chinese."""
    out = []
    for u in stats.get("accepted_with_missing_figures") or []:
        out.append(
            zh(
                N_(
                    "{unit}: the sheet was accepted by staff without {missing}; the figures it has are counted"
                )
            ).format(unit=u["name"], missing=SEP.join(u["missing"]))
        )
    for u in stats.get("sheet_names_other_unit") or []:
        out.append(
            zh(N_("{unit}: the sheet names {cell} as its unit ({names})")).format(
                unit=u["name"], cell=u["unit_cell"], names=u["names"]
            )
        )
    for d in stats.get("same_sheet") or []:
        out.append(
            zh(N_("The same sheet (the same file) counts for {units}")).format(
                units=SEP.join(u["name"] for u in d["units"])
            )
        )
    return out
