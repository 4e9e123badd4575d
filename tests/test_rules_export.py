"""Export rules found unguarded by generated mutants (scripts/mutation.py): folder names when two
units share a name, earlier versions arriving in the same second, and the CSV formula guard on
what a sender wrote (a file name is the sender's text). Through `mailroll export` and the files
it writes, on a Maildir campaign."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

from fixtures.files import DEFAULT_FIGURES, make_sheet_xlsx
from fixtures.mail import build_mail

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
DT = "大同市科学技术局 <dtkjj2022@163.com>"
BEFORE = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)


def list_rows(out) -> list[dict]:
    return list(csv.DictReader((out / "清单.csv").read_text("utf-8-sig").splitlines()))


def rename_unit(campaign, unit_id: str, name: str) -> None:
    """The roster with ``unit_id`` renamed to ``name`` (aliases dropped: the name alone)."""
    path = campaign.root / "roster.csv"
    rows = list(csv.DictReader(path.read_text("utf-8").splitlines()))
    for r in rows:
        if r["id"] == unit_id:
            r["name"], r["aliases"] = name, ""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_two_units_of_one_name_get_their_ids_as_folders_the_others_their_names(campaign, tmp_path):
    # one entry of a name: its name; two entries (differing only in case): both by id
    rename_unit(campaign, "taiyuan-kjj", "Science Bureau")
    rename_unit(campaign, "datong-kjj", "SCIENCE BUREAU")
    out = tmp_path / "out"
    campaign.run("export", str(out))
    folders = {p.name for p in out.iterdir() if p.is_dir()}
    assert {"taiyuan-kjj", "datong-kjj", "长治市科学技术局"} <= folders
    assert not {"Science Bureau", "SCIENCE BUREAU", "changzhi-kjj"} & folders
    rename_unit(campaign, "datong-kjj", "Science Bureau 2")
    out2 = tmp_path / "out2"
    campaign.run("export", str(out2))
    folders = {p.name for p in out2.iterdir() if p.is_dir()}
    assert {"Science Bureau", "Science Bureau 2"} <= folders and "taiyuan-kjj" not in folders


def test_earlier_versions_of_one_second_are_numbered_not_overwritten(campaign, tmp_path):
    """Two earlier sheets that arrived in the same second, then the one that counts:
    --all-versions keeps both earlier ones, the second named ``-2``; nothing is lost."""
    sheets = [
        make_sheet_xlsx(tmp_path / f"s{n}.xlsx", figures={**DEFAULT_FIGURES, "活动总数": 20 + n}).read_bytes()
        for n in range(3)
    ]
    later = datetime(2022, 6, 21, 2, 30, tzinfo=UTC)
    for sheet, when in zip(sheets, (BEFORE, BEFORE, later), strict=True):
        campaign.deliver(build_mail(from_=TY, attachments=[("统计表.xlsx", sheet)]), when=when)
    campaign.run("ingest", "--once")
    out = tmp_path / "out"
    campaign.run("export", str(out), "--all-versions")
    unit = out / "太原市科学技术局"
    history = sorted(p.name for p in (unit / "历史版本").iterdir())
    assert history == [
        "太原市科学技术局-统计表-20220620-103000-2.xlsx",
        "太原市科学技术局-统计表-20220620-103000.xlsx",
    ]
    assert (unit / "太原市科学技术局-统计表.xlsx").read_bytes() == sheets[2]
    assert {p.read_bytes() for p in unit.rglob("*.xlsx")} == set(sheets)  # none lost to a name taken twice
    rows = [r for r in list_rows(out) if r["单位编号"] == "taiyuan-kjj" and r["材料"] == "统计表"]
    assert sorted(r["版本"] for r in rows) == ["历史版本", "历史版本", "计入"]


def test_a_file_name_that_starts_a_formula_is_text_in_the_csv_list(campaign, tmp_path, media):
    """Excel and WPS run a CSV cell starting with = + - @ (or a tab, a carriage return) as a
    formula: such a name as sent is written with a leading apostrophe; other names and the numbers
    (size) are written as they are."""
    sheet, report = media.sheet_xlsx.read_bytes(), media.report_docx.read_bytes()
    names = {
        "taiyuan-kjj": ('=HYPERLINK("x.example","统计表").xlsx', "@SUM(1)总结报告.docx"),
        "datong-kjj": ("+86统计表.xlsx", "-1总结报告.docx"),
    }
    for sender, uid in ((TY, "taiyuan-kjj"), (DT, "datong-kjj")):
        sheet_name, report_name = names[uid]
        campaign.deliver(
            build_mail(from_=sender, attachments=[(sheet_name, sheet), (report_name, report)]), when=BEFORE
        )
    campaign.deliver(
        build_mail(from_="晋中市科学技术局 <jzkjj@sina.com>", attachments=[("统计表.xlsx", sheet)])
    )
    campaign.run("ingest", "--once")
    out = tmp_path / "out"
    campaign.run("export", str(out))
    rows = list_rows(out)
    sent = {(r["单位编号"], r["材料"]): r["原文件名"] for r in rows if r["原文件名"]}
    assert sent[("taiyuan-kjj", "统计表")] == "'" + names["taiyuan-kjj"][0]
    assert sent[("taiyuan-kjj", "总结报告")] == "'" + names["taiyuan-kjj"][1]
    assert sent[("datong-kjj", "统计表")] == "'" + names["datong-kjj"][0]
    assert sent[("datong-kjj", "总结报告")] == "'" + names["datong-kjj"][1]
    assert sent[("jinzhong-kjj", "统计表")] == "统计表.xlsx"
    sizes = [r["大小（字节）"] for r in rows if r["大小（字节）"]]
    assert sizes and all(s.isdigit() for s in sizes)
    # UTF-8 with a BOM (how Excel knows it is UTF-8), rows ended by CRLF as RFC 4180 says
    raw = (out / "清单.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\r\n") == len(rows) + 1


def test_report_csv_writes_every_sheet_with_a_bom_and_guards_formulas(campaign, tmp_path, media):
    """`report --csv DIR`: one CSV per sheet of the workbook, each readable by Excel (BOM), a
    file name that starts a formula kept as text."""
    campaign.deliver(
        build_mail(from_=TY, attachments=[("=1+2统计表.xlsx", media.sheet_xlsx.read_bytes())]),
        when=BEFORE,
    )
    campaign.run("ingest", "--once")
    out = tmp_path / "new" / "csv"  # folders that do not exist yet
    campaign.run("report", "--csv", str(out))
    written = campaign.run("report", "--csv", str(out), "--json").json  # again, over the same folder
    files = sorted(out.glob("*.csv"))
    assert len(files) >= 2 and {str(p) for p in files} <= set(map(str, written.get("written", written)))
    for path in files:
        assert path.read_bytes().startswith(b"\xef\xbb\xbf"), path.name
    texts = "".join(p.read_text("utf-8-sig") for p in files)
    assert ",'=1+2统计表.xlsx," in texts and ",=1+2" not in texts
    assert not list(out.glob(".*.tmp"))  # written whole, under a temporary name first
    # a unit that sent nothing: its cells for what it never sent are empty
    rows = [r for p in files for r in csv.DictReader(p.read_text("utf-8-sig").splitlines())]
    changzhi = next(r for r in rows if r.get("单位编号") == "changzhi-kjj" and "最后来信" in r)
    assert changzhi["最后来信"] == "" and changzhi["统计表收到时间"] == ""
