"""Polling benchmark: dbtgate's watcher against fixed intervals and a backoff, on real-shaped runs in virtual time.

    ./dev bench                         # = python -m benchmarks.polling (then the other benchmarks)
    python -m benchmarks.polling --runs 500 --seed 20261126 --check-seed 7 --tidy 300 --e2e 15

Every simulated run is a fresh emulator `World` (the code that serves HTTP) with one job: a seeded dbt project
(a DAG on threads, heavy-tailed nodes, out-of-order result lines, logs cut to 1,000 lines, colour codes, queueing,
finalisation gaps, a noisy history of 5 runs). dbtgate is the real `RunWatcher` driving an in-process client that
returns exactly the JSON the emulator serves and counts its bytes; the other policies poll the run object alone.
Detection latency is the time from the run's completion to the poll that sees it. A sample is replayed end to end
through the real `Gate` and `DbtCloudClient` over HTTP to check that the in-process client is faithful.

Writes benchmarks/results/polling.md, polling.json and polling.png.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dbtgate.clock import VirtualClock
from dbtgate.cloud.models import Job, Run, RunStep
from dbtgate.emulator.scenario import JobSpec, parse_scenario
from dbtgate.emulator.world import World
from dbtgate.errors import ApiError, ApiErrorKind
from dbtgate.gate.trigger import with_dbt_fail_fast
from dbtgate.watch.schedule import AdaptivePolicy
from dbtgate.watch.watcher import RunWatcher

RESULTS = Path(__file__).resolve().parent / "results"
BENCH_EPOCH = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TIMEOUT = 4 * 3600.0       # long enough for the 1-3 h runs of the mix, with queueing
MAX_INTERVAL = 60.0        # dbtgate's default `interval`
OK = {"code": 200, "is_success": True, "user_message": "Success!", "developer_message": ""}

# The realistic mix: kind → share. Documented in the results file (KIND_NOTES).
MIX = {"typical": 0.33, "short": 0.15, "long": 0.10, "queued": 0.10, "early_error": 0.10, "partway_error": 0.14,
       "slow_finalise": 0.08}
KIND_NOTES = {
    "typical": "30–400 models, a median of 10–60 min; 10% end in error (a model or test at 30–90% of the run)",
    "short": "5–40 models, 1–5 min",
    "long": "400–2,000 models, 1–3 h (the log is cut to its last 1,000 lines, the header is gone)",
    "queued": "typical, behind another run of the job (status 1, `blocked_by`) or queued 1–10 min for capacity",
    "early_error": "a source freshness error before `dbt build` (the run ends seconds after it starts), or a model "
                   "failing in the first 5% of the build (the build goes on with the rest)",
    "partway_error": "a model or test failing at 20–80% of the build; its descendants are skipped",
    "slow_finalise": "typical, with a 5–30 s gap between the last step and the run's completion",
}
POLICIES = ("dbtgate", "dbtgate @30s", "fixed 5s", "fixed 10s", "fixed 30s", "fixed 60s", "backoff 2→60s")


# ---- the workload -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    index: int
    kind: str
    job: dict[str, Any]            # the scenario's job, as a scenario file would say it
    blocked: bool = False          # another run of the job is ahead of it


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def realistic(runs: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    kinds = [kind for kind, share in MIX.items() for _ in range(round(share * runs))]
    kinds = (kinds + ["typical"] * runs)[:runs]
    rng.shuffle(kinds)
    cases = []
    for index, kind in enumerate(kinds):
        models, median = int(_log_uniform(rng, 30, 400)), _log_uniform(rng, 600, 3600)
        if kind == "short":
            models, median = int(_log_uniform(rng, 5, 40)), rng.uniform(60, 300)
        elif kind == "long":
            models, median = int(_log_uniform(rng, 400, 2000)), rng.uniform(3600, 3 * 3600)
        job: dict[str, Any] = {
            "id": 1, "name": f"bench {kind}", "execute_steps": ["dbt build"],
            "project": {"models": models, "seed": rng.randrange(10_000), "threads": rng.choice([4, 4, 8, 8, 16]),
                        "colour": rng.random() < 0.3},
            "duration": {"median": round(median, 1), "spread": 0.15, "slow": 0.1},
            "seed": rng.randrange(10_000), "history": 5, "queue_seconds": [2, 10], "outcome": "success"}
        if rng.random() < 0.15:
            job["execute_steps"] = ["dbt source freshness", "dbt build"]
        blocked = False
        if kind == "queued":
            if rng.random() < 0.5:
                blocked = True
            else:
                job["queue_seconds"] = [60, 600]
        elif kind == "early_error":
            job["outcome"] = "error"
            if rng.random() < 0.5:
                job["execute_steps"] = ["dbt source freshness", "dbt build"]
                job["failure"] = {"at": 0.5, "node_type": "source"}
            else:
                job["failure"] = {"at": round(rng.uniform(0.0, 0.05), 3), "node_type": "model"}
        elif kind == "partway_error" or (kind == "typical" and rng.random() < 0.1):
            job["outcome"] = "error"
            low, high = (0.2, 0.8) if kind == "partway_error" else (0.3, 0.9)
            job["failure"] = {"at": round(rng.uniform(low, high), 3), "node_type": rng.choice(["model", "test"])}
        elif kind == "slow_finalise":
            job["finalize_seconds"] = [5, 30]
        cases.append(Case(index, kind, job, blocked))
    return cases


class ManualClock:
    """A clock the simulation moves; the emulator's World derives every run's state from it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        # A fixed calendar: the same runs, byte for byte, on every machine and date.
        return BENCH_EPOCH + timedelta(seconds=self.now)

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class WorldClient:
    """The API as dbtgate's client sees it, in process: the JSON the emulator serves, its bytes counted."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.bytes_received = 0
        self.wire_bytes_received = 0      # the same bodies gzip-compressed, as the emulator sends them when asked
        self.calls = 0

    def _read(self, payload: dict[str, Any]) -> None:
        self.calls += 1
        body = json.dumps(payload).encode()
        self.bytes_received += len(body)
        self.wire_bytes_received += len(gzip.compress(body, compresslevel=6, mtime=0))

    def get_run_step(self, step_id: int, *, deadline: float) -> RunStep:
        data = self.world.step_json(step_id, frozenset())
        if data is None:
            raise ApiError(f"no step {step_id}", status=404, kind=ApiErrorKind.NOT_FOUND)
        self._read({"status": OK, "data": data})
        return RunStep.from_api(data)

    def get_run(self, run_id: int, include: Sequence[str] = (), *, deadline: float,
                not_found_grace_until: float | None = None) -> Run:
        data = self.world.run_json(run_id, frozenset(include))
        self._read({"status": OK, "data": data})
        return Run.from_api(data)

    def list_runs(self, job_id: int, *, deadline: float, limit: int = 10, statuses: Sequence[int] | None = None,
                  include: Sequence[str] = ("trigger",)) -> list[Run]:
        rows, total = self.world.list_runs(job_id=job_id, statuses=set(statuses) if statuses else None,
                                           order_by="-created_at", limit=limit, offset=0, include=frozenset(include))
        self._read({"status": OK, "data": rows, "extra": {"pagination": {"count": len(rows), "total_count": total}}})
        return [Run.from_api(row) for row in rows]

    def rate_limited_recently(self, window: float = 300.0) -> bool:
        return False


def trigger_body(job: JobSpec, dbt_fail_fast: bool) -> dict[str, Any]:
    """The measured run's trigger; with `dbt_fail_fast`, as `fail_fast: dbt` sends it (dbtgate's own rewrite)."""
    if not dbt_fail_fast:
        return {"cause": "measured"}
    return {"cause": "measured",
            "steps_override": list(with_dbt_fail_fast(job.execute_steps, Job(id=job.id, name=job.name)))}


def build(case: Case, dbt_fail_fast: bool = False) -> tuple[World, ManualClock, JobSpec, dict[str, Any]]:
    """The account as the gate finds it: the job's history, maybe a run ahead of ours, then our run triggered."""
    clock = ManualClock()
    scenario = parse_scenario({"jobs": [case.job]})
    world = World(scenario, clock)
    job = scenario.jobs[0]
    if case.blocked:
        world.trigger(job, {"cause": "another pipeline"})
        clock.sleep(random.Random(case.index).uniform(60, 900))   # ours comes while that one runs
    return world, clock, job, world.trigger(job, trigger_body(job, dbt_fail_fast))


