"""Run every benchmark (``make bench``): each prints its figures and exits 1 when over target.

.venv/bin/python bench/run_all.py            # full size (several minutes)
.venv/bin/python bench/run_all.py --quick    # small sizes: a smoke run (~3 minutes)
.venv/bin/python bench/run_all.py poll       # only the benchmarks whose name contains 'poll'
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")]
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if names and not any(n in script.name for n in names):
            continue
        args = ["--quick"] if quick else []
        print(f"\n### {script.name} {' '.join(args)}", flush=True)
        started = time.perf_counter()
        rc = subprocess.run([sys.executable, str(script), *args], cwd=HERE).returncode
        print(f"### {script.name}: exit {rc} after {time.perf_counter() - started:.0f} s", flush=True)
        if rc:
            failed.append(script.name)
    if failed:
        print(f"\nover target or failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
