"""The polling policy, pure: its bounds hold for any estimate, any run length, any log (hypothesis), and the cases
that went wrong on real-shaped runs (issue #13) go right."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtgate.cloud.models import Run
from dbtgate.watch.dbtlog import scan
from dbtgate.watch.schedule import (
    FINALIZE,
    AdaptivePolicy,
    Decision,
    Estimate,
    PollBudget,
    PollState,
    Prior,
    estimate_end,
    expected_duration,
    logs_affordable,
)
from tests.conftest import REFERENCE


def run(status: int, **more: Any) -> Run:
    return Run.from_api({"id": 1, "status": status, "job_definition_id": 2, **more})


estimates = st.one_of(st.none(), st.builds(
    Estimate, end=st.floats(-1e5, 1e5), spread=st.floats(0, 1e5), made_at=st.floats(0, 1e5),
    source=st.sampled_from(["history", "previous-run", "finished", "pace"])))
states = st.builds(
    PollState, since_trigger=st.floats(0, 1e5), run=st.sampled_from([run(1), run(1, blocked_by=[4]), run(2), run(3),
                                                                       run(99), run(3, started_at="x")]),
    since_start=st.one_of(st.none(), st.floats(0, 1e5)), estimate=estimates, rate_limited=st.booleans(),
    logs_affordable=st.booleans(), logs_age=st.one_of(st.none(), st.floats(0, 1e5)), fail_fast=st.just(False),
    stops_itself=st.booleans())


def replay(policy: AdaptivePolicy, budget: PollBudget, sequence: list[PollState]) -> list[tuple[float, Decision]]:
    """Poll times and decisions when the policy is asked once per poll, whatever it is told each time."""
    now, polls = budget.at, []
    for state in sequence:
        decision = policy.decide(state, budget, now)
        now += decision.delay
        budget = budget.spend(now)
        polls.append((now, decision))
    return polls


@settings(max_examples=300, deadline=None)
@given(st.lists(states, min_size=1, max_size=400), st.floats(1, 120), st.floats(5, 60), st.floats(1, 30))
def test_calls_are_bounded_whatever_the_estimates_say(sequence: list[PollState], interval: float, period: float,
                                                      capacity: float) -> None:
    policy = AdaptivePolicy(max_interval=interval, min_interval=min(2.0, interval))
    period = min(period, interval)
    budget = PollBudget(period=period, capacity=capacity, tokens=capacity, at=0.0)
    polls = replay(policy, budget, sequence)
    times = [t for t, _ in polls]
    for _, decision in polls:
        assert policy.min_interval - 1e-9 <= decision.delay <= max(interval, period) + 1e-9
    # The invariant: over any stretch [a, b], at most capacity + (b - a) / period polls — a fixed-`period` poller
    # on the same run plus a constant; so also over the whole run (a = the start).
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= capacity + (times[j] - start) / period + 1 + 1e-6
    assert len(times) <= capacity + times[-1] / period + 1e-6


@settings(max_examples=200, deadline=None)
@given(st.floats(60, 20_000), st.lists(st.tuples(st.floats(-5000, 5000), st.floats(0, 3000)), min_size=1,
                                      max_size=50))
def test_no_estimate_keeps_polls_every_few_seconds_for_long(length: float, guesses: list[tuple[float, float]]) -> None:
    """A run of any length whose estimate keeps saying "any moment now" (or anything else): over the run, polls are
    at most what a fixed 30 s poller makes plus the burst, and never below 2 s apart."""
    policy = AdaptivePolicy(max_interval=60)
    budget = PollBudget(period=30, capacity=10, tokens=10, at=0)
    now, count, k = 0.0, 0, 0
    while now < length:
        offset, spread = guesses[k % len(guesses)]
        k += 1
        state = PollState(now, run(3, started_at="2026-01-01 10:00:00+00:00"), since_start=now,
                          estimate=Estimate(now + offset, spread, now, "pace"), logs_affordable=True, logs_age=0)
        delay = policy.decide(state, budget, now).delay
        assert delay >= 2
        now += delay
        budget = budget.spend(now)
        count += 1
    fixed = -(-length // 30)   # a fixed 30 s poller: one poll per 30 s until it sees the end
    assert count <= fixed + 10 + 1


def test_early_failures_are_watched_from_the_runs_own_start() -> None:
    """Queued two minutes, then failing seconds after it starts: seen within seconds, not ~30 s late."""
    policy = AdaptivePolicy(max_interval=60)
    budget = PollBudget(period=30, capacity=15, tokens=15, at=0)
    now = 0.0
    while now < 120:   # queued (not blocked): polls keep up with the start
        decision = policy.decide(PollState(now, run(1)), budget, now)
        now += decision.delay
        budget = budget.spend(now)
    start, fails_at = now, now + 4          # it started at the last poll; it fails 4 s later
    while now < fails_at:
        state = PollState(now, run(3, started_at="2026-01-01 10:00:00+00:00"), since_start=now - start)
        now += policy.decide(state, budget, now).delay
        budget = budget.spend(now)
    assert now - fails_at <= 5


def test_inside_the_window_polls_are_close_and_past_it_logs_are_refreshed() -> None:
    policy = AdaptivePolicy(max_interval=60)
    budget = PollBudget(period=30, capacity=10, tokens=10, at=0)
    running = run(3, started_at="2026-01-01 10:00:00+00:00")
    far = policy.decide(PollState(100, running, 100, Estimate(1000, 10, 100, "previous-run"), logs_affordable=True,
                                  logs_age=0), budget, 100)
    assert far == Decision(60, False), "far from the end, just read: the user's interval, and no logs"
    near = policy.decide(PollState(995, running, 995, Estimate(1000, 10, 900, "previous-run")), budget, 995)
    assert near.delay <= 4 and not near.logs
    wide = policy.decide(PollState(600, running, 600, Estimate(1000, 200, 600, "history"), logs_affordable=True,
                                   logs_age=0), budget, 600)
    assert wide == Decision(60, False), "a wide window far away, just read: keep sleeping at the interval"
    unread = policy.decide(PollState(600, running, 600, Estimate(1000, 200, 600, "history"), logs_affordable=True),
                           budget, 600)
    assert unread == Decision(60, True), "only the history so far: read the logs on the next poll"
    closer = policy.decide(PollState(750, running, 750, Estimate(1000, 200, 600, "history"),
                                     logs_affordable=True, logs_age=150), budget, 750)
    assert closer.logs and closer.delay == 25, "landing halfway to a wide window, with logs to sharpen it"
    over = policy.decide(PollState(1100, running, 1100, Estimate(1000, 10, 900, "previous-run"),
                                   logs_affordable=True, logs_age=200), budget, 1100)
    assert over.logs and 2 < over.delay < 60, "overrun: refresh the estimate and back off"
    assert not policy.decide(PollState(1100, running, 1100, Estimate(1000, 10, 900, "pace"), logs_affordable=False,
                                       logs_age=200), budget, 1100).logs, "never logs beyond the byte budget"
    empty = PollBudget(period=30, capacity=10, tokens=0, at=995)
    assert policy.decide(PollState(995, running, 995, Estimate(1000, 10, 900, "finished")), empty, 995).delay == 30


def test_fail_fast_follows_the_log_at_its_own_pace() -> None:
    policy = AdaptivePolicy(max_interval=60)
    budget = PollBudget(period=5, capacity=10, tokens=10, at=0)
    state = PollState(100, run(3, started_at="2026-01-01 10:00:00+00:00"), 100, fail_fast=True)
    assert policy.decide(state, budget, 100) == Decision(8, True)


def test_fail_fast_spends_at_most_three_times_a_fixed_pollers_calls() -> None:
    policy = AdaptivePolicy(max_interval=60)
    assert policy.budget_period(True, 30) == 10 and policy.budget_period(False, 30) == 30
    budget = PollBudget(period=policy.budget_period(True, 30), capacity=20, tokens=20, at=0)
    state = PollState(100, run(3, started_at="2026-01-01 10:00:00+00:00"), 100, fail_fast=True)
    polls = replay(policy, budget, [state] * 2000)
    span = polls[-1][0]
    assert len(polls) <= 20 + 3 * span / 30, "3x a 30 s poller, plus the burst"


def test_with_dbts_fail_fast_the_status_alone_is_read_at_fail_fasts_pace() -> None:
    """fail_fast: dbt — dbt ends the run at its first failure, which no estimate predicts: the run object every 8 s
    (no log: that is the bytes fail_fast: true spends), within 3x a 30 s poller's calls."""
    policy = AdaptivePolicy(max_interval=60)
    budget = PollBudget(period=policy.budget_period(True, 30), capacity=20, tokens=20, at=0)
    far = Estimate(3000, 30, 90, "previous-run")
    state = PollState(100, run(3, started_at="2026-01-01 10:00:00+00:00"), 100, far, logs_affordable=True,
                      stops_itself=True)
    assert policy.decide(state, budget, 100) == Decision(8, False)
    without = policy.decide(PollState(100, state.run, 100, far, logs_affordable=True), budget, 100)
    assert without.delay == 60, "the default sleeps towards a far end"
    polls = replay(policy, budget, [state] * 2000)
    assert len(polls) <= 20 + 3 * polls[-1][0] / 30 and not any(decision.logs for _, decision in polls)


