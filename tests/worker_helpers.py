"""Tasks for tests/test_workers.py: module-level, so a worker process can import them."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def pid_and_group() -> tuple[int, int]:
    return os.getpid(), os.getpgrp()


def allocate(n: int) -> int:
    return len(bytearray(n))


def spin(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def sleep_with_child(pid_file: str) -> None:
    """Start a child process (as a check starts LibreOffice) and hang."""
    child = subprocess.Popen(["sleep", "600"])
    Path(pid_file).write_text(str(child.pid))
    time.sleep(600)


def die() -> None:
    os._exit(3)


def fail() -> None:
    raise ValueError("odd input")
