"""Where the time of `ingest --once` goes: the throughput mailbox, profiled with py-spy.

Builds the same mailbox as bench_throughput.py (in a real Dovecot), runs `ingest --once` under
``py-spy record`` (all threads, idle ones too, and subprocesses such as check workers), once
more with ``--gil`` (only samples holding the GIL: who keeps the interpreter busy), and prints
per process and thread where the samples fall, grouped by what the code is doing (waiting on
the socket, imaplib parsing, base64, hashing, writing and fsync, openpyxl, python-docx,
ffprobe, SQLite, waiting for another thread ...). Not a benchmark: no baseline, no target.
py-spy comes from pip (``.venv/bin/pip install py-spy``).

    .venv/bin/python bench/profile_ingest.py [--messages 200] [--video-every 1] [--quick] [--raw DIR]
    .venv/bin/python bench/profile_ingest.py --small --messages 2000   # bench_small.py's mailbox
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_poll import small
from bench_throughput import build_messages
from common import REPO, DovecotServer, imap_campaign, mailroll_argv, warm_up, work_dir

# What a sample is doing: (name, pattern for the innermost frame, pattern for the whole stack);
# the first rule whose patterns both match wins. Frames read 'Class.function (file.py)'; C code
# (sha256, base64, write, fsync) shows as the Python function that called it.
RULES = [
    ("idle worker thread (no work queued)", r"^_worker \(concurrent/futures/thread", None),
    (
        "idle worker process (no task)",
        r"(recv|_recv|_recv_bytes) \(multiprocessing/connection",
        r"_worker_main",
    ),
    ("idle forkserver", None, r"^(?!.*_worker_main).*main \(multiprocessing/(forkserver|resource_tracker)"),
    ("waiting: a task in a worker process", None, r"_Worker\.run \(ingest/workers"),
    ("waiting: ffprobe / LibreOffice subprocess", None, r"run_tool \(ingest/checks"),
    (
        "waiting: the next fetched message",
        r"(Condition\.wait|Queue\.get)",
        r"prefetched \(ingest/sources/imap",
    ),
    ("waiting: a big message being streamed", None, r"_handed_out \(ingest/sources/imap/fetch"),
    ("waiting: a worker (store, probe)", r"(Condition\.wait|Lock\.acquire)", r"Future\.result"),
    ("waiting: the IMAP connection lock", r"_op \(ingest/sources/imap/connection", None),
    ("waiting: the IMAP server (socket)", r"(readinto|recv_into|recv) \((socket|ssl)", None),
    (
        "waiting: other threads / queues",
        r"(Condition\.wait|Lock\.acquire|Queue\.(get|put)|_wait_for_tstate_lock)",
        None,
    ),
    ("start-up: imports", None, r"_find_and_load"),
    ("checks: sheets (openpyxl)", None, r"(read_sheet|\(openpyxl/)"),
    ("checks: reports (python-docx, pypdf)", None, r"(read_report|\(docx/|\(pypdf/)"),
    ("checks: images, other", None, r"probe \(ingest/checks"),
    ("raw copy: hash and layout of the served bytes", None, r"(RawTrail\.served|EncodedTrace\.feed)"),
    ("base64 decoding (streamed parts)", None, r"\(ingest/sources/imap/decode"),
    ("hash + write of streamed parts", r"^(Streamer\.stream|SpoolWriter\._(write|decode)) ", None),
    ("IMAP reply parsing (imaplib, imapclient)", None, r"\((imaplib|imapclient/)"),
    ("MIME parsing (email, ingest/mime)", None, r"\((email/|ingest/mime/)"),
    ("store: write + fsync", None, r"FileStore\.put_"),
    ("hashing (sha256)", None, r"(sha256_file|_hash_parts|content_fingerprint)"),
    ("archives", None, r"\(ingest/archives"),
    (
        "database (SQLite)",
        None,
        r"(record_message|record_failure|find_duplicate|_known_facts|\(ingest/db|sqlite)",
    ),
    ("attribution, status (reconcile)", None, r"\(reconcile/(?!commands/ingest_cmd|cli|fastpath|__main__)"),
]
COMPILED = [
    (name, re.compile(inner) if inner else None, re.compile(stack) if stack else None)
    for name, inner, stack in RULES
]


PROCESS = re.compile(r'process \d+:"[^"]*"')


def categorise(code: list[str]) -> str:
    """code: the frames of one sample, outermost first."""
    if not code:
        return "no Python frames (idle in C, or starting)"
    innermost, stack = code[-1], ";".join(code)
    for name, inner, whole in COMPILED:
        if (inner is None or inner.search(innermost)) and (whole is None or whole.search(stack)):
            return name
    return "other Python"


def summarise(raw: Path, title: str) -> None:
    """py-spy's raw format: one line per distinct stack, outermost first, 'frame;frame;... count'.
    Samples are grouped by role: mailroll's threads by name, the worker processes together."""
    per_role: dict[str, Counter] = defaultdict(Counter)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        processes = PROCESS.findall(stack)  # (a command line may hold ';')
        frames = [f for f in PROCESS.sub("", stack).split(";") if f]
        threads = [f for f in frames if f.startswith("thread ")]
        code = [f for f in frames if not f.startswith("thread ")]
        per_role[_role(processes, threads)][categorise(code)] += int(count)
    print(f"\n== {title} ==")
    for role, cats in sorted(per_role.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(cats.values())
        print(f"  {role}: {n / 100:.1f} s of samples (100 Hz)")
        for name, c in cats.most_common(8):
            if c / n >= 0.02:
                print(f"      {c / n:6.1%}  {name}")


def _role(processes: list[str], threads: list[str]) -> str:
    thread = re.sub(r"^thread \(\d+\):?\s*", "", threads[-1]) if threads else ""
    thread = re.sub(r"[-_]\d+$", "", thread) or "(unnamed thread)"
    if len(processes) <= 1:
        return f"mailroll process, thread {thread}"
    if len(processes) == 2:
        return "forkserver" if "forkserver" in processes[-1] else "multiprocessing helper"
    return "worker processes (all of them)"


def profile(campaign, out: Path, gil: bool) -> float:
    cmd = [
        str(Path(sys.executable).with_name("py-spy")),
        "record",
        "--format",
        "raw",
        "--nolineno",
        "--threads",
        "--subprocesses",
        "--rate",
        "100",
        "-o",
        str(out),
    ]
    cmd += ["--gil"] if gil else ["--idle"]
    cmd += ["--", *mailroll_argv(campaign, "ingest", "--once")]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, help="submissions in the mailbox (200; --quick: 20)")
    ap.add_argument("--video-every", type=int, default=1)
    ap.add_argument(
        "--small", action="store_true", help="the small-message mailbox of bench_small.py instead"
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--raw", type=Path, help="keep py-spy's raw output here")
    args = ap.parse_args(argv)
    n = args.messages or (20 if args.quick else 200)
    if not Path(sys.executable).with_name("py-spy").exists():
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    work = work_dir(None)
    raw_dir = args.raw or work
    raw_dir.mkdir(parents=True, exist_ok=True)
    try:
        (work / "files").mkdir()
        with DovecotServer() as server:
            user = server.new_user()
            when = datetime.now(UTC) - timedelta(days=1)
            messages = (
                (small(i) for i in range(n))
                if args.small
                else build_messages(n, args.video_every, work / "files", {})
            )
            server.write_maildir(user, messages, when=when)
            warm_up(server, user)
            for gil in (False, True):
                campaign = imap_campaign(work / f"campaign-{gil}", server, user)
                out = raw_dir / f"ingest-{'gil' if gil else 'all'}.txt"
                seconds = profile(campaign, out, gil)
                summarise(
                    out,
                    f"{n} submissions, {'samples holding the GIL' if gil else 'all samples'} "
                    f"({seconds:.1f} s under py-spy)",
                )
                shutil.rmtree(campaign.root, ignore_errors=True)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
