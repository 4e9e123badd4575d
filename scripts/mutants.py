#!/usr/bin/env python3
"""`make mutants`: break each rule once and check that the tests guarding it notice.

A mutant is a one-line change to a rule (judging ``>`` as ``>=``, the shortest name winning,
the reminder guard gone...). Each is applied to a copy of the tree (the working tree is never
touched), then the tests that guard the rule run against that copy. A mutant whose tests still
pass *survives*: the rule can break unnoticed, and a test is missing.

Every mutant names its module by file name (found anywhere under ``ingest/`` or ``reconcile/``,
so modules can move between folders) and the exact text of the line it changes; that text must
occur exactly once, or the script stops: the rule was rewritten and the mutant must follow it.

Exit status: 0 every mutant killed; 1 some survived; 2 a stale pattern, or the tests fail on
the unmutated copy (then nothing can be concluded).

    .venv/bin/python scripts/mutants.py              # all
    .venv/bin/python scripts/mutants.py judge-limit  # the ones whose name contains this
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 900  # a mutant that hangs its tests counts as killed (the tests did not pass)


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str  # file name, e.g. "judge.py": exactly one under ingest/ or reconcile/
    old: str  # the text replaced: must occur exactly once in that file, within one line
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions
    rule: str  # what breaks, in words


MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- judge: the checks' limits
    Mutant(
        "judge-limit-boundary",
        "judge.py",
        "if duration > limit:",
        "if duration >= limit:",
        ("tests/test_status.py",),
        "a video of exactly the limit (3:00) is judged too long",
    ),
    Mutant(
        "judge-limit-ignored",
        "judge.py",
        "if duration > limit:",
        "if duration > limit + 60:",
        ("tests/test_status.py",),
        "a video up to a minute over the limit passes",
    ),
    Mutant(
        "judge-over-limit-shown-as-limit",
        "judge.py",
        "lasts = minutes_over(duration, limit)",
        "lasts = minutes(duration)",
        ("tests/test_status.py",),
        "180.5 s is written '3:00, over the 3:00 limit'",
    ),
    Mutant(
        "judge-report-length-boundary",
        "judge.py",
        "if chars < need:",
        "if chars <= need:",
        ("tests/test_status.py", "tests/test_report.py"),
        "a report of exactly the minimum length is judged too short",
    ),
    Mutant(
        "judge-negative-figures-pass",
        "judge.py",
        "if isinstance(value, (int, float)) and value < 0:",
        "if isinstance(value, (int, float)) and value < -1e18:",
        ("tests/test_status.py",),
        "a negative figure in the statistics sheet passes",
    ),
    # ---------------------------------------------------------------- attribute: who sent it
    Mutant(
        "attribute-public-domain-matched",
        "attribute.py",
        "if d not in public:",
        "if d:",
        ("tests/test_attribute.py",),
        "someone@163.com is taken for the unit registered as dtkjj2022@163.com",
    ),
    Mutant(
        "attribute-shortest-name-wins",
        "attribute.py",
        "found.sort(key=lambda m: (-(m.end - m.start), m.start))",
        "found.sort(key=lambda m: (m.end - m.start, m.start))",
        ("tests/test_attribute.py",),
        "where names overlap, the shortest is kept",
    ),
    Mutant(
        "attribute-overlap-of-different-units-kept",
        "attribute.py",
        "if all(m.end <= k.start or m.start >= k.end for k in kept):",
        "if all(m.end <= k.start or m.start >= k.end or m.units != k.units for k in kept):",
        ("tests/test_attribute.py",),
        "长治市 inside 长治市高新区管委会 (two units) counts as a second name",
    ),
    Mutant(
        "attribute-side-by-side-as-overlap",
        "attribute.py",
        "if all(m.end <= k.start or m.start >= k.end for k in kept):",
        "if all(m.end < k.start or m.start > k.end for k in kept):",
        ("tests/test_attribute.py",),
        "'太原市科技局大同市科技局' is read as one name (two touching names taken as overlapping)",
    ),
    Mutant(
        "attribute-sender-header-ignored",
        "attribute.py",
        'for label, addr in (("From", ev.from_addr), ("Sender", ev.sender)):',
        'for label, addr in (("From", ev.from_addr),):',
        ("tests/test_attribute.py",),
        "a registered Sender (a secretary sending for the unit) is not recognised",
    ),
    Mutant(
        "attribute-two-forwarded-units-pick-one",
        "attribute.py",
        "if len(fwd_units) == 1:",
        "if len(fwd_units) >= 1:",
        ("tests/test_attribute.py",),
        "a message forwarding mail of two units is given to the first",
    ),
    # ---------------------------------------------------------------- status: what counts, late
    Mutant(
        "lateness-by-date-header",
        "store.py",
        '"received_at": rfc3339(envelope.received_at),',
        '"received_at": rfc3339(__import__("email.utils").utils.parsedate_to_datetime(parsed.headers.date)'
        " if parsed is not None and parsed.headers.date else envelope.received_at),",
        (
            "tests/test_pipeline.py",
            "tests/test_imap_source.py::test_arrival_time_is_the_servers_internaldate_not_the_date_header",
        ),
        "the sender's Date header, not the server's arrival time, decides lateness",
    ),
    Mutant(
        "lateness-at-the-deadline",
        "status.py",
        "late = arrived > deadline",
        "late = arrived >= deadline",
        ("tests/test_status.py",),
        "mail arriving at the deadline's very second is late",
    ),
    Mutant(
        "lateness-by-the-resent-copy",
        "status.py",
        'if messages[m]["at"] < arrived and any(p["sha256"] == sha for p in parts.get(m, ())):',
        'if False and any(p["sha256"] == sha for p in parts.get(m, ())):',
        ("tests/test_status.py",),
        "the same file sent again after the deadline makes the item late",
    ),
    Mutant(
        "status-complete-with-one-item",
        "status.py",
        "if all(s == OK for s in states):",
        "if any(s == OK for s in states):",
        ("tests/test_status.py",),
        "a unit with one good item of three is complete",
    ),
    # ---------------------------------------------------------------- reminders: never twice
    Mutant(
        "reminder-twice",
        "reminders.py",
        'if status is not None and status != "deferred":',
        "if False:",
        ("tests/test_remind.py",),
        "a stage already sent is due again (only the database guard is left)",
    ),
    Mutant(
        "reminder-database-guard-alone",
        "db.py",
        "CREATE UNIQUE INDEX outbox_reminder_once ON outbox(unit, stage) WHERE kind = 'reminder';",
        "CREATE INDEX outbox_reminder_once ON outbox(unit, stage) WHERE kind = 'reminder';",
        ("tests/test_mailer.py",),
        "the database no longer refuses a second (unit, stage): a race sends it twice",
    ),
    Mutant(
        "reminder-in-quiet-hours",
        "reminders.py",
        "return local >= start or local < end  # spans midnight: 21:00-08:00",
        "return local >= start and local < end  # spans midnight: 21:00-08:00",
        ("tests/test_remind.py",),
        "reminders go out at night",
    ),
    Mutant(
        "reminder-after-max-exceeded",
        "reminders.py",
        "for k in range(1, max(0, r.after_max) + 1):",
        "for k in range(1, max(0, r.after_max) + 2):",
        ("tests/test_remind.py",),
        "one reminder more than reminders.after_max",
    ),
    # ---------------------------------------------------------------- receipts
    Mutant(
        "receipt-database-guard-alone",
        "db.py",
        "CREATE UNIQUE INDEX outbox_receipt_once ON outbox(answers) WHERE kind = 'receipt';",
        "CREATE INDEX outbox_receipt_once ON outbox(answers) WHERE kind = 'receipt';",
        ("tests/test_mailer.py", "tests/test_receipts.py"),
        "a message can be answered twice",
    ),
    Mutant(
        "receipt-for-mail-not-yet-arrived",
        "receipts.py",
        "AND m.received_at >= ? AND m.received_at <= ? ",
        "AND m.received_at >= ? AND (m.received_at <= ? OR 1) ",
        ("tests/test_receipts.py",),
        "mail received after `now` is answered",
    ),
    Mutant(
        "receipt-loop-guard-off-by-one",
        "receipts.py",
        "if _receipts_today(conn, a, now) >= config.reminders.receipts_per_day]",
        "if _receipts_today(conn, a, now) > config.reminders.receipts_per_day]",
        ("tests/test_receipts.py",),
        "one receipt more than reminders.receipts_per_day to the same address in 24 hours",
    ),
)


def copy_tree(dest: Path) -> None:
    """The files git knows (tracked, and new ones not ignored): no .venv, caches or outputs."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, names):
        src = REPO / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def locate(tree: Path, m: Mutant) -> Path:
    """The one file the mutant changes; SystemExit(2) when the pattern went stale."""
    found = [p for top in ("ingest", "reconcile") for p in (tree / top).rglob(m.module)]
    if len(found) != 1:
        sys.exit(f"mutant {m.name}: {len(found)} files named {m.module} under ingest/ and reconcile/")
    text = found[0].read_text(encoding="utf-8")
    count = text.count(m.old)
    if count != 1 or "\n" in m.old:
        rel = found[0].relative_to(tree)
        sys.exit(
            f"mutant {m.name}: the line {m.old!r} occurs {count} times in {rel} (must be once): "
            "the rule was rewritten; update the mutant in scripts/mutants.py"
        )
    return found[0]


