"""Benchmark: `mailroll search` over 20,000 messages.

Target (issue: the clerk's day 2): a search answers in under 100 ms. Builds a throw-away
database of ``--messages`` realistic messages (Chinese text of 200-3,000 characters with quoted
replies, senders with Chinese names, a third with attachments named as units name them),
indexed as ingest indexes them (``ingest.search_index.index_message``), then times
``reconcile.search.search`` (the query, the join, the snippets: what `search --json` and the web
do after opening the database) for words of 1, 2 and 4 characters, a sender's name, part of an
address, two words together and a word found nowhere. Beside each, in the same run and
alternated, the plain way without an index: ``LIKE '%word%'`` over the same columns.
Exit status 1 if a median is over the target.

    .venv/bin/python bench/bench_search.py [--messages 20000] [--rounds 7] [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from common import add_common_args, bench_dir

from ingest.db import open_connection, transaction  # noqa: E402 - the repo is put on sys.path first
from ingest.search_index import index_message  # noqa: E402
from reconcile.search import search  # noqa: E402

TARGET_MS = 100.0
WORDS = (
    "活动 科普 宣传 材料 报送 统计 总结 报告 视频 照片 单位 科技 周 年度 "
    "工作 开展 情况 组织 群众 讲座 展览 学校 社区 企业 农村"
).split()
NAMES = "王丽 张强 李娜 赵敏 刘洋 陈静 杨帆 孙伟 周婷 吴刚 郑洁 冯磊 李明 黄磊 何静".split()
QUERIES = [["经"], ["经费"], ["科普讲座"], ["李明"], ["taiyuan"], ["经费", "李明"], ["不存在的词"]]


def _text(rnd: random.Random) -> str:
    words = [rnd.choice(WORDS) for _ in range(rnd.randint(60, 900))]
    if rnd.random() < 0.05:
        words.insert(rnd.randint(0, len(words)), "经费")
    body = "，".join("".join(words[i : i + 6]) for i in range(0, len(words), 6)) + "。"
    if rnd.random() < 0.5:
        body += "\n\n------------------ 原始邮件 ------------------\n发件人: 科技厅\n" + "请报送材料。" * 20
    return body


def build(root: Path, n_messages: int, seed: int = 11) -> Path:
    rnd = random.Random(seed)
    db = root / "search.db"
    conn = open_connection(db)
    start = datetime(2022, 5, 1, tzinfo=UTC)
    with transaction(conn):
        for i in range(n_messages):
            name = rnd.choice(NAMES)
            city = rnd.choice(["taiyuan", "datong", "changzhi", "jinzhong", "yuncheng", "sxu", "tyut"])
            cur = conn.execute(
                "INSERT INTO messages (source, source_key, message_id, status, from_addr, from_name, subject, "
                "received_at, body_text, ingested_at) VALUES ('bench', ?, ?, 'recorded', ?, ?, ?, ?, ?, ?)",
                (
                    str(i),
                    f"m{i}@bench",
                    f"kj{i % 300}@{city}.gov.cn",
                    name,
                    f"{rnd.choice(WORDS)}{rnd.choice(WORDS)}的材料（第{i}封）",
                    (start + timedelta(minutes=3 * i)).isoformat().replace("+00:00", "Z"),
                    _text(rnd),
                    start.isoformat(),
                ),
            )
            if rnd.random() < 0.33:
                conn.execute(
                    "INSERT INTO parts (message, seq, origin, location, filename, kind) "
                    "VALUES (?, 0, 'attachment', ?, ?, 'report')",
                    (cur.lastrowid, f"{city}科技活动周总结报告.docx", f"{city}科技活动周总结报告.docx"),
                )
            index_message(conn, cur.lastrowid)  # type: ignore[arg-type]
    conn.close()
    return db


def like_scan(conn, words: list[str]) -> list:
    """The plain way: every word as LIKE '%word%' over subject, sender, text and file names."""
    where = " AND ".join(
        "(m.subject LIKE ?1 OR m.from_addr LIKE ?1 OR m.from_name LIKE ?1 OR m.body_text LIKE ?1 "
        "OR EXISTS (SELECT 1 FROM parts p WHERE p.message = m.id AND p.location LIKE ?1))".replace(
            "?1", f"?{i + 1}"
        )
        for i in range(len(words))
    )
    sql = f"SELECT m.id FROM messages m WHERE {where} ORDER BY m.received_at DESC LIMIT 50"
    return conn.execute(sql, [f"%{w}%" for w in words]).fetchall()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000)
    add_common_args(ap)
    ap.set_defaults(rounds=7)
    args = ap.parse_args(argv)
    if args.quick:
        args.messages, args.rounds = 3_000, 3
    with bench_dir(args.keep) as root:
        return measure(root, args)


def measure(root: Path, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    db = build(root, args.messages)
    print(
        f"built {args.messages} messages in {time.perf_counter() - started:.1f} s ({db.stat().st_size >> 20} MB)"
    )
    conn = open_connection(db, readonly=True)
    tz = ZoneInfo("Asia/Shanghai")
    worst = 0.0
    print(f"{'words':<16} {'found':>5} {'search ms (median, max)':>26} {'LIKE scan ms':>14} {'ratio':>6}")
    for words in QUERIES:
        ours, plain = [], []
        for _ in range(args.rounds):  # alternated, same run
            ours.append(timed(lambda w=words: search(conn, w, tz)))
            plain.append(timed(lambda w=words: like_scan(conn, w)))
        found = len(search(conn, words, tz))
        med, base = statistics.median(ours), statistics.median(plain)
        worst = max(worst, med)
        print(
            f"{' '.join(words):<16} {found:>5} {med:>17.1f} {max(ours):>8.1f} {base:>14.1f} {med / base:>6.2f}"
        )
    ok = worst <= TARGET_MS
    print(f"slowest median {worst:.1f} ms; target <= {TARGET_MS:.0f} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
