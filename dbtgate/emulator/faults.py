"""Which fault, if any, a request meets: counting, `after`, windows and per-run 404s, in one place."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

from dbtgate.emulator.scenario import KIND_ENDPOINTS, FaultSpec


@dataclass(frozen=True)
class RequestFacts:
    endpoint: str
    run_id: int | None
    job_id: int | None
    elapsed: float  # emulated seconds since the emulator started


class FaultInjector:
    def __init__(self, faults: tuple[FaultSpec, ...]) -> None:
        self._faults = faults
        self._seen = [0] * len(faults)     # matching requests so far, per fault
        self._fired = [0] * len(faults)    # requests it hit, per fault
        self._run_polls: dict[tuple[int, int], int] = defaultdict(int)
        self._lock = threading.Lock()

    def fired(self) -> list[int]:
        with self._lock:
            return list(self._fired)

    def choose(self, facts: RequestFacts) -> FaultSpec | None:
        """The first fault that applies to this request, counted as fired; None lets the request through."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if not self._matches(fault, facts):
                    continue
                if fault.kind == "not_found_new_run":
                    if facts.run_id is None:
                        continue
                    key = (index, facts.run_id)
                    self._run_polls[key] += 1
                    if self._run_polls[key] > fault.polls:
                        continue
                    self._fired[index] += 1
                    return fault
                self._seen[index] += 1
                if self._seen[index] <= fault.after:
                    continue
                if fault.count and self._fired[index] >= fault.count:
                    continue
                self._fired[index] += 1
                return fault
            return None

    @staticmethod
    def _matches(fault: FaultSpec, facts: RequestFacts) -> bool:
        allowed = KIND_ENDPOINTS.get(fault.kind)
        if allowed is not None and facts.endpoint not in allowed:
            return False
        if fault.endpoint not in ("*", facts.endpoint):
            return False
        if fault.job_id is not None and facts.job_id != fault.job_id:
            return False
        return not (fault.window is not None and not fault.window[0] <= facts.elapsed < fault.window[1])
