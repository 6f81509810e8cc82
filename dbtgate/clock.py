"""Time as a dependency: the gate and the emulator read and spend time only through a Clock.

A clock has two faces: `monotonic()` for durations and deadlines (never goes backwards), and `wall()` for the
date (what `max_age` compares dbt Cloud's timestamps with, and where the emulator's calendar starts). Production
uses SystemClock. Tests and benchmarks use VirtualClock, whose sleep() advances both at once, so a two-hour wait
is simulated in microseconds, nothing in the test suite sleeps for real, and no test depends on today's date: a
test can start the wall clock wherever it likes (a year ahead, say).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (the origin is arbitrary)."""
        ...

    def wall(self) -> datetime:
        """The date and time now, aware, in UTC (dbt Cloud's timestamps are UTC)."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """A clock that moves only when someone sleeps on it or advances it. Thread-safe.

    Its wall time starts at `wall_start` (by default the real date when the clock is made) and moves with it."""

    def __init__(self, start: float = 0.0, wall_start: datetime | None = None) -> None:
        self._start = start
        self._now = start
        self._wall_start = (wall_start or datetime.now(UTC)).astimezone(UTC)
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> datetime:
        with self._lock:
            return self._wall_start + timedelta(seconds=self._now - self._start)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds
