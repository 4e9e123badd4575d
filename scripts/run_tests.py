"""`make test`: the test suite on pytest-xdist, and one second chance for a crashed worker.

Now and then (2 full runs in 9, 2026-11-30; 3 in 11 by 2026-12-07) a pytest worker process dies
of a segmentation fault while Python collects garbage, in whatever test it is running then
(test_web's fixture importing Flask, test_trust building a mail): memory spoiled earlier in that
process by one of the C libraries the tests use in-process (lxml, Pillow, py7zr's codecs,
zstandard, pybase64 are loaded; not reproduced alone, nor in a stress loop of those paths).
mailroll itself opens attachments in worker processes, where such a fault ends only the worker.
Such a test, and only such one, is run again alone in a fresh process, and this says so; any
other failure, or a crash again, fails the run.

To find the cause next time: every test process and every process a test starts has
faulthandler on (pytest's plugin; PYTHONFAULTHANDLER from tests/conftest.py), so the fault
prints each thread's Python stack; and the run may leave core files (the limit is raised here):
a crash names them, to be read with ``gdb .venv/bin/python CORE -ex 'bt'``.

    python scripts/run_tests.py [pytest arguments]
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

CRASHED = re.compile(r"worker '\w+' crashed while running '([^']+)'")
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


REPO = Path(__file__).resolve().parent.parent


def allow_core_files() -> None:
    """A crashed process leaves a core file (where the kernel's core_pattern says: by default its
    working directory), for gdb; the soft limit only, as far as the hard one allows."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def core_files() -> list[Path]:
    return sorted(p for p in REPO.glob("core*") if p.is_file() and re.fullmatch(r"core(\.\d+)?", p.name))


def main(args: list[str]) -> int:
    allow_core_files()
    before = set(core_files())
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    code = proc.wait()
    if code == 0:
        return 0
    text = "".join(lines)
    crashed = set(CRASHED.findall(text))
    failed = set(FAILED.findall(text))
    for core in sorted(set(core_files()) - before):
        print(f"run_tests: a crashed process left {core}: gdb {sys.executable} {core} -ex bt", flush=True)
    if not crashed or failed - crashed:
        return code
    print(
        f"\nrun_tests: a pytest worker crashed (see the fault above) while running {len(crashed)} "
        "test(s); running them once more, alone in a fresh process:",
        flush=True,
    )
    for test in sorted(crashed):
        print(f"  {test}", flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", *sorted(crashed)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