def run_tests(tree: Path, args: tuple[str, ...]) -> tuple[bool, str]:
    """(passed, last lines of output) for pytest ARGS in the copy."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args]
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {TIMEOUT_S} s"
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-12:]
    return proc.returncode == 0, "\n".join(tail)


def check_imports_from(tree: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", "import ingest, reconcile; print(ingest.__file__); print(reconcile.__file__)"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not all(Path(p).resolve().is_relative_to(tree.resolve()) for p in out):
        sys.exit(f"the copy's modules are not the ones imported ({out}): the mutants would test the repo")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="run the mutants whose name contains one of these")
    args = ap.parse_args()
    chosen = [m for m in MUTANTS if not args.only or any(o in m.name for o in args.only)]
    if not chosen:
        sys.exit(f"no mutant matches {args.only}")

    with tempfile.TemporaryDirectory(prefix="mailroll-mutants-") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree)
        check_imports_from(tree)
        targets = {m.name: locate(tree, m) for m in chosen}  # every pattern checked before any run

        # the guarding tests must pass on the unmutated copy, or a "killed" mutant proves nothing
        for test_args in dict.fromkeys(m.tests for m in chosen):
            passed, tail = run_tests(tree, test_args)
            if not passed:
                print(f"the unmutated tree fails {' '.join(test_args)}:\n{tail}", file=sys.stderr)
                return 2

        survivors = []
        for m in chosen:
            path = targets[m.name]
            original = path.read_text(encoding="utf-8")
            path.write_text(original.replace(m.old, m.new), encoding="utf-8")
            started = time.monotonic()
            try:
                passed, tail = run_tests(tree, m.tests)
            finally:
                path.write_text(original, encoding="utf-8")
            took = time.monotonic() - started
            verdict = "SURVIVED" if passed else "killed"
            print(f"{verdict:8}  {m.name:44} {took:5.0f} s  {m.rule}", flush=True)
            if passed:
                survivors.append(m)
            else:
                failed = [line for line in tail.splitlines() if line.startswith(("FAILED", "ERROR"))]
                if failed:
                    print(f"          by {failed[0]}", flush=True)

    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} mutants killed", end="")
    if survivors:
        print(f"; survivors (rules no test guards): {', '.join(m.name for m in survivors)}")
        return 1
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
