"""SIGINT and SIGTERM become an `Interrupted` exception in the main thread.

As PID 1 in a container Python ignores SIGTERM unless a handler is installed, and the runner sends SIGINT, waits
7.5 s, then SIGTERM: both must stop the wait, cancel the run, and write the report in time. A signal during the
cancel cuts the cancel short (it only ever shortens the way out); once the report is being written, further signals
are noted and ignored so the outputs and the summary are never cut off.
"""

from __future__ import annotations

import signal
from types import FrameType


class Interrupted(BaseException):
    """Raised in the main thread on SIGINT/SIGTERM. A BaseException so no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGuard:
    def __init__(self) -> None:
        self.reporting = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reporting:
            return
        raise Interrupted(signum)
