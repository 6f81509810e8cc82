"""Polling benchmark: dbtgate's adaptive policy against fixed intervals, on a seeded workload in virtual time.

    ./dev bench                         # = python -m benchmarks.polling
    python -m benchmarks.polling --runs 1000 --seed 20261123 --e2e 60

For every simulated run the emulator's own `World` (the same code that serves HTTP) is built with the job's
history, an optional run queued ahead, and the measured run; each policy then replays the wait on a manual clock:
observe, ask the policy for a delay, move the clock, poll, until the run is terminal or the timeout passes.
Fixed intervals of 5, 10, 30 and 60 s stand for dbt-cloud-cli; dlt, Prefect and dbtc; the GitHub actions; and
Airflow. A sample is then replayed end to end through the real Gate over real HTTP against the emulator (with a
virtual clock shared by both) to check that the simulation matches what the product does.

Writes benchmarks/results/polling.md, polling.json and polling.png.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dbtgate.clock import VirtualClock
from dbtgate.emulator.scenario import JobSpec, Scenario
from dbtgate.emulator.world import World
from dbtgate.models import Run
from dbtgate.polling import AdaptivePolicy, FixedInterval, expected_duration, poll_state

RESULTS = Path(__file__).resolve().parent / "results"
TIMEOUT = 7200.0           # the gate's default timeout (2h)
MAX_INTERVAL = 60.0        # dbtgate's default `interval`: the adaptive policy's longest spacing
HISTORY_RUNS = 5
SETUP_SECONDS = 3.0
# The workload mix: kind → share of runs. Documented in the results file.
MIX = {"early_failure": 0.10, "short": 0.15, "typical": 0.45, "queued": 0.12, "misleading_history": 0.13,
       "over_timeout": 0.05}
# "dbtgate @30s" is dbtgate with `interval: 30`, as users migrating from the GitHub actions may have it set.
POLICIES = ("dbtgate", "dbtgate @30s", "fixed 5s", "fixed 10s", "fixed 30s", "fixed 60s")


@dataclass(frozen=True)
class SimRun:
    index: int
    kind: str
    history: tuple[float, ...]     # dbt step durations of the job's previous runs
    actual: float                  # dbt step duration of the measured run
    outcome: str                   # success | error
    blocker: float | None          # dbt step duration of a run of the same job ahead in the queue
    queue_seconds: float
    start_seconds: float


def workload(runs: int, seed: int) -> list[SimRun]:
    rng = random.Random(seed)
    kinds = [kind for kind, share in MIX.items() for _ in range(round(share * runs))]
    kinds = (kinds + ["typical"] * runs)[:runs]
    rng.shuffle(kinds)
    made = []
    for index, kind in enumerate(kinds):
        median = math.exp(rng.uniform(math.log(300), math.log(3600)))   # a job typically takes 5-60 min
        history = tuple(round(median * rng.lognormvariate(0, 0.2), 1) for _ in range(HISTORY_RUNS))
        actual, outcome, blocker = median * rng.lognormvariate(0, 0.2), "success", None
        if kind == "early_failure":
            actual, outcome = rng.uniform(5, 50), "error"                # bad branch, deps error, ...
        elif kind == "short":
            median = rng.uniform(60, 300)
            history = tuple(round(median * rng.lognormvariate(0, 0.2), 1) for _ in range(HISTORY_RUNS))
            actual = median * rng.lognormvariate(0, 0.2)
        elif kind == "queued":
            blocker = rng.uniform(120, 1200)
        elif kind == "misleading_history":
            actual = median * rng.choice([0.35, 0.5, 2.0, 3.0])
        elif kind == "over_timeout":
            actual = rng.uniform(2.2, 3.0) * 3600
        if kind != "early_failure" and rng.random() < 0.15:
            outcome = "error"
        made.append(SimRun(index, kind, history, round(actual, 1), outcome, blocker and round(blocker, 1),
                           round(rng.uniform(2, 10), 1), round(rng.uniform(5, 15), 1)))
    return made


class ManualClock:
    """A clock the simulation sets; the emulator's World derives every run's state from it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def job_for(sim: SimRun) -> JobSpec:
    durations = (*sim.history, *((sim.blocker,) if sim.blocker else ()), sim.actual)
    outcomes = ("success",) * (len(durations) - 1) + (sim.outcome,)
    return JobSpec(id=1, name=f"bench {sim.kind}", execute_steps=("dbt build",), outcomes=outcomes,
                   run_seconds_per_run=durations, queue_seconds=sim.queue_seconds, start_seconds=sim.start_seconds,
                   setup_seconds=SETUP_SECONDS)


