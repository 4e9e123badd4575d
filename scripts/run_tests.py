"""`make test`: the test suite on pytest-xdist, and one second chance for a crashed worker.

Now and then (2 full runs in 9, 2026-11-30) a pytest worker process dies of a segmentation fault
while Python collects garbage, in whatever test it is running then (test_web's fixture
importing Flask, test_trust building a mail): memory spoiled earlier in that process by one of
the C libraries the tests use in-process (lxml, Pillow, py7zr's codecs, zstandard, pybase64 are
loaded; not reproduced alone). mailroll itself opens attachments in worker processes, where such
a fault ends only the worker. Such a test, and only such one, is run again alone in a fresh
process, and this says so; any other failure, or a crash again, fails the run.

    python scripts/run_tests.py [pytest arguments]
"""

from __future__ import annotations

import re
import subprocess
import sys

CRASHED = re.compile(r"worker '\w+' crashed while running '([^']+)'")
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def main(args: list[str]) -> int:
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
