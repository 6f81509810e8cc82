"""Watching a run to its end: poll, tell people how it goes, and stop at the deadline.

The gate hands a run and a deadline to `RunWatcher.wait`; when to poll next is the pure policy's decision
(polling.py), what to say the progress reporter's (progress.py). Every request carries the gate's deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dbtgate.client import ApiFailure, DbtCloudClient
from dbtgate.clock import Clock
from dbtgate.models import Run
from dbtgate.polling import AdaptivePolicy, PollState, expected_duration, poll_state
from dbtgate.progress import ProgressReporter

NEW_RUN_404_GRACE = 30.0        # a brand-new run can 404 for a few seconds (a known race)
POLL_INCLUDE = ("run_steps", "trigger")  # steps for progress and logs; trigger for the cause in the summary
LAST_LOOK = 10.0                # at the deadline, one more look (bounded by this) so a finished run is not a timeout


class RunWatcher:
    def __init__(self, client: DbtCloudClient, clock: Clock, *, emit: Callable[[str], None], interval: float,
                 api_timeout: float) -> None:
        self.client = client
        self.clock = clock
        self.emit = emit
        self.api_timeout = api_timeout
        self.policy = AdaptivePolicy(max_interval=interval, min_interval=min(2.0, interval))
        self.progress = ProgressReporter(emit)

    def wait(self, run: Run, *, deadline: float, commands: Sequence[str] = (),
             seen: Callable[[Run], None] = lambda run: None) -> Run | None:
        """Poll until the run is terminal; None when the deadline passes first. `seen` hears of every poll."""
        seen_at = self.clock.monotonic()
        grace_until = seen_at + NEW_RUN_404_GRACE
        total_steps = len(commands) + 2 if commands else None  # the two setup steps dbt Cloud adds, then each
        history = self._history(run, deadline)
        warned_unknown = False
        while True:
            seen(run)
            waited = self.clock.monotonic() - seen_at
            state = self._poll_state(run, waited, history, total_steps)
            self.progress.observe(run, waited, state.progress, state.total_steps)
            if run.is_terminal:
                return run
            if run.status is None and not warned_unknown:
                warned_unknown = True
                self.emit(f"Run {run.id} reports status code {run.status_code}, which dbtgate does not know; it is "
                          "not treated as success. Waiting for dbt Cloud to mark the run complete.")
            now = self.clock.monotonic()
            if now >= deadline:
                return None
            delay = self.policy.next_delay(state)
            self.clock.sleep(min(delay, max(0.0, deadline - now)))
            if self.clock.monotonic() >= deadline:
                # One last look so a run that just finished is reported as it is, not as a timeout.
                last_look = self.clock.monotonic() + min(LAST_LOOK, self.api_timeout)
                run = self.client.get_run(run.id, POLL_INCLUDE, deadline=last_look)
                seen(run)
                self.progress.observe(run, self.clock.monotonic() - seen_at)
                return run if run.is_terminal else None
            run = self.client.get_run(run.id, POLL_INCLUDE, deadline=deadline, not_found_grace_until=grace_until)

    def _poll_state(self, run: Run, waited: float, history: float | None, total_steps: int | None) -> PollState:
        return poll_state(run, waited, history, total_steps=total_steps,
                          rate_limited=self.client.rate_limited_recently())

    def _history(self, run: Run, deadline: float) -> float | None:
        """Typical duration of this job's runs, for the polling policy. Best effort: one list call."""
        if run.job_id is None:
            return None
        try:
            return expected_duration(self.client.list_runs(run.job_id, limit=10, statuses=(10, 20), include=(),
                                                           deadline=deadline))
        except ApiFailure:
            return None