def prepare(world: World, clock: Any, job: JobSpec, sim: SimRun) -> None:
    """Run the job's history to completion, then queue the blocker (if any), as the account would be."""
    for _ in sim.history:
        run = world.trigger(job, {"cause": "history"})
        clock.sleep(world.finished_elapsed(run["id"]) - world.elapsed() + 60)  # type: ignore[operator]
    if sim.blocker:
        world.trigger(job, {"cause": "another pipeline"})


@dataclass(frozen=True)
class Measured:
    calls: int                 # polls + the history lookup (dbtgate only)
    latency: float | None      # seconds from the run's end to the gate's decision; None on timeout
    timed_out: bool


def replay(sim: SimRun, policy_name: str) -> Measured:
    clock = ManualClock()
    job = job_for(sim)
    world = World(Scenario(jobs=(job,)), clock)
    prepare(world, clock, job, sim)
    adaptive = policy_name.startswith("dbtgate")
    policy = (AdaptivePolicy(max_interval=30.0 if policy_name == "dbtgate @30s" else MAX_INTERVAL) if adaptive
              else FixedInterval(float(policy_name.split()[1][:-1])))
    include = frozenset({"run_steps"}) if adaptive else frozenset()
    history_calls = 0
    history = None
    if adaptive:  # the gate's one extra list call, for the job's typical duration
        rows, _ = world.list_runs(job_id=1, statuses={10, 20}, order_by="-created_at", limit=10, offset=0,
                                  include=frozenset())
        history, history_calls = expected_duration([Run.from_api(row) for row in rows]), 1
    # Mirrors Gate._wait: observe the trigger's answer, then sleep, poll, decide — until terminal or the timeout.
    triggered = world.trigger(job, {"cause": "measured"})
    run_id, started = triggered["id"], clock.now
    run, polls = Run.from_api(triggered), 0
    while True:
        waited = clock.now - started
        if run.is_terminal:
            finished = world.finished_elapsed(run_id) or 0.0
            return Measured(polls + history_calls, world.elapsed() - finished, False)
        if waited >= TIMEOUT:
            return Measured(polls + history_calls, None, True)
        delay = policy.next_delay(poll_state(run, waited, history, total_steps=3))
        clock.sleep(min(delay, TIMEOUT - waited))
        run, polls = Run.from_api(world.run_json(run_id, include)), polls + 1


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(results: dict[str, list[Measured]], sims: list[SimRun]) -> dict[str, dict[str, float]]:
    table = {}
    for name, measured in results.items():
        latencies = [m.latency for m in measured if m.latency is not None]
        table[name] = {"p50_latency": percentile(latencies, 0.5), "p95_latency": percentile(latencies, 0.95),
                       "mean_latency": statistics.fmean(latencies), "mean_calls": statistics.fmean(
                           m.calls for m in measured), "timeouts": sum(m.timed_out for m in measured)}
        for kind in MIX:
            picked = [m for m, s in zip(measured, sims, strict=True) if s.kind == kind]
            kind_latencies = [m.latency for m in picked if m.latency is not None]
            table[name][f"{kind}.p50_latency"] = percentile(kind_latencies, 0.5) if kind_latencies else float("nan")
            table[name][f"{kind}.mean_calls"] = statistics.fmean(m.calls for m in picked)
    return table


# ---- end-to-end check through the real gate over real HTTP --------------------------------------------------
def replay_e2e(sim: SimRun) -> Measured:
    from dbtgate.client import DbtCloudClient
    from dbtgate.config import parse_config
    from dbtgate.emulator import Emulator
    from dbtgate.gate import Gate
    from dbtgate.logs import configure

    configure(io.StringIO())  # the gate's progress lines are not what is measured here
    clock = VirtualClock()
    job = job_for(sim)
    with Emulator(Scenario(token="bench", jobs=(job,)), clock=clock) as emulator:
        prepare(emulator.world, clock, job, sim)
        before = len(emulator.log.all())
        config = parse_config({"dbt_cloud_url": emulator.url, "dbt_cloud_token": "bench", "dbt_cloud_account_id": "1",
                               "dbt_cloud_job_id": "1", "interval": str(MAX_INTERVAL), "timeout": str(TIMEOUT),
                               "get_artifacts": "false", "cancel_on_timeout": "false"}, {})
        client = DbtCloudClient(emulator.url, "bench", 1, clock=clock)
        result = Gate(config, client, clock, emit=lambda line: None).run()
        assert result.run is not None
        calls = sum(1 for entry in emulator.log.all()[before:] if entry.endpoint in ("get_run", "list_runs"))
        if result.outcome.value == "timeout":
            return Measured(calls, None, True)
        finished = emulator.world.finished_elapsed(result.run.id) or 0.0
        return Measured(calls, emulator.world.elapsed() - finished, False)


