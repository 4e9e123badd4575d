"""The time mailroll acts on: real time, or a time chosen for tests and previews.

Reminders and receipts ask "what time is it?" through a ``Clock`` instead of calling
``datetime.now()`` directly, so that:

* ``mailroll remind --now 2022-06-24T10:00:00+08:00`` acts as if it were that time
  (``FixedClock``);
* the environment variable ``MAILROLL_FAKE_NOW`` (RFC 3339) makes every command, including
  ``serve`` in a subprocess, start at that time; the clock then runs on in real time from there
  (``OffsetClock``), so a service test can start "two days before the deadline".

Scheduling itself (how often ``serve`` polls) always uses real time.
"""

from __future__ import annotations

import os
import time as _time
from datetime import UTC, datetime
from typing import Protocol

FAKE_NOW_ENV = "MAILROLL_FAKE_NOW"


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """Always the same instant (``remind --now``)."""

    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware time")
        self.at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at.astimezone(UTC)


class OffsetClock:
    """Starts at ``start`` and runs on in real time (``MAILROLL_FAKE_NOW``)."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("OffsetClock needs a timezone-aware time")
        self.start = start.astimezone(UTC)
        self._t0 = _time.monotonic()

    def now(self) -> datetime:
        from datetime import timedelta

        return self.start + timedelta(seconds=_time.monotonic() - self._t0)


def parse_time(text: str) -> datetime:
    """An RFC 3339 time ('2022-06-24T10:00:00+08:00' or '...Z'); ValueError when not one."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone offset (add +08:00 or Z)")
    return value


def default_clock() -> Clock:
    """``OffsetClock`` when ``MAILROLL_FAKE_NOW`` is set, else the system clock."""
    fake = os.environ.get(FAKE_NOW_ENV, "").strip()
    if fake:
        try:
            return OffsetClock(parse_time(fake))
        except ValueError as e:
            raise ValueError(f"{FAKE_NOW_ENV}: {e}") from None
    return SystemClock()