@dataclass
class Measured:
    calls: int
    bytes: int
    latency: float | None                      # seconds from the run's completion to the poll that saw it
    failure_latency: float | None = None       # seconds from the first failed node's log line to its report
    saved_minutes: float | None = None         # fail_fast: run minutes left when the watcher stopped
    stopped: bool = False
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[Case], tuple[World, ManualClock, JobSpec, dict[str, Any]]]


def watch(case: Case, builder: Builder, interval: float = MAX_INTERVAL, fail_fast: bool = False,
          stops_itself: bool = False) -> Measured:
    world, clock, job, triggered = builder(case)
    began = clock.now
    client = WorldClient(world)
    run_id = triggered["id"]
    seen_terminal: list[float] = []
    reported: list[tuple[float, str]] = []

    def seen(run: Run) -> None:
        if run.is_terminal and not seen_terminal:
            seen_terminal.append(world.now())

    def emit(line: str) -> None:
        if "errored" in line or "failed" in line:
            reported.append((world.now(), line))

    watcher = RunWatcher(client, clock, emit=emit, interval=interval, api_timeout=30.0)
    outcome = watcher.wait(Run.from_api(triggered), deadline=clock.now + TIMEOUT, commands=job.execute_steps,
                           seen=seen, fail_fast=fail_fast, stops_itself=stops_itself)
    finished = world.finished_elapsed(run_id) or 0.0
    finished_at = world.now() - world.elapsed() + finished
    first = min(outcome.failures, key=lambda f: f.seen_at) if outcome.failures else None
    failure_latency = None
    if first is not None and first.logged_at is not None and reported:
        failure_latency = reported[0][0] - first.logged_at.timestamp()
    latency = seen_terminal[0] - finished_at if seen_terminal else None
    saved = (finished_at - world.now()) / 60 if outcome.failed_fast else None
    return Measured(client.calls, client.bytes_received, latency, failure_latency, saved,
                    outcome.failed_fast, outcome.run is None and not outcome.failed_fast,
                    {"wire": client.wire_bytes_received, "watched": clock.now - began})


