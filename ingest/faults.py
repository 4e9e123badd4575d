"""Named crash points for the crash-safety tests.

``MAILROLL_CRASH_AT=<point>[:<n>]`` makes the process kill itself with SIGKILL the n-th time
(default: first) it reaches ``crash_point(<point>)``; ``<point>@<key>``: the first time it
reaches ``crash_point(<point>, <key>)`` (e.g. ``reading@1234:5``, while reading the message
whose key is 1234:5). Unset (always, outside tests), a crash
point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def crash_point(name: str, key: str | None = None) -> None:
    spec = os.environ.get("MAILROLL_CRASH_AT")
    if not spec:
        return
    if "@" in spec:
        if spec == f"{name}@{key}":
            os.kill(os.getpid(), signal.SIGKILL)
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
