"""The CLI speaks Chinese when the locale is Chinese (or [ui] lang / --lang say so), English
otherwise; --json never changes. One catalog (reconcile/locale), compiled .mo committed and current."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from fixtures.mail import build_mail

REPO = Path(__file__).resolve().parents[1]
JZ = "晋中市科学技术局 <jzkjj@sina.com>"


def _mailroll(campaign, *args: str, lang_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")}
    env["LANG"] = lang_env
    return subprocess.run(
        [sys.executable, "-m", "reconcile", "--config", str(campaign.config_path), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _ingest_long_video(campaign, media) -> None:
    campaign.deliver(
        build_mail(from_=JZ, attachments=[("纪实.mp4", media.video(200).read_bytes())]),
        when=datetime(2022, 6, 20, 2, 0, tzinfo=UTC),
    )
    campaign.run("ingest", "--once")


def test_status_speaks_the_locale_and_json_does_not(campaign, media):
    _ingest_long_video(campaign, media)
    zh = _mailroll(campaign, "status", lang_env="zh_CN.UTF-8")
    en = _mailroll(campaign, "status", lang_env="C")
    assert zh.returncode == en.returncode == 0, zh.stderr + en.stderr
    zh_words = (
        "单位",
        "统计表",
        "总结报告",
        "最后来信",
        "不合格",
        "视频时长3:20，超过3:00的限制",
        "不齐全1个",
        "未报送11个",
    )
    en_words = (
        "unit",
        "statistics",
        "last arrival",
        "invalid",
        "video lasts 3:20, over the 3:00 limit",
        "1 incomplete",
    )
    assert [w for w in zh_words if w not in zh.stdout] == []
    assert [w for w in en_words if w not in en.stdout] == []
    assert "video lasts 3:20" not in zh.stdout and "incomplete" not in zh.stdout
    assert "视频时长" not in en.stdout and "不合格" not in en.stdout
    as_json = {
        lang: _mailroll(campaign, "status", "--json", lang_env=lang).stdout for lang in ("zh_CN.UTF-8", "C")
    }
    assert as_json["zh_CN.UTF-8"] == as_json["C"] and '"state": "incomplete"' in as_json["C"]


def test_show_and_errors_in_chinese(campaign, media):
    _ingest_long_video(campaign, media)
    shown = _mailroll(campaign, "show", "jinzhong-kjj", lang_env="zh_CN.UTF-8")
    assert "状态：不齐全" in shown.stdout and "原因：视频时长3:20，超过3:00的限制" in shown.stdout
    assert "来信（1封）" in shown.stdout
    wrong = _mailroll(campaign, "show", "nowhere", lang_env="zh_CN.UTF-8")
    assert wrong.returncode == 2 and "名单中没有单位 nowhere" in wrong.stderr and "错误" in wrong.stderr


def test_config_and_option_choose_the_language(campaign):
    campaign.configure(ui={"lang": "zh"})
    assert "齐全0个" in _mailroll(campaign, "status", lang_env="C").stdout
    assert "0 complete" in _mailroll(campaign, "--lang", "en", "status", lang_env="zh_CN.UTF-8").stdout


def test_help_in_chinese(campaign):
    top = _mailroll(campaign, "--help", lang_env="zh_CN.UTF-8")
    assert top.returncode == 0
    assert "用法：" in top.stdout and "显示本帮助并退出。" in top.stdout
    assert "名单中每个单位一行" in top.stdout  # the status command's help
    sub = _mailroll(campaign, "status", "--help", lang_env="zh_CN.UTF-8")
    assert "只列出有逾期材料的单位。" in sub.stdout
    assert "Show this message and exit." in _mailroll(campaign, "--help", lang_env="C").stdout


def test_the_catalog_is_complete_and_compiled():
    res = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "messages.py"), "--check"], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr
    from reconcile.i18n import zh

    assert (zh("complete"), zh("nothing sent"), zh("missing")) == ("齐全", "未报送", "未收到")