def fixed(case: Case, builder: Builder, delays: Callable[[int], float]) -> Measured:
    world, clock, _, triggered = builder(case)
    client = WorldClient(world)
    run = Run.from_api(triggered)
    started, polls = clock.now, 0
    while not run.is_terminal:
        if clock.now - started >= TIMEOUT:
            return Measured(client.calls, client.bytes_received, None, timed_out=True,
                            extra={"wire": client.wire_bytes_received})
        clock.sleep(delays(polls))
        run = client.get_run(run.id, ("trigger",), deadline=math.inf)
        polls += 1
    finished = world.finished_elapsed(run.id) or 0.0
    return Measured(client.calls, client.bytes_received, world.elapsed() - finished,
                    extra={"wire": client.wire_bytes_received, "watched": clock.now - started})


def replay(case: Case, policy: str) -> Measured:
    builder = build_tidy if case.job.get("_tidy") else build
    if policy == "dbtgate":
        return watch(case, builder)
    if policy == "dbtgate @30s":
        return watch(case, builder, interval=30.0)
    if policy == "dbtgate fail_fast":
        return watch(case, builder, fail_fast=True)
    if policy.startswith("backoff"):
        return fixed(case, builder, lambda k: min(60.0, 2.0 * 1.5 ** k))
    seconds = float(policy.split()[1][:-1])
    return fixed(case, builder, lambda k: seconds)


# ---- the tidy mix of the previous benchmark (even node progress, for comparison) ----------------------------------
TIDY_MIX = {"early_failure": 0.10, "short": 0.15, "typical": 0.45, "queued": 0.12, "misleading_history": 0.13,
            "over_timeout": 0.05}


def tidy(runs: int, seed: int) -> list[Case]:
    """The previous benchmark's workload (the small sample project, nodes finishing evenly, a clean history of five
    runs), as scenario jobs."""
    rng = random.Random(seed)
    kinds = [kind for kind, share in TIDY_MIX.items() for _ in range(round(share * runs))]
    kinds = (kinds + ["typical"] * runs)[:runs]
    rng.shuffle(kinds)
    cases = []
    for index, kind in enumerate(kinds):
        median = _log_uniform(rng, 300, 3600)
        history = [round(median * rng.lognormvariate(0, 0.2), 1) for _ in range(5)]
        actual, outcome, blocked = median * rng.lognormvariate(0, 0.2), "success", False
        if kind == "early_failure":
            actual, outcome = rng.uniform(5, 50), "error"
        elif kind == "short":
            median = rng.uniform(60, 300)
            history = [round(median * rng.lognormvariate(0, 0.2), 1) for _ in range(5)]
            actual = median * rng.lognormvariate(0, 0.2)
        elif kind == "queued":
            blocked = True
        elif kind == "misleading_history":
            actual = median * rng.choice([0.35, 0.5, 2.0, 3.0])
        elif kind == "over_timeout":
            actual = rng.uniform(2.2, 3.0) * 3600
        if kind != "early_failure" and rng.random() < 0.15:
            outcome = "error"
        job = {"id": 1, "name": f"tidy {kind}", "execute_steps": ["dbt build"],
               "run_seconds": [*history, *([round(median, 1)] if blocked else []), round(actual, 1)],
               "outcome": ["success"] * (5 + blocked) + [outcome], "queue_seconds": round(rng.uniform(2, 10), 1),
               "start_seconds": round(rng.uniform(5, 15), 1), "setup_seconds": 3, "finalize_seconds": 0}
        cases.append(Case(index, kind, {**job, "_tidy": True}, blocked))
    return cases