def test_before_the_window_an_old_log_is_read_again_for_a_failure_that_ends_the_run_early() -> None:
    """A failure skips its descendants: the run can end long before the window, and only the log shows it."""
    policy = AdaptivePolicy(max_interval=60)
    budget = PollBudget(period=30, capacity=10, tokens=10, at=0)
    running = run(3, started_at="2026-01-01 10:00:00+00:00")
    sharp = Estimate(1000, 10, 100, "previous-run")
    fresh = policy.decide(PollState(300, running, 300, sharp, logs_affordable=True, logs_age=30), budget, 300)
    assert fresh == Decision(60, False)
    old = policy.decide(PollState(300, running, 300, sharp, logs_affordable=True, logs_age=policy.refresh - 30),
                        budget, 300)
    assert old == Decision(60, True), "read at least every `refresh` seconds"
    assert not policy.decide(PollState(300, running, 300, sharp, logs_affordable=False, logs_age=1e4), budget,
                             300).logs, "never beyond the byte budget"


def test_past_the_window_the_back_off_stays_short() -> None:
    """An end after the window comes soon after it, mostly: the spacing is capped, the bucket bounds the calls."""
    policy = AdaptivePolicy(max_interval=60)
    budget = PollBudget(period=30, capacity=10, tokens=10, at=0)
    running = run(3, started_at="2026-01-01 10:00:00+00:00")
    late = policy.decide(PollState(2000, running, 2000, Estimate(1000, 10, 900, "previous-run"), logs_affordable=True,
                                   logs_age=0), budget, 2000)
    assert late.delay == policy.overrun_max


