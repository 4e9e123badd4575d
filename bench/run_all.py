"""Run every benchmark (``make bench``): each prints its figures and exits 1 when over target.

.venv/bin/python bench/run_all.py            # full size (several minutes)
.venv/bin/python bench/run_all.py --quick    # small parameters: a smoke run (~1 minute)
.venv/bin/python bench/run_all.py poll       # only the benchmarks whose name contains 'poll'
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = {
    "bench_throughput.py": ["--messages", "20"],
    "bench_bigvideo.py": ["--megabytes", "30"],
    "bench_poll.py": ["--messages", "500", "--rounds", "3"],
    "bench_status.py": ["--units", "200", "--messages", "2000", "--runs", "3"],
}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = [a for a in argv if not a.startswith("-")]
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if names and not any(n in script.name for n in names):
            continue
        args = QUICK.get(script.name, []) if quick else []
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