def build_tidy(case: Case) -> tuple[World, ManualClock, JobSpec, dict[str, Any]]:
    clock = ManualClock()
    job_spec = {key: value for key, value in case.job.items() if key != "_tidy"}
    scenario = parse_scenario({"jobs": [job_spec]})
    world = World(scenario, clock)
    job = scenario.jobs[0]
    for _ in range(5):   # the history, run to completion as the account would have it
        run = world.trigger(job, {"cause": "history"})
        clock.sleep((world.finished_elapsed(run["id"]) or 0.0) - world.elapsed() + 60)
    if case.blocked:
        world.trigger(job, {"cause": "another pipeline"})
    return world, clock, job, world.trigger(job, {"cause": "measured"})


# ---- end-to-end check through the real gate over HTTP --------------------------------------------------------------
def replay_e2e(case: Case) -> Measured:
    from dbtgate.cloud.client import DbtCloudClient
    from dbtgate.config import parse_config
    from dbtgate.emulator import Emulator
    from dbtgate.gate.gate import Gate
    from dbtgate.logs import configure

    configure(io.StringIO())
    clock = VirtualClock(wall_start=BENCH_EPOCH)
    scenario = parse_scenario({"token": "bench", "jobs": [case.job]})
    with Emulator(scenario, clock=clock) as emulator:
        world = emulator.world
        if case.blocked:
            world.trigger(scenario.jobs[0], {"cause": "another pipeline"})
            clock.sleep(random.Random(case.index).uniform(60, 900))
        before = len(emulator.log.all())
        config = parse_config({"dbt_cloud_url": emulator.url, "dbt_cloud_token": "bench", "dbt_cloud_account_id": "1",
                               "dbt_cloud_job_id": "1", "interval": str(MAX_INTERVAL), "timeout": str(TIMEOUT),
                               "get_artifacts": "false", "cancel_on_timeout": "false"}, {})
        client = DbtCloudClient(emulator.url, "bench", 1, clock=clock)
        result = Gate(config, client, clock, emit=lambda line: None).run()
        assert result.run is not None
        calls = sum(1 for entry in emulator.log.all()[before:] if entry.endpoint in ("get_run", "list_runs"))
        finished = world.finished_elapsed(result.run.id) or 0.0
        # The poll that saw the end is followed at once (no sleep) by the read of the steps: the last get_run.
        polls = [entry for entry in emulator.log.all()[before:] if entry.endpoint == "get_run"]
        return Measured(calls, client.bytes_received, (polls[-1].at if polls else world.elapsed()) - finished)


# ---- summaries and the report -------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(results: dict[str, list[Measured]], cases: list[Case], kinds: Sequence[str]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name, measured in results.items():
        latencies = [m.latency for m in measured if m.latency is not None]
        calls = [float(m.calls) for m in measured]
        row = {"p50_latency": percentile(latencies, 0.5), "p95_latency": percentile(latencies, 0.95),
               "max_latency": max(latencies, default=float("nan")), "mean_calls": statistics.fmean(calls),
               "p95_calls": percentile(calls, 0.95), "max_calls": max(calls),
               "mean_kb": statistics.fmean(m.bytes for m in measured) / 1024,
               "p95_kb": percentile([m.bytes / 1024 for m in measured], 0.95),
               "timeouts": sum(m.timed_out for m in measured)}
        for kind in kinds:
            picked = [m for m, c in zip(measured, cases, strict=True) if c.kind == kind]
            kind_latencies = [m.latency for m in picked if m.latency is not None]
            row[f"{kind}.p50"] = percentile(kind_latencies, 0.5) if kind_latencies else float("nan")
            row[f"{kind}.p95"] = percentile(kind_latencies, 0.95) if kind_latencies else float("nan")
            row[f"{kind}.calls"] = statistics.fmean(m.calls for m in picked) if picked else float("nan")
        table[name] = row
    return table


