"""`mailroll export`: a realistic campaign served by a real Dovecot, exported by unit and item.

The units' files are real (.xlsx, .docx, .pdf, ffmpeg-made .mp4); the exported copies must be
byte-identical to what the units sent, named by unit and item, and the zip must show the Chinese
names in Python's zipfile and in bsdtar.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fixtures.files import DEFAULT_FIGURES, make_report_docx, make_report_pdf, make_sheet_xlsx
from fixtures.mail import build_mail

from reconcile.export_names import safe_name

TY = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
DT = "大同市科学技术局 <dtkjj2022@163.com>"
JZ = "晋中市科学技术局 <jzkjj@sina.com>"
BEFORE = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)
LATER = datetime(2022, 6, 22, 9, 15, tzinfo=UTC)
AFTER = datetime(2022, 6, 27, 1, 0, tzinfo=UTC)  # deadline: 2022-06-25 15:59:59Z


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root (but the manifest): relative path -> (sha256, mtime_ns)."""
    return {
        str(p.relative_to(root)): (sha(p.read_bytes()), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".mailroll-export.json"
    }


@pytest.fixture
def sent(imap_campaign, tmp_path, media):
    """Three units send through Dovecot; returns {(unit, what): bytes sent}."""
    c = imap_campaign
    ty_sheet = make_sheet_xlsx(tmp_path / "ty1.xlsx").read_bytes()
    ty_sheet2 = make_sheet_xlsx(
        tmp_path / "ty2.xlsx", figures={**DEFAULT_FIGURES, "活动总数": 23}
    ).read_bytes()
    ty_report = make_report_docx(tmp_path / "ty.docx", chars=800).read_bytes()
    video = media.video(60).read_bytes()
    long_video = media.video(200).read_bytes()
    dt_sheet = make_sheet_xlsx(tmp_path / "dt.xlsx", unit="大同市科学技术局").read_bytes()
    dt_report = make_report_pdf(tmp_path / "dt.pdf", chars=600).read_bytes()
    jz_short = media.video(30).read_bytes()

    def mail(from_, files, when):
        raw = build_mail(from_=from_, attachments=files).as_bytes()
        c.dovecot.append(c.imap_user, raw, internaldate=when)

    mail(TY, [("统计表.xlsx", ty_sheet), ("总结报告.docx", ty_report), ("科技周视频.mp4", video)], BEFORE)
    mail(TY, [("统计表（更正版）.xlsx", ty_sheet2)], AFTER)
    mail(DT, [("附件1:统计表?.xlsx", dt_sheet), ("总结.pdf", dt_report), ("长视频.mp4", long_video)], LATER)
    mail(JZ, [("视频一.mp4", video), ("视频二.mp4", jz_short)], LATER)
    assert c.run("ingest", "--once", "--json").json["attributed"] == 4
    return {
        ("ty", "sheet1"): ty_sheet,
        ("ty", "sheet"): ty_sheet2,
        ("ty", "report"): ty_report,
        ("ty", "video"): video,
        ("dt", "sheet"): dt_sheet,
        ("dt", "report"): dt_report,
        ("dt", "video"): long_video,
        ("jz", "video1"): video,
        ("jz", "video2"): jz_short,
    }


def test_export_by_unit_and_item_byte_identical(sent, imap_campaign, tmp_path):
    c = imap_campaign
    out = tmp_path / "导出"
    res = c.run("export", str(out), "--json").json
    ty, dt, jz = out / "太原市科学技术局", out / "大同市科学技术局", out / "晋中市科学技术局"
    assert (ty / "太原市科学技术局-统计表.xlsx").read_bytes() == sent[("ty", "sheet")]  # the corrected one
    assert (ty / "太原市科学技术局-总结报告.docx").read_bytes() == sent[("ty", "report")]
    assert (ty / "太原市科学技术局-视频.mp4").read_bytes() == sent[("ty", "video")]
    assert sorted(p.name for p in ty.iterdir()) == sorted(
        ["太原市科学技术局-视频.mp4", "太原市科学技术局-总结报告.docx", "太原市科学技术局-统计表.xlsx"]
    )
    # an invalid item (video over 3:00) is exported too, whatever its state
    assert (dt / "大同市科学技术局-视频.mp4").read_bytes() == sent[("dt", "video")]
    assert (dt / "大同市科学技术局-总结报告.pdf").read_bytes() == sent[("dt", "report")]
    # two files of one item in the counted message: numbered, the counted one first
    assert sorted(p.name for p in jz.iterdir()) == [
        "晋中市科学技术局-视频-1.mp4",
        "晋中市科学技术局-视频-2.mp4",
    ]
    jz_shas = {sha(p.read_bytes()) for p in jz.iterdir()}
    assert jz_shas == {sha(sent[("jz", "video1")]), sha(sent[("jz", "video2")])}
    # one folder per roster unit, also for units that sent nothing
    roster = (c.root / "roster.csv").read_text("utf-8").splitlines()[1:]
    assert {p.name for p in out.iterdir() if p.is_dir()} == {line.split(",")[1] for line in roster}
    assert res["units"] == len(roster) and res["files"] == 3 + 3 + 2 and len(res["written"]) == 8

    rows = list(csv.DictReader((out / "清单.csv").read_text("utf-8-sig").splitlines()))
    by = {(r["单位编号"], r["材料"], r["导出文件名"]): r for r in rows}
    video_row = by[("datong-kjj", "视频", "大同市科学技术局/大同市科学技术局-视频.mp4")]
    assert video_row["状态"] == "不合格" and "3:00" in video_row["原因"]
    assert video_row["原文件名"] == "长视频.mp4" and video_row["sha256"] == sha(sent[("dt", "video")])
    assert int(video_row["大小（字节）"]) == len(sent[("dt", "video")])
    sheet_row = by[("taiyuan-kjj", "统计表", "太原市科学技术局/太原市科学技术局-统计表.xlsx")]
    assert sheet_row["逾期"] == "逾期" and sheet_row["原文件名"] == "统计表（更正版）.xlsx"
    assert sheet_row["收到时间"] == "2022-06-27 09:00:00"  # campaign time (Asia/Shanghai)
    missing = [r for r in rows if r["单位编号"] == "changzhi-kjj"]
    assert [(r["材料"], r["状态"], r["导出文件名"]) for r in missing] == [
        ("统计表", "未收到", ""),
        ("总结报告", "未收到", ""),
        ("视频", "未收到", ""),
    ]
    from openpyxl import load_workbook

    ws = load_workbook(out / "清单.xlsx").active
    assert [c.value for c in ws[1]][:3] == ["单位编号", "单位", "材料"]
    assert ws.max_row == len(rows) + 1


def test_second_export_changes_nothing_and_zip_has_utf8_names(sent, imap_campaign, tmp_path):
    c = imap_campaign
    out, zpath = tmp_path / "out", tmp_path / "材料.zip"
    c.run("export", str(out), "--zip", str(zpath))
    before, zip_before = tree(out), (sha(zpath.read_bytes()), zpath.stat().st_mtime_ns)
    res = c.run("export", str(out), "--zip", str(zpath), "--json").json
    assert (
        res["written"] == [] and res["removed"] == [] and not res["list_written"] and not res["zip_written"]
    )
    assert tree(out) == before
    assert (sha(zpath.read_bytes()), zpath.stat().st_mtime_ns) == zip_before

    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
        assert "太原市科学技术局/太原市科学技术局-统计表.xlsx" in names and "清单.xlsx" in names
        for info in zf.infolist():
            assert info.flag_bits & 0x800, info.filename  # the UTF-8 flag
        assert sha(zf.read("大同市科学技术局/大同市科学技术局-视频.mp4")) == sha(sent[("dt", "video")])
        assert zf.testzip() is None
    bsdtar = shutil.which("bsdtar")
    assert bsdtar, "bsdtar is not installed: run `make test` (libarchive-tools)"
    listing = subprocess.run([bsdtar, "-tf", str(zpath)], capture_output=True, check=True).stdout.decode(
        "utf-8"
    )
    assert "晋中市科学技术局/晋中市科学技术局-视频-1.mp4" in listing.splitlines()


def test_export_follows_changes_and_keeps_files_of_others(sent, imap_campaign, tmp_path):
    c = imap_campaign
    out = tmp_path / "out"
    c.run("export", str(out))
    mine = out / "太原市科学技术局" / "备注.txt"
    mine.write_text("staff notes", encoding="utf-8")
    # 大同 sends a shorter video: only that file changes, the staff's own file stays
    c.dovecot.append(
        c.imap_user,
        build_mail(from_=DT, attachments=[("视频.mp4", sent[("jz", "video2")])]).as_bytes(),
        internaldate=AFTER,
    )
    c.run("ingest", "--once")
    res = c.run("export", str(out), "--json").json
    assert res["written"] == ["大同市科学技术局/大同市科学技术局-视频.mp4"]
    assert (out / "大同市科学技术局" / "大同市科学技术局-视频.mp4").read_bytes() == sent[("jz", "video2")]
    assert mine.read_text(encoding="utf-8") == "staff notes"
    assert res["list_written"]


def test_all_versions_keeps_every_version(sent, imap_campaign, tmp_path):
    c = imap_campaign
    out = tmp_path / "out"
    c.run("export", str(out), "--all-versions")
    history = out / "太原市科学技术局" / "历史版本"
    assert [p.name for p in history.iterdir()] == ["太原市科学技术局-统计表-20220620-103000.xlsx"]
    assert (history / "太原市科学技术局-统计表-20220620-103000.xlsx").read_bytes() == sent[("ty", "sheet1")]
    exported = {sha(p.read_bytes()) for p in out.rglob("*") if p.is_file() and p.suffix in (".xlsx", ".docx")}
    assert sha(sent[("ty", "sheet1")]) in exported and sha(sent[("ty", "sheet")]) in exported
    # without --all-versions again: the history files of ours go away
    res = c.run("export", str(out), "--json").json
    assert res["removed"] == ["太原市科学技术局/历史版本/太原市科学技术局-统计表-20220620-103000.xlsx"]
    assert not history.exists()


def test_exported_files_are_copies_never_moves(sent, imap_campaign, tmp_path):
    c = imap_campaign
    out = tmp_path / "out"
    c.run("export", str(out))
    shutil.rmtree(out)
    assert c.run("status", "--json").json[0]["state"] == "complete"
    c.run("export", str(out))
    assert (out / "太原市科学技术局" / "太原市科学技术局-视频.mp4").read_bytes() == sent[("ty", "video")]


@pytest.mark.parametrize(
    ("name", "ext", "expected"),
    [
        ('a<b>c:d"e/f\\g|h?i*j', ".xlsx", "a_b_c_d_e_f_g_h_i_j.xlsx"),
        ("CON", ".docx", "_CON.docx"),
        ("nul", "", "_nul"),
        ("com1.统计表", ".pdf", "_com1.统计表.pdf"),
        ("末尾的点. ", ".mp4", "末尾的点.mp4"),
        ("制表\t符", "", "制表_符"),
        ("", ".mp4", "_.mp4"),
        ("x", ".not an ext", "x"),
        ("清单.xlsx", "", "_清单.xlsx"),
        ("清单", ".csv", "_清单.csv"),
        (".mailroll-export.json", "", "_.mailroll-export.json"),
        (" .隐藏", "", "_.隐藏"),
        ("清单", "", "清单"),
    ],
)
def test_names_are_safe_on_windows_and_never_ours(name, ext, expected):
    assert safe_name(name, ext) == expected


def test_long_names_are_cut_to_255_bytes_on_a_character_boundary_with_a_hash():
    a, b = "名" * 200, "名" * 199 + "字"
    cut_a, cut_b = safe_name(a, ".mp4"), safe_name(b, ".mp4")
    assert len(cut_a.encode()) <= 255 and len(cut_b.encode()) <= 255
    assert cut_a.startswith("名" * 80) and cut_a.endswith(".mp4") and cut_a != cut_b
    assert cut_a == safe_name(a, ".mp4")  # the same name each time: a second export changes nothing
    assert safe_name("名" * 83, ".mp4") == "名" * 83 + ".mp4"  # 253 bytes: not cut


def test_file_names_use_the_campaigns_item_labels(campaign, tmp_path, media):
    """Labels are the campaign's data: 影像资料 for the video, and a fourth item 典型案例."""
    from test_campaign_items import SCIENCE_WEEK_4

    campaign.use_campaigns(SCIENCE_WEEK_4)
    report = make_report_docx(tmp_path / "r.docx", chars=800).read_bytes()
    case = make_report_docx(tmp_path / "c.docx", chars=300).read_bytes()
    video = media.video(30).read_bytes()
    msg = build_mail(
        TY,
        subject="科技活动周材料",
        attachments=[("总结报告.docx", report), ("典型案例：科普大篷车.docx", case), ("视频.mp4", video)],
    )
    campaign.deliver(msg, when=BEFORE)
    campaign.run("ingest", "--once")
    out = tmp_path / "out"
    campaign.run("export", str(out))
    ty = out / "太原市科学技术局"
    assert sorted(p.name for p in ty.iterdir()) == sorted(
        ["太原市科学技术局-总结报告.docx", "太原市科学技术局-典型案例.docx", "太原市科学技术局-影像资料.mp4"]
    )
    assert (ty / "太原市科学技术局-典型案例.docx").read_bytes() == case
    rows = list(csv.DictReader((out / "清单.csv").read_text("utf-8-sig").splitlines()))
    assert [r["材料"] for r in rows if r["单位编号"] == "taiyuan-kjj"] == [
        "统计表",
        "总结报告",
        "影像资料",
        "典型案例",
    ]


LONG_NAME = "山西省" + "科学技术普及与创新服务" * 9 + "中心"  # 104 characters, 312 bytes


@pytest.fixture
def odd_units(campaign, tmp_path, media):
    """Units named like the export's own files and one with a 104-character name; their files sent
    under misleading names: a .docx as 总结报告.hta, an .mp4 as 视频.scr, a web page as 视频.mp4."""
    with open(campaign.root / "roster.csv", "a", encoding="utf-8") as f:
        f.write("qingdan,清单.xlsx,,qd@unit.example.cn,市科技局,王,0351-1\n")
        f.write("manifest,.mailroll-export.json,,mf@unit.example.cn,市科技局,李,0351-2\n")
        f.write(f"long,{LONG_NAME},,long@unit.example.cn,市科技局,赵,0351-3\n")
    report = make_report_docx(tmp_path / "r.docx", chars=800).read_bytes()
    video = media.video(30).read_bytes()
    mails = {
        "long@unit.example.cn": [("总结报告.hta", report), ("视频.scr", video)],
        "qd@unit.example.cn": [("视频.mp4", media.fake_mp4.read_bytes())],
        "mf@unit.example.cn": [("总结报告.docx", report)],
    }
    for sender, files in mails.items():
        campaign.deliver(build_mail(sender, subject="科技活动周材料", attachments=files), when=BEFORE)
    campaign.run("ingest", "--once")
    return campaign, {"report": report, "video": video}


def test_export_names_files_by_type_and_never_fails_on_a_units_name(odd_units, tmp_path):
    c, sent = odd_units
    out = tmp_path / "out"
    res = c.run("export", str(out), "--json").json
    assert res["units"] == len(c.status())
    # the units' folders never take the place of 清单 or the manifest
    assert (out / "_清单.xlsx").is_dir() and (out / "_.mailroll-export.json").is_dir()
    assert (out / "清单.xlsx").is_file() and (out / ".mailroll-export.json").is_file()
    # a long name is cut to 255 bytes, on a character boundary
    (long_dir,) = [p for p in out.iterdir() if p.name.startswith("山西省科学技术普及")]
    names = sorted(p.name for p in long_dir.iterdir())
    assert len(long_dir.name.encode()) <= 255 and all(len(n.encode()) <= 255 for n in names)
    # named by what the files are: the .hta is a .docx, the .scr an .mp4, the web page a .bin
    assert sorted(Path(n).suffix for n in names) == [".docx", ".mp4"]
    by_ext = {Path(n).suffix: (long_dir / n).read_bytes() for n in names}
    assert by_ext == {".docx": sent["report"], ".mp4": sent["video"]}
    assert [p.name for p in (out / "_清单.xlsx").iterdir()] == ["_清单.xlsx-视频.bin"]
    rows = list(csv.DictReader((out / "清单.csv").read_text("utf-8-sig").splitlines()))
    sent_as = {r["原文件名"]: r["导出文件名"] for r in rows if r["原文件名"]}
    assert sent_as["总结报告.hta"].endswith(".docx") and sent_as["视频.scr"].endswith(".mp4")
    assert sent_as["视频.mp4"] == "_清单.xlsx/_清单.xlsx-视频.bin"
    # a second export changes nothing
    again = c.run("export", str(out), "--json").json
    assert again["written"] == [] and again["removed"] == [] and not again["list_written"]


def test_web_downloads_are_named_by_type(odd_units):
    """The unit page's download of a .docx sent as 总结报告.hta is a .docx, and a web page sent as
    视频.mp4 is an octet-stream .bin: a double-click never runs what a sender named."""
    import urllib.parse
    import urllib.request

    from test_web import serving

    c, sent = odd_units
    report_part = c.unit("long")["items"]["report"]["part"]
    fake_part = c.unit("qingdan")["items"]["video"]["part"]
    with serving(c) as base:
        with urllib.request.urlopen(f"{base}/files/{report_part}", timeout=30) as r:
            report = (r.headers["Content-Disposition"], r.headers["Content-Type"], r.read())
        with urllib.request.urlopen(f"{base}/files/{fake_part}", timeout=30) as r:
            fake = (r.headers["Content-Disposition"], r.headers["Content-Type"])
    assert urllib.parse.unquote(report[0]).endswith("''总结报告.docx") and report[0].startswith("attachment")
    assert "wordprocessingml" in report[1] and report[2] == sent["report"]
    assert urllib.parse.unquote(fake[0]).endswith("''视频.bin") and fake[0].startswith("attachment")
    assert fake[1] == "application/octet-stream"
