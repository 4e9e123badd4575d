#!/usr/bin/env python3
"""Make tests/fixtures/data/old-db/: a database written by an earlier mailroll (before campaigns).

    .venv/bin/python scripts/make_old_db.py [COMMIT]     (default 371a723)

Runs that commit's code (``git archive`` into a temporary folder) on a small campaign: five
messages ingested (one complete unit, one invalid video, one unmatched), an ``assign`` and an
``exempt`` decision, receipts and the 'before-3d' reminders sent to a local SMTP server. Keeps
the database, the roster and the config, and what that code's ``status --json``,
``messages --json`` and ``remind --dry-run --json`` said, for tests/test_migration.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures.campaign import Campaign  # noqa: E402
from fixtures.files import Media, make_report_docx, make_sheet_xlsx  # noqa: E402
from fixtures.mail import build_mail  # noqa: E402
from fixtures.smtp import SmtpServer  # noqa: E402

OUT = REPO / "tests" / "fixtures" / "data" / "old-db"
BEFORE = datetime(2022, 6, 20, 2, 30, tzinfo=UTC)


def old_code(commit: str, into: Path) -> Path:
    data = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def run(code: Path, campaign: Campaign, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(code), "MAILROLL_ACTOR": "old-staff"}
    proc = subprocess.run(
        [sys.executable, "-m", "reconcile", "--config", str(campaign.config_path), *args],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else "371a723"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        code = old_code(commit, tmp_path / "code")
        media = Media(tmp_path / "media")
        media.root.mkdir()
        server = SmtpServer().start()
        try:
            campaign = Campaign.create(tmp_path / "campaign", smtp=server.config())
            sheet = make_sheet_xlsx(tmp_path / "统计表.xlsx")
            report = make_report_docx(tmp_path / "总结报告.docx", chars=800)
            files = [
                ("统计表.xlsx", sheet.read_bytes()),
                ("总结报告.docx", report.read_bytes()),
                ("科技周视频.mp4", media.video(60).read_bytes()),
            ]
            ty = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
            campaign.deliver(build_mail(ty, subject="太原市科技活动周材料", attachments=files), when=BEFORE)
            campaign.deliver(
                build_mail(
                    "山西大学科技处 <kjc@sxu.edu.cn>",
                    subject="山西大学视频",
                    attachments=[("视频.mp4", media.video(200).read_bytes())],
                ),
                when=BEFORE,
            )
            campaign.deliver(
                build_mail(
                    "张老师 <zhang123@qq.com>",
                    subject="材料",
                    attachments=[("总结报告.docx", report.read_bytes())],
                ),
                when=BEFORE,
            )
            run(code, campaign, "ingest", "--once")
            unmatched = json.loads(run(code, campaign, "unmatched", "--json"))
            message = unmatched[0]["message_id"]
            run(code, campaign, "assign", message, "datong-kjj", "--note", "大同市科技局张老师")
            run(code, campaign, "exempt", "jinzhong-kjj", "--note", "今年不参加")
            run(code, campaign, "receipts", "--now", "2022-06-20T10:45:00+08:00")
            run(code, campaign, "remind", "--now", "2022-06-23T10:00:00+08:00")
            expected = {
                "commit": commit,
                "status": json.loads(run(code, campaign, "status", "--json")),
                "messages": json.loads(run(code, campaign, "messages", "--json")),
                "remind_again": json.loads(
                    run(code, campaign, "remind", "--now", "2022-06-23T11:00:00+08:00", "--dry-run", "--json")
                ),
                "mails_sent": len(server.messages),
            }
        finally:
            server.stop()
        if OUT.exists():
            shutil.rmtree(OUT)
        OUT.mkdir(parents=True)
        conn_path = campaign.db_path
        import sqlite3

        src = sqlite3.connect(conn_path)
        dst = sqlite3.connect(OUT / "mailroll.db")
        src.backup(dst)  # one file, no WAL
        dst.execute("PRAGMA journal_mode = DELETE")
        src.close()
        dst.close()
        shutil.copy(campaign.root / "roster.csv", OUT / "roster.csv")
        (OUT / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", "utf-8")
        print(f"wrote {OUT} ({expected['mails_sent']} mails sent by the old code)")


if __name__ == "__main__":
    main()