def table_lines(table: dict[str, Any], policies: Sequence[str]) -> list[str]:
    lines = ["| Policy | p50 latency | p95 latency | max latency | calls / run (mean) | calls / run (p95) | "
             "KB / run (mean) | timeouts |", "|---|---|---|---|---|---|---|---|"]
    for name in policies:
        row = table[name]
        lines.append(f"| {name} | {row['p50_latency']:.1f} s | {row['p95_latency']:.1f} s | "
                     f"{row['max_latency']:.0f} s | {row['mean_calls']:.1f} | {row['p95_calls']:.0f} | "
                     f"{row['mean_kb']:.0f} | {row['timeouts']:.0f} |")
    return lines


def kind_lines(table: dict[str, Any], policies: Sequence[str], kinds: Sequence[str]) -> list[str]:
    lines = ["| Policy | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for name in policies:
        row = table[name]
        cells = [(f"{row[f'{k}.p50']:.1f} / {row[f'{k}.p95']:.1f} s" if not math.isnan(row[f"{k}.p50"]) else "—")
                 + f" / {row[f'{k}.calls']:.0f}" for k in kinds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def plot(table: dict[str, Any], path: Path, title: str) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, row in table.items():
        colour = "tab:orange" if name.startswith("dbtgate") else "tab:blue"
        for axis, x in ((left, row["mean_calls"]), (right, row["mean_kb"])):
            axis.errorbar(x, row["p50_latency"], yerr=[[0], [row["p95_latency"] - row["p50_latency"]]], fmt="o",
                          color=colour, capsize=4)
            axis.annotate(name, (x, row["p50_latency"]), textcoords="offset points", xytext=(6, 6), fontsize=8)
    left.set_xscale("log")
    left.set_xlabel("mean API calls per run (log scale)")
    right.set_xscale("log")
    right.set_xlabel("mean KB downloaded per run (log scale)")
    for axis in (left, right):
        axis.set_ylabel("detection latency, s (dot: p50, bar: to p95)")
        axis.grid(True, alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def goals(row: dict[str, Any], fixed30: dict[str, Any]) -> list[str]:
    checks = [
        ("p50 detection latency ≤ 3 s", row["p50_latency"] <= 3, f"{row['p50_latency']:.1f} s"),
        # Issue 22's goals: p95 half a 30 s poller's, bytes within 10× its bytes.
        ("p95 detection latency ≤ 15 s", row["p95_latency"] <= 15, f"{row['p95_latency']:.1f} s"),
        ("mean calls ≤ the fixed 30 s poller's", row["mean_calls"] <= fixed30["mean_calls"],
         f"{row['mean_calls']:.1f} vs {fixed30['mean_calls']:.1f}"),
        ("bytes per run ≤ 10× the fixed 30 s poller's", row["mean_kb"] <= 10 * fixed30["mean_kb"],
         f"{row['mean_kb']:.0f} KB vs 10 × {fixed30['mean_kb']:.0f} KB = {10 * fixed30['mean_kb']:.0f} KB"),
    ]
    return [f"- {name}: {value} — {'met' if ok else 'NOT met'}." for name, ok, value in checks]


def fail_fast_section(cases: list[Case], plain: list[Measured], follow: dict[int, Measured],
                      fixed: list[Measured]) -> tuple[list[str], dict[str, Any]]:
    errors = [i for i, c in enumerate(cases) if c.job.get("outcome") == "error"]
    costed = [i for i in follow if i % 10 == 0]
    stopped = [follow[i] for i in errors if follow[i].stopped]
    latencies = [m.failure_latency for m in stopped if m.failure_latency is not None]
    saved = [m.saved_minutes for m in stopped if m.saved_minutes is not None]
    seen_plain = [plain[i].failure_latency for i in errors if plain[i].failure_latency is not None]
    summary = {
        "error_runs": len(errors), "stopped": len(stopped),
        "p50_failure_latency": percentile(latencies, 0.5), "p95_failure_latency": percentile(latencies, 0.95),
        "max_failure_latency": max(latencies, default=float("nan")),
        "mean_minutes_saved": statistics.fmean(saved) if saved else 0.0, "total_minutes_saved": sum(saved),
        "p50_minutes_saved": percentile(saved, 0.5),
        "plain_failures_reported": len(seen_plain), "plain_p50_failure_latency": percentile(seen_plain, 0.5),
        "costed_runs": len(costed),
        "mean_calls_follow": statistics.fmean(follow[i].calls for i in costed),
        "mean_kb_follow": statistics.fmean(follow[i].bytes for i in costed) / 1024,
        "mean_calls_plain": statistics.fmean(plain[i].calls for i in costed),
        "mean_kb_plain": statistics.fmean(plain[i].bytes for i in costed) / 1024,
        "mean_calls_fixed30": statistics.fmean(fixed[i].calls for i in costed),
        "mean_kb_fixed30": statistics.fmean(fixed[i].bytes for i in costed) / 1024,
    }
    lines = [
        "## Failures as they happen (fail_fast)", "",
        f"The same realistic mix replayed with `fail_fast: true`: the watcher reads the running step alone "
        f"(`GET steps/{{id}}/`) every {AdaptivePolicy().fail_fast_interval:g} s while the run is running and stops at "
        "the first failed or erroring node (a WARN or a SKIP is not "
        "one). Latency is from the failed node's result line (its `HH:MM:SS`, so up to 1 s pessimistic) to the "
        "watcher's decision; minutes saved are the run minutes left when it stopped (what a cancel saves).", "",
        "| | value |", "|---|---|",
        f"| runs that end in error | {summary['error_runs']} |",
        f"| stopped at a failed node before the run ended | {summary['stopped']} |",
        f"| failed line → decision, p50 / p95 / max | {summary['p50_failure_latency']:.1f} s / "
        f"{summary['p95_failure_latency']:.1f} s / {summary['max_failure_latency']:.1f} s |",
        f"| run minutes saved per stopped run, mean / p50 | {summary['mean_minutes_saved']:.1f} / "
        f"{summary['p50_minutes_saved']:.1f} (total {summary['total_minutes_saved']:.0f} min) |",
        f"| calls / run (every 10th run of the mix, {summary['costed_runs']} runs): fail_fast vs default | "
        f"{summary['mean_calls_follow']:.0f} vs {summary['mean_calls_plain']:.1f} (fixed 30 s: "
        f"{summary['mean_calls_fixed30']:.1f}) |",
        f"| KB / run (the same runs): fail_fast vs default | {summary['mean_kb_follow']:.0f} vs "
        f"{summary['mean_kb_plain']:.0f} (fixed 30 s: {summary['mean_kb_fixed30']:.0f}) |",
        f"| without fail_fast: error runs whose failed node was reported from a log read while waiting | "
        f"{summary['plain_failures_reported']} of {summary['error_runs']} "
        f"(p50 {summary['plain_p50_failure_latency']:.0f} s after the line) |",
        "", "Goal: failed line → decision ≤ 10 s at p95 — "
        f"{'met' if summary['p95_failure_latency'] <= 10 else 'NOT met'}. The cost is the log: every read carries "
        "the running step's log (up to 1,000 lines), so following costs calls and bytes in proportion to the run's "
        "length; it is opt-in for that reason. Without fail_fast, failed nodes are reported from the logs the "
        "policy reads anyway (within its budget), and always from the final read when the run ends.",
    ]
    return lines, summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.polling", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--check-runs", type=int, default=200, help="runs of the check on another seed")
    parser.add_argument("--check-seed", type=int, default=7)
    parser.add_argument("--tidy", type=int, default=300, help="runs of the previous benchmark's tidy mix")
    parser.add_argument("--e2e", type=int, default=15, help="runs replayed through the real gate over HTTP")
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args(argv)
    policies = [p for p in args.policies.split(",") if p]
    import dbtgate.emulator
    import dbtgate.gate.gate  # noqa: F401 -- loaded now: the end-to-end check at the end uses the code as it is now
    started = time.monotonic()
    cases = realistic(args.runs, args.seed)
    results = {name: [replay(case, name) for case in cases] for name in policies}
    # fail_fast on every run that fails (latency, minutes saved) and on every 10th run (what following costs).
    sampled = {i for i, case in enumerate(cases) if case.job.get("outcome") == "error" or i % 10 == 0}
    follow = {i: replay(cases[i], "dbtgate fail_fast") for i in sorted(sampled)}
    table = summarize(results, cases, list(MIX))
    print(f"realistic: {time.monotonic() - started:.0f} s")
    check_cases = realistic(args.check_runs, args.check_seed)
    check = summarize({name: [replay(case, name) for case in check_cases] for name in ("dbtgate", "fixed 30s")},
                      check_cases, list(MIX))
    tidy_cases = tidy(args.tidy, args.seed)
    tidy_results = {name: [replay(case, name) for case in tidy_cases] for name in policies}
    tidy_table = summarize(tidy_results, tidy_cases, list(TIDY_MIX))
    e2e: list[dict[str, Any]] = []
    if args.e2e:
        step = max(1, len(cases) // args.e2e)
        for index in range(0, len(cases), step)[: args.e2e]:
            real, simulated = replay_e2e(cases[index]), results["dbtgate"][index] if "dbtgate" in results else None
            e2e.append({"index": index, "kind": cases[index].kind, "e2e_calls": real.calls,
                        "sim_calls": simulated.calls if simulated else None, "e2e_kb": real.bytes / 1024,
                        "sim_kb": simulated.bytes / 1024 if simulated else None, "e2e_latency": real.latency,
                        "sim_latency": simulated.latency if simulated else None})
    RESULTS.mkdir(parents=True, exist_ok=True)
    plotted = plot({k: table[k] for k in policies}, RESULTS / "polling.png",
                   f"Polling on {len(cases)} real-shaped dbt Cloud runs (emulator, seed {args.seed})")
    fixed30 = table["fixed 30s"]
    ff_lines, ff_summary = fail_fast_section(cases, results["dbtgate"], follow, results["fixed 30s"])
    lines = [
        "# Polling benchmark", "",
        "Generated by `./dev bench` (`python -m benchmarks.polling`); do not edit by hand.", "",
        f"Computed in {time.monotonic() - started:.0f} s of wall time, in virtual time (nothing sleeps).", "",
        "## Realistic mix", "",
        f"{len(cases)} runs, seed {args.seed}; every run a fresh emulator with a seeded dbt project (a DAG on 4–16 "
        "threads, heavy-tailed node times with a long serial chain at the end, result lines out of order, logs cut "
        "to their last 1,000 lines, 30% with colour codes, 15% with a `dbt source freshness` step first), a "
        "history of 5 runs varying ±15% with 10% about twice as slow, queueing of 2–10 s and a finalisation gap of "
        "1–6 s unless said otherwise. Timeout 4 h; dbtgate's `interval` 60 s.", "",
        "| Kind | Share | What it is |", "|---|---|---|",
        *[f"| {kind} | {share:.0%} | {KIND_NOTES[kind]} |" for kind, share in MIX.items()], "",
        "Detection latency: from the run's completion to the poll that sees it. Calls: every request while "
        "waiting (dbtgate's history lookup, the previous run's log and the final read of the steps for the summary "
        "included). Bytes: response bodies as served (JSON, uncompressed). The fixed pollers and the backoff read "
        "the run object alone (`include_related=[\"trigger\"]`).", "",
        *table_lines(table, policies), "",
        "By kind (p50 / p95 latency / mean calls):", "",
        *kind_lines(table, policies, list(MIX)), "",
        "### Goals on the realistic mix", "",
        *goals(table["dbtgate"], fixed30), "",
        f"The same on another seed ({args.check_seed}, {len(check_cases)} runs), to check nothing was tuned to one "
        "workload:", "",
        *table_lines(check, ("dbtgate", "fixed 30s")), "",
        *goals(check["dbtgate"], check["fixed 30s"]), "",
        *ff_lines, "",
        "## Tidy mix (the previous benchmark's workload)", "",
        f"{len(tidy_cases)} runs, seed {args.seed}: the small sample project whose nodes finish evenly, a history "
        "of 5 runs log-normal (σ 0.2) around the job's median, no finalisation gap. Kinds: "
        + ", ".join(f"{k} {v:.0%}" for k, v in TIDY_MIX.items()) + " (as before; over_timeout runs 2.2–3 h).", "",
        *table_lines(tidy_table, policies), "",
        *kind_lines(tidy_table, policies, list(TIDY_MIX)), "",
    ]
    if e2e:
        lines += [
            "## End-to-end check", "",
            f"{len(e2e)} runs of the realistic mix replayed through the real `Gate` and `DbtCloudClient` over HTTP "
            "against the emulator (a virtual clock shared by both), against the in-process replay of the same runs:",
            "",
            f"- mean |calls e2e − calls in process| per run: "
            f"{statistics.fmean(abs(r['e2e_calls'] - r['sim_calls']) for r in e2e):.2f} (mean calls e2e "
            f"{statistics.fmean(r['e2e_calls'] for r in e2e):.1f}, in process "
            f"{statistics.fmean(r['sim_calls'] for r in e2e):.1f})",
            f"- mean KB e2e {statistics.fmean(r['e2e_kb'] for r in e2e):.0f}, in process "
            f"{statistics.fmean(r['sim_kb'] for r in e2e):.0f} (the gate also looks up the job and the artifacts)",
        ]
    lines += ["", "## What limits these numbers", "", *explain(results["dbtgate"], cases), *LIMITS]
    if plotted:
        lines += ["", "![latency vs calls and bytes](polling.png)"]
    (RESULTS / "polling.md").write_text("\n".join(lines) + "\n", "utf-8")
    (RESULTS / "polling.json").write_text(json.dumps({
        "seed": args.seed, "runs": len(cases), "timeout": TIMEOUT, "interval": MAX_INTERVAL, "realistic": table,
        "check": {"seed": args.check_seed, "runs": len(check_cases), "summary": check}, "tidy": tidy_table,
        "fail_fast": ff_summary, "e2e": e2e, "workload": [asdict(case) for case in cases],
        "dbtgate_runs": [asdict(m) for m in results.get("dbtgate", [])]}, indent=1,
        default=str), "utf-8")
    for name in policies:
        row = table[name]
        print(f"{name:14s} p50 {row['p50_latency']:6.1f} s  p95 {row['p95_latency']:6.1f} s  max "
              f"{row['max_latency']:6.0f} s  calls {row['mean_calls']:6.1f}  KB {row['mean_kb']:7.0f}")
    print("fail_fast", {k: round(v, 1) if isinstance(v, float) else v for k, v in ff_summary.items()})
    print(f"wrote {RESULTS / 'polling.md'}")
    return 0


def explain(measured: list[Measured], cases: list[Case]) -> list[str]:
    """Where dbtgate's slow detections come from on the realistic mix, so a missed goal says why."""
    slow = [(m, c) for m, c in zip(measured, cases, strict=True) if m.latency is not None and m.latency > 10]
    failed = [(m, c) for m, c in slow if c.job.get("outcome") == "error"]
    clean = [m.latency for m, c in zip(measured, cases, strict=True)
             if m.latency is not None and c.job.get("outcome") != "error"]
    errors = [m.latency for m, c in zip(measured, cases, strict=True)
              if m.latency is not None and c.job.get("outcome") == "error"]
    by_kind: dict[str, int] = {}
    for _, case in slow:
        by_kind[case.kind] = by_kind.get(case.kind, 0) + 1
    return [
        f"- dbtgate saw {len(slow)} of {len(measured)} runs ({len(slow) / len(measured):.0%}) more than 10 s after "
        f"they ended; {len(failed)} of them ended in error (by kind: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(by_kind.items(), key=lambda kv: -kv[1])) + "). "
        f"On the runs that succeed, p50 {percentile(clean, 0.5):.1f} s and p95 {percentile(clean, 0.95):.1f} s; on "
        f"those that fail, p50 {percentile(errors, 0.5):.1f} s and p95 {percentile(errors, 0.95):.1f} s.",
        "- Why failing runs are seen late: in `dbt build` a failure skips its descendants, and when it hits the long "
        "chain that ends the run, the run ends minutes before the previous run's timings (or the history) say. "
        "Nothing in the run object shows it; only the step log does, and reading it often enough to catch that "
        "(tens to hundreds of KB a read) does not fit in 3× the bytes of a 30 s poller — that is what `fail_fast` "
        "buys (the section above). Between reads, dbtgate sleeps the user's `interval` while the predicted end is "
        "far, so such a run is seen up to `interval` (60 s) late.",
        "- Why some successful runs are seen late: when the byte budget allows no log read near the end (a big "
        "project's log costs as much as minutes of polls, and the previous run's log is read first), the end "
        "window is the job history's, about ±20% of the run, and the calls left are spread over it; a run about "
        "twice as slow as usual (10% of them) overruns every window and is found by the back-off.",
        "- Short runs (1–5 min) have few calls to spend: the call bound (a 30 s poller's plus 20) is mostly used "
        "by the first minute's quick polls, which catch early failures.",
    ]


LIMITS = [
    "- The emulator's runs are modelled on one real dbt 1.12 run and on what dbt Cloud is documented and seen to do; "
    "real warehouses add contention that no seed reproduces. The previous run's log is what dbtgate predicts from: "
    "a job whose runs differ a lot from one to the next (a full refresh after incremental runs) falls back to the "
    "history and the overrun back-off, and costs more calls near its end.",
    "- Log-line times are whole seconds and dbt Cloud's durations too: near the end estimates are ±1–2 s at best.",
    "- Bytes are the JSON bodies as the emulator sends them; dbt Cloud may compress them on the wire.",
]


if __name__ == "__main__":
    raise SystemExit(main())