def test_log_bytes_stay_within_their_share() -> None:
    assert logs_affordable(spent=0, expected=30_000, plain=2_000, elapsed=0, period=30, horizon=1200)
    assert not logs_affordable(spent=0, expected=30_000, plain=2_000, elapsed=0, period=30)
    assert not logs_affordable(spent=400_000, expected=30_000, plain=2_000, elapsed=600, period=30)
    assert logs_affordable(spent=400_000, expected=30_000, plain=2_000, elapsed=3000, period=30)
    # The share: LOG_RATIO (6) times the plain polls, so the whole stays within 10x a fixed poller's bytes.
    assert logs_affordable(spent=0, expected=250_000, plain=2_000, elapsed=600, period=30)
    assert not logs_affordable(spent=0, expected=250_000, plain=2_000, elapsed=600, period=30, ratio=1.5)


# ---- estimating the end ----------------------------------------------------------------------------------------
def reference(name: str) -> str:
    path = REFERENCE / "dbt-core-run" / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path.read_text("utf-8")


def test_the_previous_runs_log_predicts_the_heavy_tail() -> None:
    """The real build: 62 of 73 nodes are done 3 s in, then one thread works through the slow chain for 9 s. "N of
    M" says nearly done; the previous run's timings say how long the chain still takes."""
    log = reference("build-success.log")
    prior = Prior.from_scan(scan(log))
    assert prior is not None
    start = datetime(2026, 1, 1, 16, 12, 0, tzinfo=UTC)
    start_of_day = 16 * 3600 + 12 * 60.0
    for cut in ("16:12:06", "16:12:09", "16:12:12", "16:12:15"):
        partial = "\n".join(line for line in log.splitlines() if line[:8] <= cut) + "\n"
        fetched_at = float(int(cut[-2:]))
        estimate = estimate_end(scan(partial), fetched_at=fetched_at, start_of_day=start_of_day, last_step=True,
                                prior=prior, history=None)
        assert estimate is not None and estimate.source == "previous-run", cut
        true_end = 16 + FINALIZE   # "Done." at 16:12:16, then dbt Cloud's completion
        assert abs(estimate.end - true_end) <= estimate.spread, (cut, estimate)
    assert start.tzinfo is UTC


