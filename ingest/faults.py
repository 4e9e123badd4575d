"""Named crash points for the crash-safety tests.

``MAILROLL_CRASH_AT=<point>[:<n>]`` makes the process kill itself with SIGKILL the n-th time
(default: first) it reaches ``crash_point(<point>)``. Unset (always, outside tests), a crash
point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get("MAILROLL_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
