"""The roster file: .csv (with or without BOM) or .xlsx, clear errors, `roster check` / `list`."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from fixtures.campaign import SAMPLE_ROSTER

from ingest.config import ConfigError
from reconcile.roster import check_roster, load_roster


def write_csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def test_sample_roster_loads():
    r = load_roster(SAMPLE_ROSTER)
    assert len(r.units) == 12
    ty = r.by_id["taiyuan-kjj"]
    assert ty.aliases == ("太原市科技局", "太原科技局")
    assert ty.emails == ("tykjj@taiyuan.gov.cn", "kjjbgs@taiyuan.gov.cn")
    assert (ty.category, ty.contact, ty.phone) == ("市科技局", "王丽", "0351-4222101")
    assert r.find("太原科技局") is ty and r.find("taiyuan-kjj") is ty and r.find("太原 市科学技术局") is ty
    assert r.find("长治") is None


@pytest.mark.parametrize("bom", [False, True])
def test_csv_with_or_without_bom_and_other_separators(tmp_path, bom):
    path = write_csv(
        tmp_path / "r.csv",
        "id,name,aliases,emails\na,甲单位,甲；甲局,A@X.CN， b@x.cn\n\nb,乙单位,,\n",
        bom=bom,
    )
    r = load_roster(path)
    assert [u.id for u in r.units] == ["a", "b"]
    assert r.units[0].aliases == ("甲", "甲局") and r.units[0].emails == ("a@x.cn", "b@x.cn")
    assert r.units[1].emails == ()


def test_xlsx_with_chinese_headers(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["编号", "单位名称", "别名", "邮箱", "类别", "联系人", "电话"])
    ws.append(["sxu", "山西大学", "山大", "kjc@sxu.edu.cn", "高等院校", "吴刚", 3517011234])
    wb.save(tmp_path / "r.xlsx")
    (u,) = load_roster(tmp_path / "r.xlsx").units
    assert (u.id, u.name, u.aliases, u.emails, u.category, u.phone) == (
        "sxu",
        "山西大学",
        ("山大",),
        ("kjc@sxu.edu.cn",),
        "高等院校",
        "3517011234",
    )


@pytest.mark.parametrize(
    "text, words",
    [
        ("id,name,emails\na,甲,a@x.cn\n", ["row 1", "missing column aliases"]),
        ("id,name,aliases,emails\na,甲,,\na,乙,,\n", ["row 3", "column A (id)", "duplicate id 'a'", "row 2"]),
        ("id,name,aliases,emails\na,,,\n", ["row 2", "column B (name)", "empty name"]),
        (
            "id,name,aliases,emails\na,甲,,not-an-address\n",
            ["row 2", "column D (emails)", "'not-an-address'"],
        ),
    ],
)
def test_errors_name_file_row_and_column(tmp_path, text, words):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ConfigError) as e:
        load_roster(path)
    assert str(path) in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_gbk_csv_is_refused_with_advice(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("id,name,aliases,emails\na,甲单位,,\n".encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8.*CSV UTF-8"):
        load_roster(path)


def test_check_finds_likely_mistakes(tmp_path):
    path = write_csv(
        tmp_path / "r.csv",
        "id,name,aliases,emails\n"
        "a,太原市科学技术局,太原市科学技术,shared@x.cn\n"
        "b,太原市科学技术协会,,shared@x.cn\n"
        "c,晋中市科学技术局,,\n"
        "d,晋中市科学技术局,,d@x.cn\n",
    )
    kinds = {(f.kind, tuple(f.units)) for f in check_roster(load_roster(path))}
    assert ("shared-address", ("a", "b")) in kinds
    assert ("alias-inside-name", ("a", "b")) in kinds  # 太原市科学技术 is in 太原市科学技术协会
    assert ("no-address", ("c",)) in kinds
    assert ("duplicate-name", ("c", "d")) in kinds


def test_roster_commands(campaign, tmp_path):
    res = campaign.run("roster", "list", "--json")
    assert [u["id"] for u in res.json][:2] == ["taiyuan-kjj", "datong-kjj"]
    assert "太原市科学技术局" in campaign.run("roster", "list").output
    clean = campaign.run("roster", "check", "--json")
    assert clean.json == {"units": 12, "findings": []}
    roster = campaign.root / "roster.csv"
    roster.write_text(roster.read_text("utf-8") + "extra,某某单位,,kjc@sxu.edu.cn\n", "utf-8")
    res = campaign.run("roster", "check", expect=1)
    assert "shared-address" in res.output and "kjc@sxu.edu.cn" in res.output
    roster.write_text(roster.read_text("utf-8") + "extra,重复,,\n", "utf-8")
    res = campaign.run("status", expect=2)
    assert "duplicate id 'extra'" in res.stderr


def test_check_reports_decisions_for_units_not_in_the_roster():
    from reconcile.overrides import Override

    roster = load_roster(SAMPLE_ROSTER)
    gone = Override(7, "accept", "sxas-old", "video", None, None, "U盘", "zhang", "2022-06-20T02:00:00+00:00")
    kept = Override(8, "exempt", "sxas", None, None, None, "x", "zhang", "2022-06-20T02:00:00+00:00")
    findings = [f for f in check_roster(roster, [gone, kept]) if f.kind == "decision-for-unknown-unit"]
    assert [f.as_dict() for f in findings] == [
        {
            "kind": "decision-for-unknown-unit",
            "units": ["sxas-old"],
            "message": "override 7 (accept video) names unit sxas-old, which is not in the roster: it has no effect; "
            "revoke it (`mailroll revoke 7`) and decide again for the right unit",
        }
    ]