def plot(table: dict[str, dict[str, float]], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, row in table.items():
        colour = "tab:orange" if name.startswith("dbtgate") else "tab:blue"
        axis.errorbar(row["mean_calls"], row["p50_latency"], yerr=[[0], [row["p95_latency"] - row["p50_latency"]]],
                      fmt="o", color=colour, capsize=4)
        axis.annotate(name, (row["mean_calls"], row["p50_latency"]), textcoords="offset points", xytext=(6, 6))
    axis.set_xscale("log")
    axis.set_xlabel("mean API calls per run (log scale)")
    axis.set_ylabel("detection latency, s (dot: p50, bar: up to p95)")
    axis.set_title("Polling policies on 1,000 simulated dbt Cloud runs")
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def write_report(table: dict[str, dict[str, float]], sims: list[SimRun], seed: int, e2e: list[dict[str, Any]],
                 seconds: float, plotted: bool) -> None:
    dbtgate, fixed10, fixed30 = table["dbtgate"], table["fixed 10s"], table["fixed 30s"]
    calls_ok = dbtgate["mean_calls"] <= fixed30["mean_calls"]
    latency_ok = dbtgate["p50_latency"] <= fixed10["p50_latency"] / 3
    lines = [
        "# Polling benchmark", "",
        "Generated by `./dev bench` (`python -m benchmarks.polling`); do not edit by hand.", "",
        f"Workload: {len(sims)} simulated runs, seed {seed}, timeout {TIMEOUT / 3600:g} h, dbtgate `interval` "
        f"{MAX_INTERVAL:g} s. Computed in {seconds:.0f} s of wall time.", "",
        "| Kind | Share | What it is |", "|---|---|---|",
        "| early_failure | 10% | fails 5–50 s into the dbt step (bad branch, deps error) |",
        "| short | 15% | 1–5 min runs, history log-normal (σ 0.2) around the job's median |",
        "| typical | 45% | job median log-uniform in 5–60 min; the run log-normal (σ 0.2) around it |",
        "| queued | 12% | typical, behind another run of the job lasting 2–20 min (status 1, `blocked_by`) |",
        "| misleading_history | 13% | the run takes 0.35×, 0.5×, 2× or 3× its job's median |",
        "| over_timeout | 5% | 2.2–3 h: outlasts the 2 h timeout |", "",
        "Every run also queues 2–10 s, starts 5–15 s and spends 2 × 3 s in setup steps; 15% of the non-early runs "
        "end in error. Detection latency is the time from the run's end to the gate's decision (runs that "
        "outlast the timeout are excluded); calls are polls plus, for dbtgate, its one history lookup.", "",
        "| Policy | p50 latency | p95 latency | mean latency | mean API calls / run | timeouts |",
        "|---|---|---|---|---|---|",
    ]
    for name in POLICIES:
        row = table[name]
        lines.append(f"| {name} | {row['p50_latency']:.1f} s | {row['p95_latency']:.1f} s | "
                     f"{row['mean_latency']:.1f} s | {row['mean_calls']:.1f} | {row['timeouts']:.0f} |")
    lines += ["", "By kind (p50 latency / mean calls):", "",
              "| Policy | " + " | ".join(MIX) + " |", "|---|" + "---|" * len(MIX)]
    for name in POLICIES:
        row = table[name]
        cells = [(f"{row[f'{kind}.p50_latency']:.1f} s" if not math.isnan(row[f"{kind}.p50_latency"]) else "—")
                 + f" / {row[f'{kind}.mean_calls']:.0f}" for kind in MIX]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "", "## Targets", "",
        f"- API calls no more than the 30 s policy's: dbtgate {dbtgate['mean_calls']:.1f} vs "
        f"{fixed30['mean_calls']:.1f} — {'met' if calls_ok else 'NOT met'}.",
        f"- p50 detection latency at most a third of the 10 s policy's: dbtgate {dbtgate['p50_latency']:.1f} s vs "
        f"{fixed10['p50_latency']:.1f} s / 3 = {fixed10['p50_latency'] / 3:.1f} s — "
        f"{'met' if latency_ok else 'NOT met'}.",
    ]
    if e2e:
        calls_diff = statistics.fmean(abs(row["e2e_calls"] - row["sim_calls"]) for row in e2e)
        pairs = [row for row in e2e if row["e2e_latency"] is not None and row["sim_latency"] is not None]
        latency_diff = statistics.fmean(abs(row["e2e_latency"] - row["sim_latency"]) for row in pairs) if pairs else 0
        e2e_p50 = percentile([row["e2e_latency"] for row in pairs], 0.5)
        sim_p50 = percentile([row["sim_latency"] for row in pairs], 0.5)
        lines += [
            "", "## End-to-end check", "",
            f"{len(e2e)} runs of the workload (every {len(sims) // len(e2e)}th) were replayed through the real "
            "`Gate` and `DbtCloudClient` over real HTTP against the emulator, the two sharing a virtual clock.",
            "",
            f"- mean |calls e2e − calls simulated| per run: {calls_diff:.2f} "
            f"(mean calls e2e {statistics.fmean(r['e2e_calls'] for r in e2e):.1f}, simulated "
            f"{statistics.fmean(r['sim_calls'] for r in e2e):.1f})",
            f"- mean |latency e2e − latency simulated|: {latency_diff:.2f} s; p50 latency e2e {e2e_p50:.1f} s, "
            f"simulated {sim_p50:.1f} s",
        ]
    lines += [
        "", "## What limits these numbers", "",
        "- The emulator finishes a step's nodes evenly over its duration, so the \"N of M\" estimate is better "
        "than on real projects, where one slow model can dominate. On real runs expect dbtgate's latency to sit "
        "between this figure and the history-only behaviour (the `misleading_history` column shows how it copes "
        "when the history is wrong: the node progress corrects it).",
        "- The quick polls of the first minute (to catch early failures) cost about a dozen calls on every run; "
        "they are what keeps `early_failure` latency low, and what makes very short runs cost more calls than "
        "with a 30 s interval.",
        "- Latency never goes below about half of the 2 s minimum interval.",
        "- The user's `interval` bounds the spacing, so on long runs calls grow as duration / interval: with "
        "`interval: 30` (the \"dbtgate @30s\" row) dbtgate keeps its latency but spends about as many calls as the "
        "30 s policy plus the first minute's quick polls. That is why dbtgate's default `interval` is 60 s.",
    ]
    if plotted:
        lines += ["", "![latency vs calls](polling.png)"]
    (RESULTS / "polling.md").write_text("\n".join(lines) + "\n", "utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.polling", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--e2e", type=int, default=50, help="runs replayed through the real gate over HTTP (0: none)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    sims = workload(args.runs, args.seed)
    results = {name: [replay(sim, name) for sim in sims] for name in POLICIES}
    table = summarize(results, sims)
    e2e: list[dict[str, Any]] = []
    if args.e2e:
        step = max(1, len(sims) // args.e2e)
        for index in range(0, len(sims), step)[: args.e2e]:
            real, simulated = replay_e2e(sims[index]), results["dbtgate"][index]
            e2e.append({"index": index, "kind": sims[index].kind, "e2e_calls": real.calls,
                        "sim_calls": simulated.calls, "e2e_latency": real.latency,
                        "sim_latency": simulated.latency})
    RESULTS.mkdir(parents=True, exist_ok=True)
    plotted = plot(table, RESULTS / "polling.png")
    write_report(table, sims, args.seed, e2e, time.monotonic() - started, plotted)
    (RESULTS / "polling.json").write_text(json.dumps({
        "seed": args.seed, "runs": len(sims), "timeout": TIMEOUT, "interval": MAX_INTERVAL, "summary": table,
        "e2e": e2e, "workload": [asdict(sim) for sim in sims]}, indent=1), "utf-8")
    for name in POLICIES:
        row = table[name]
        print(f"{name:10s}  p50 {row['p50_latency']:6.1f} s  p95 {row['p95_latency']:6.1f} s  "
              f"calls {row['mean_calls']:6.1f}")
    print(f"wrote {RESULTS / 'polling.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