def test_nodes_that_vary_independently_widen_the_window() -> None:
    """One pace for the whole run predicts sharply; nodes each slower or faster than last time do not."""
    import re

    log = reference("build-success.log")

    def scaled(text: str, factor: object) -> str:
        """The result lines' durations times `factor` (a number, or one per line); nodes of seconds, not tenths."""
        count = iter(range(10**6))

        def one(match: re.Match[str]) -> str:
            f = factor(next(count)) if callable(factor) else factor
            return f" in {float(match.group(1)) * 10 * f:.2f}s]"
        return re.sub(r" in (\d+\.\d+)s\]", one, text)

    prior = Prior.from_scan(scan(scaled(log, 1.0)))
    assert prior is not None
    partial = "\n".join(line for line in log.splitlines() if line[:8] <= "16:12:09") + "\n"

    def spread(factor: object) -> float:
        found = estimate_end(scan(scaled(partial, factor)), fetched_at=9, start_of_day=16 * 3600 + 12 * 60.0,
                             last_step=True, prior=prior, history=None)
        assert found is not None and found.source == "previous-run"
        return found.spread

    together = spread(1.3)
    apart = spread(lambda i: (0.65, 1.3, 2.6)[i % 3])       # the same pace (the median), nodes apart
    assert apart > together


def test_a_finished_step_means_the_end_is_seconds_away_and_newest_M_of_M_is_not_zero() -> None:
    log = reference("build-success.log")
    finished = estimate_end(scan(log), fetched_at=17, start_of_day=58320, last_step=True, prior=None, history=None)
    assert finished is not None and finished.source == "finished" and finished.end == 17 + FINALIZE
    # "73 of 73" as the newest result line but the closing summary not yet printed: still some time to go.
    upto = log.splitlines()
    last_result = max(i for i, line in enumerate(upto) if " of 73 " in line)
    partial = "\n".join(upto[: last_result + 1]) + "\n"
    still = estimate_end(scan(partial), fetched_at=16, start_of_day=58320, last_step=True, prior=None,
                         history=None, step_elapsed=14)
    assert still is not None and still.end > 16


def test_a_truncated_log_without_the_header_projects_from_nodes_done_not_start_indexes() -> None:
    lines = reference("build-success.log").splitlines()
    tail = "\n".join(lines[40:120]) + "\n"          # the header and the first nodes are cut off
    scanned = scan(tail)
    assert not scanned.header and scanned.done >= len(scanned.results)
    estimate = estimate_end(scanned, fetched_at=10, start_of_day=58320, last_step=True, prior=None, history=None,
                            step_elapsed=8)
    assert estimate is not None and estimate.end >= 11 and estimate.spread >= 30, "a pace guess is a wide one"


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e5), st.one_of(st.none(), st.floats(1, 1e5)), st.booleans(), st.integers(0, 160))
def test_an_estimate_never_lies_in_the_past(fetched_at: float, history: float | None, last_step: bool,
                                            cut: int) -> None:
    lines = reference("build-success.log").splitlines()
    scanned = scan("\n".join(lines[:cut]) + "\n")
    estimate = estimate_end(scanned, fetched_at=fetched_at, start_of_day=58320, last_step=last_step,
                            prior=Prior.from_scan(scan("\n".join(lines) + "\n")), history=history,
                            step_elapsed=fetched_at)
    if estimate is not None:
        assert estimate.end > fetched_at and estimate.spread > 0


def test_expected_duration_is_the_median_of_finished_runs() -> None:
    history = [run(10, run_duration="00:10:00"), run(20, run_duration="00:02:00"), run(10, run_duration="00:12:00"),
               run(30, run_duration="00:00:05")]
    assert expected_duration(history) == 600
    assert expected_duration([]) is None
