"""Cancelling a run within a budget, and finding a run that a lost answer may have created.

Both are used wherever the gate may leave a run behind — the endings, and a retry dbt Cloud answered with the
wrong run — so that no run this gate started is ever left burning warehouse money unobserved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dbtgate.cloud.models import Run
from dbtgate.errors import ApiError, DeadlineExceeded
from dbtgate.gate.state import GateState
from dbtgate.signals import Interrupted

RECONCILE_WAITS = (0.0, 2.0, 5.0)  # look for a run whose trigger answer was lost, three times over ~7 s


@dataclass(frozen=True)
class CancelAttempt:
    sent: bool
    note: str
    signal: Interrupted | None = None   # a signal that cut the cancel short


def cancel_run(state: GateState, run: Run, budget: float, why: str) -> CancelAttempt:
    """Cancel within `budget` seconds. A signal during it cuts it short and is returned, not raised, so the caller
    still reports the run."""
    tools = state.tools
    try:
        cancelled = tools.client.cancel_run(run.id, deadline=tools.clock.monotonic() + budget)
    except (ApiError, DeadlineExceeded) as error:
        return CancelAttempt(False, f"dbtgate tried to cancel run {run.id} ({why}) but dbt Cloud did not confirm "
                                    f"it: {error}. Check the run and cancel it by hand if it is still running: "
                                    f"{run.href}")
    except Interrupted as signal:
        return CancelAttempt(False, f"dbtgate was cancelling run {run.id} ({why}) when {signal} arrived; dbt Cloud "
                                    "had not confirmed the cancel. Check the run and cancel it by hand if it is "
                                    f"still running: {run.href}", signal)
    if state.run is not None and state.run.id == cancelled.id:
        state.see(cancelled)
    return CancelAttempt(True, f"dbtgate cancelled run {run.id} ({why}) so it stops spending warehouse time.")


def find_created_run(state: GateState, matches: Callable[[Run], bool], *, deadline: float,
                     waits: tuple[float, ...] = RECONCILE_WAITS) -> Run | None:
    """Look for a run the gate may have created, a few times while dbt Cloud catches up, before `deadline`."""
    tools = state.tools
    job_id = state.job.id if state.job is not None else (state.run.job_id if state.run else tools.config.job_id)
    if job_id is None:
        return None
    for pause in waits:
        if tools.clock.monotonic() + pause >= deadline:
            break
        tools.clock.sleep(pause)
        for run in tools.client.list_runs(job_id, limit=25, deadline=deadline):
            if matches(run):
                return run
    return None
