"""A second realistic mix of runs whose plans come from the real dbt-core run, not from the emulator's model.

The emulator (dbtgate/emulator/project.py) makes its own projects (a seeded layered DAG, log-normal node weights
with one dominant chain) and its own schedule (list scheduling by depth, each node's time jittered per run about
its weight). This module keeps the emulator's `World` — so the API, the run object, the step logs and the artifacts are
served by the same code — but gives it a project and, run by run, a plan made here from
tests/fixtures/reference-run/ (the real 4-thread `dbt build` of acme_analytics):

- the DAG is the real manifest's (`depends_on`, the ephemeral model folded into its children, the unit test run
  before its model, `dbt build`'s rule that a node waits for the tests of what it refs), replicated into copies for
  bigger projects, with some copies wired after an earlier one (their staging reads an earlier copy's marts);
- each copy's node times are the real node's own time or a draw from the real times of its resource type, and
  every run multiplies each node by a ratio drawn from what the same node varied by across the five real builds;
- the schedule is dbt-core's: nodes go to the pool when their parents are done, in order of topological
  generation, and the thread that has waited longest takes the next one (a queue.Queue's waiters are FIFO);
- an error skips its descendants; a model error takes the share of its time the real failing model took.

Where the plan goes in (found by reading world.py and project.py; the scenario format has no way to list nodes
or their times): `World._new_run` asks `project.project_for(spec)`, which reads the module's `_PROJECT_CACHE`,
and `project.command_step` asks the module-level `_cached_schedule(...)` for the node runs, then renders the log,
run_results and the step's duration from them (with a natural-time project: no `duration.median`, no spread, no
slow runs, the emulator does not rescale). So a project is registered in that cache under the case's
`ProjectSpec`, `_cached_schedule` is wrapped (it answers for registered projects only, and hands everything else
to the original), and a `World` subclass says which run is being planned. Failed runs name their failing node
through the scenario's own `failures:` list. Nothing in dbtgate/ is changed; `check_seam()` fails loudly when a
refactor moves those names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import inspect
import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.polling import Case, ManualClock, trigger_body
from dbtgate.emulator import project as dbt
from dbtgate.emulator.project import Node, NodeResult, NodeRun, Project
from dbtgate.emulator.scenario import JobSpec, parse_scenario
from dbtgate.emulator.world import World

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reference-run"
PACKAGE = "acme_analytics"
# Run-to-run ratios are taken from nodes of at least this many seconds: below it the real times are dominated by
# dbt's own per-node overhead on a laptop-sized DuckDB (the σ of the log ratio is 0.49 from all nodes, 0.27 from
# these 28 pairs), which a warehouse-sized node does not have.
MIN_RATIO_BASE = 0.3


# ---- the reference -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefNode:
    uid: str
    kind: str                  # seed | model | snapshot | test (unit tests are tests here)
    name: str
    materialized: str
    schema: str
    file: str
    parents: tuple[int, ...]   # refs (models, seeds, snapshots) or, for a test, what it tests
    attached: int | None
    seconds: float             # its time in the successful real build (compile start to execute end)
    thread: int
    start: float


@dataclass
class Reference:
    nodes: list[RefNode]
    sources: list[str]
    elapsed: float                            # the real build's elapsed_time
    by_kind: dict[str, list[float]]           # real node times per kind: the empirical distribution
    log_ratios: list[float]                   # ln(time in another build / time in this one), per node and build,
                                              # less their median
    error_share: float                        # the failing model's time over its time when it succeeded
    real_order: list[int]                     # node indices in the real dispatch (start) order


def load_reference(folder: Path = FIXTURE) -> Reference:
    dag = json.loads((folder / "dag.json").read_text("utf-8"))
    runs = json.loads((folder / "timings.json").read_text("utf-8"))
    reruns = json.loads((folder / "reruns.json").read_text("utf-8"))
    raw = {n["unique_id"]: n for n in dag["nodes"]}
    ephemeral = {uid for uid, n in raw.items() if n["materialized"] == "ephemeral"}

    def resolved(deps: Sequence[str]) -> list[str]:   # an ephemeral model is compiled into its children
        out: list[str] = []
        for dep in deps:
            out.extend(resolved(raw[dep]["depends_on"]) if dep in ephemeral else [dep] if dep in raw else [])
        return out

    timed = {r["unique_id"]: r for r in runs["success"]["results"]}
    order = [uid for uid in raw if uid not in ephemeral and uid in timed]
    index = {uid: i for i, uid in enumerate(order)}
    unit_of = {raw[uid]["depends_on"][0]: uid for uid in order if raw[uid]["resource_type"] == "unit_test"}
    nodes = []
    for uid in order:
        n, t = raw[uid], timed[uid]
        deps = resolved(n["depends_on"])
        kind = n["resource_type"]
        attached = index.get(n["attached_node"]) if n.get("attached_node") else None
        if kind == "unit_test":
            # dbt build runs a model's unit tests before it, on its inputs: they hang off the model's parents.
            model = deps[0]
            deps = resolved(raw[model]["depends_on"])
            kind, attached = "test", None
        elif kind == "test" and attached is None and deps:
            attached = index.get(deps[0])
        parents = sorted(index[d] for d in deps if d in index)
        if kind == "model" and uid in unit_of:
            parents.append(index[unit_of[uid]])
        nodes.append(RefNode(uid, kind, n["name"], n["materialized"], n["schema"] or "main", n["file"],
                             tuple(parents), attached, max(0.005, t["end"] - t["start"]),
                             int(t["thread"].split("-")[1].split()[0]), t["start"]))
    by_kind: dict[str, list[float]] = {}
    for node in nodes:
        by_kind.setdefault(node.kind, []).append(node.seconds)
    by_name = {n.name: n for n in nodes}
    ratios = []
    success = {r["unique_id"]: r["execution_time"] for r in runs["success"]["results"]}
    for times in reruns.values():
        for name, seconds in times.items():
            node = by_name.get(name)
            base = success.get(node.uid) if node else None
            if node and base and base >= MIN_RATIO_BASE and seconds >= 0.01:
                ratios.append(math.log(seconds / base))
    # Centred: the run-wide pace is the planner's (±spread, 2x slow); this is only how nodes differ within a run.
    centre = sorted(ratios)[len(ratios) // 2]
    ratios = [r - centre for r in ratios]
    failed = next(r for r in runs["error"]["results"] if r["status"] == "error")
    share = failed["execution_time"] / success[failed["unique_id"]]
    real_order = sorted(range(len(nodes)), key=lambda i: nodes[i].start)
    return Reference(nodes, list(dag["sources"]), float(runs["success"]["elapsed_time"]), by_kind, sorted(ratios),
                     share, real_order)


# ---- dbt build's graph and dbt-core's scheduling -----------------------------------------------------------------
def build_parents(parents: Sequence[Sequence[int]], kinds: Sequence[str], attached: Sequence[int | None]
                  ) -> list[tuple[int, ...]]:
    """`dbt build`: besides its refs, a node waits for each test on what it refs whose other parents are all its
    ancestors too (a test that also reads a node downstream would be a cycle)."""
    n = len(parents)
    order = _topological(parents)
    ancestors: list[set[int]] = [set() for _ in range(n)]
    for i in order:
        for p in parents[i]:
            ancestors[i] |= ancestors[p] | {p}
    tests_of: dict[int, list[int]] = {}
    for i in range(n):
        if kinds[i] == "test" and attached[i] is not None:
            tests_of.setdefault(attached[i], []).append(i)   # type: ignore[arg-type]
    out = []
    for i in range(n):
        extra: list[int] = []
        if kinds[i] != "test":
            for p in parents[i]:
                extra.extend(t for t in tests_of.get(p, ()) if set(parents[t]) <= ancestors[i])
        out.append(tuple(sorted(set(parents[i]) | set(extra))))
    return out


def _topological(parents: Sequence[Sequence[int]]) -> list[int]:
    children: list[list[int]] = [[] for _ in parents]
    pending = [len(ps) for ps in parents]
    for i, ps in enumerate(parents):
        for p in ps:
            children[p].append(i)
    frontier = [i for i, d in enumerate(pending) if d == 0]
    order: list[int] = []
    while frontier:
        i = frontier.pop()
        order.append(i)
        for c in children[i]:
            pending[c] -= 1
            if pending[c] == 0:
                frontier.append(c)
    return order


def generations(parents: Sequence[Sequence[int]]) -> list[int]:
    """dbt-core's GraphQueue score: the node's topological generation (0 for nodes with no parents)."""
    score = [0] * len(parents)
    for i in _topological(parents):
        for p in parents[i]:
            score[i] = max(score[i], score[p] + 1)
    return score


def dbt_schedule(parents: Sequence[Sequence[int]], durations: Sequence[float], threads: int,
                 outcome: dict[int, str], is_test: Sequence[bool], scores: Sequence[int] | None = None
                 ) -> list[NodeRun]:
    """dbt-core's run loop as a simulation: a node whose parents are done enters the priority queue (by score), the
    main loop hands it at once to the thread pool (numbering it then), and the pool's workers take work in that
    order, the longest-idle worker first. A node with a failed or skipped parent is numbered and printed as SKIP
    when it comes off the queue, without a thread. Returns node runs in completion order."""
    n = len(parents)
    scores = list(scores) if scores is not None else generations(parents)
    children: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(parents):
        for p in ps:
            children[p].append(i)
    pending = [len(ps) for ps in parents]
    bad: set[int] = set()
    idle: list[tuple[float, int]] = [(0.0, t) for t in range(1, threads + 1)]   # (idle since, thread): FIFO
    heapq.heapify(idle)
    running: list[tuple[float, int, int, int]] = []                             # (end, number, node, thread)
    pool: list[int] = []                                                         # submitted, not yet taken
    ready = [(scores[i], i) for i in range(n) if pending[i] == 0]
    heapq.heapify(ready)
    done: list[NodeRun] = []
    number = 0
    now = 0.0
    starts: dict[int, tuple[int, float, int]] = {}
    numbers: dict[int, int] = {}

    def release(i: int) -> None:
        for c in children[i]:
            pending[c] -= 1
            if pending[c] == 0:
                heapq.heappush(ready, (scores[c], c))

    while ready or pool or running:
        while ready:                       # the main loop drains the queue into the pool
            _, i = heapq.heappop(ready)
            number += 1
            numbers[i] = number
            if any(p in bad for p in parents[i]):
                bad.add(i)
                done.append(NodeRun(i, number, "skipped", now, now, 0, None, None, ""))
                release(i)
                continue
            pool.append(i)
        while pool and idle:
            i = pool.pop(0)
            _, thread = heapq.heappop(idle)
            starts[i] = (numbers[i], now, thread)
            heapq.heappush(running, (now + durations[i], numbers[i], i, thread))
        if not running:
            continue
        end, num, i, thread = heapq.heappop(running)
        now = end
        heapq.heappush(idle, (now, thread))
        status = outcome.get(i, "pass" if is_test[i] else "success")
        if status in ("error", "fail"):
            bad.add(i)
        done.append(NodeRun(i, num, status, starts[i][1], end, thread, None, None, ""))
        release(i)
    return done


def validate(ref: Reference) -> dict[str, Any]:
    """The scheduler against the real run: the real node times on the real DAG and 4 threads, replayed."""
    parents = build_parents([n.parents for n in ref.nodes], [n.kind for n in ref.nodes],
                            [n.attached for n in ref.nodes])
    runs = dbt_schedule(parents, [n.seconds for n in ref.nodes], 4, {}, [n.kind == "test" for n in ref.nodes])
    makespan = max(r.end for r in runs)
    simulated = [r.index for r in sorted(runs, key=lambda r: (r.start, r.number))]
    position = {i: k for k, i in enumerate(ref.real_order)}
    # Kendall-like agreement of the start order: the share of node pairs both orders put the same way round.
    sim_pos = {i: k for k, i in enumerate(simulated)}
    pairs = agree = 0
    nodes = list(position)
    for a in range(len(nodes)):
        for b in range(a + 1, len(nodes)):
            x, y = nodes[a], nodes[b]
            pairs += 1
            agree += (position[x] < position[y]) == (sim_pos[x] < sim_pos[y])
    real_span = max(n.start + n.seconds for n in ref.nodes)
    starts_err = sorted(abs(r.start - ref.nodes[r.index].start) for r in runs)
    return {"real_span": real_span, "simulated_span": makespan, "start_order_agreement": agree / pairs,
            "p50_start_error": starts_err[len(starts_err) // 2], "max_start_error": starts_err[-1],
            "nodes": len(ref.nodes)}


# ---- projects: the reference DAG in copies -----------------------------------------------------------------------
@dataclass
class RefProject:
    project: Project
    parents: list[tuple[int, ...]]       # the build graph
    base: list[float]                    # each node's time in a typical run, in the reference's seconds
    scores: list[int]
    is_test: list[bool]
    kinds: list[str]
    unit: float = 1.0                    # real seconds per reference second (sets the job's typical duration)


def make_project(ref: Reference, copies: int, seed: int, keep: float | None = None) -> RefProject:
    """`copies` copies of the reference DAG; copy k > 0 is wired after an earlier copy with probability 0.35 (one of
    its staging models also reads one of that copy's marts). Node times: the real node's own (probability `keep`,
    0.5 by default) or a draw from the real times of its kind, per copy."""
    rng = random.Random(f"refmix-project:{seed}:{copies}")
    keep = 0.5 if keep is None else keep
    m = len(ref.nodes)
    nodes: list[Node] = []
    refs: list[tuple[int, ...]] = []
    attached: list[int | None] = []
    base: list[float] = []
    roots = [i for i, n in enumerate(ref.nodes) if n.kind == "model" and all(ref.nodes[p].kind == "seed"
                                                                                  for p in n.parents)]
    has_children = {p for n in ref.nodes for p in n.parents}
    sinks = [i for i, n in enumerate(ref.nodes) if n.kind == "model" and i not in has_children]
    for copy in range(copies):
        offset = copy * m
        suffix = "" if copy == 0 else f"_{copy + 1}"
        wire: dict[int, int] = {}
        if copy and rng.random() < 0.35:
            wire[rng.choice(roots)] = rng.randrange(copy) * m + rng.choice(sinks)
        for i, n in enumerate(ref.nodes):
            name = n.name + suffix
            uid = ".".join([*n.uid.split(".")[:2], name, *n.uid.split(".")[3:]])
            schema = n.schema.replace("main_", "") or "main"
            ps = tuple(p + offset for p in n.parents) + ((wire[i],) if i in wire else ())
            mat = n.materialized if n.kind == "model" else n.kind
            nodes.append(Node(uid, n.kind, name, n.file, mat, schema, ps, n.seconds,
                              n.attached + offset if n.attached is not None else None))
            refs.append(ps)
            attached.append(n.attached + offset if n.attached is not None else None)
            seconds = n.seconds if rng.random() < keep else rng.choice(ref.by_kind[n.kind])
            base.append(seconds)
    kinds = [n.resource_type for n in nodes]
    parents = build_parents(refs, kinds, attached)
    project = Project(PACKAGE, nodes, list(ref.sources), False, 512)
    return RefProject(project, parents, base, generations(parents), [k == "test" for k in kinds], kinds)


# ---- runs: one plan per run --------------------------------------------------------------------------------------
class Planner:
    """The plans of one job's runs: every run draws its node-to-node variation from the real one, on top of the
    run's overall pace (the job's ±spread and its 2x-slow runs)."""

    def __init__(self, ref: Reference, rp: RefProject, seed: int, spread: float = 0.15, slow: float = 0.1) -> None:
        self.ref, self.rp, self.seed, self.spread, self.slow = ref, rp, seed, spread, slow
        self.current: int | None = None
        self.plans: dict[int, list[NodeRun]] = {}

    def durations(self, run_id: int) -> list[float]:
        rng = random.Random(f"refmix-run:{self.seed}:{run_id}")
        pace = rng.lognormvariate(0.0, self.spread) * (2.0 if rng.random() < self.slow else 1.0)
        ratios = self.ref.log_ratios
        return [b * self.rp.unit * pace * math.exp(ratios[rng.randrange(len(ratios))]) for b in self.rp.base]

    def schedule(self, outcome: dict[int, str], threads: int) -> list[NodeRun]:
        run_id = self.current if self.current is not None else -1
        durations = self.durations(run_id)
        for i, status in outcome.items():
            if status == "error":
                durations[i] *= self.ref.error_share       # a model error comes early in its query
        plan = dbt_schedule(self.rp.parents, durations, threads, outcome, self.rp.is_test, self.rp.scores)
        self.plans[run_id] = plan
        return plan

    def pick(self, at: float, kind: str, threads: int, rng: random.Random) -> str:
        """A node of `kind` that finishes near fraction `at` of a typical run and that something waits for."""
        plan = dbt_schedule(self.rp.parents, [b * self.rp.unit for b in self.rp.base], threads, {}, self.rp.is_test,
                            self.rp.scores)
        span = max(r.end for r in plan) or 1.0
        waited = {p for ps in self.rp.parents for p in ps}
        candidates = [r for r in plan if self.rp.kinds[r.index] == kind and r.index in waited]
        candidates.sort(key=lambda r: abs(r.end / span - at) + rng.random() * 1e-3)
        return self.rp.project.nodes[candidates[0].index].unique_id


_REGISTERED: dict[int, Planner] = {}      # id(project) -> its planner
_ACTIVE: list[Planner] = []
_ORIGINAL = dbt._cached_schedule


def check_seam() -> None:
    """The emulator internals this module plugs into, so a refactor that moves them fails here, not silently."""
    missing = [name for name in ("_PROJECT_CACHE", "_cached_schedule", "project_for", "command_step")
               if not hasattr(dbt, name)]
    if not hasattr(World, "_new_run"):
        missing.append("World._new_run")
    else:
        # RefWorld._new_run passes every parameter on by position: the parent's must be the ones it knows.
        names = list(inspect.signature(World._new_run).parameters)
        if names != list(inspect.signature(RefWorld._new_run).parameters):
            missing.append(f"World._new_run{tuple(names[1:])} (RefWorld's override takes other parameters)")
    schedule_params = list(inspect.signature(dbt._cached_schedule).parameters) if hasattr(dbt, "_cached_schedule") \
        else []
    if schedule_params and schedule_params != list(inspect.signature(_schedule).parameters):
        missing.append(f"_cached_schedule{tuple(schedule_params)}")
    if missing:
        raise RuntimeError(f"benchmarks.refmix: the emulator no longer has {missing}; "
                           "the plan seam moved (see this module's docstring)")


def _schedule(project: Project, selected: list[int], durations: dict[int, float], threads: int,
              outcome: dict[int, str], key: tuple[Any, ...]) -> list[NodeRun]:
    planner = _REGISTERED.get(id(project))
    if planner is None:
        return _ORIGINAL(project, selected, durations, threads, outcome, key)
    if len(selected) != len(project.nodes):
        raise NotImplementedError("refmix plans whole builds only (no selection, no retry)")
    return planner.schedule(outcome, threads)


@contextlib.contextmanager
def seam() -> Iterator[None]:
    check_seam()
    dbt._cached_schedule = _schedule
    try:
        yield
    finally:
        dbt._cached_schedule = _ORIGINAL


class RefWorld(World):
    """The emulator's World, told which run it is planning; a failed history run fails at a node of its own."""

    def __init__(self, scenario: Any, clock: Any, planner: Planner, threads: int) -> None:
        self.planner, self.threads = planner, threads
        super().__init__(scenario, clock)

    def _new_run(self, job: JobSpec, body: dict[str, Any], commands: tuple[str, ...], outcome: str,
                 generate_docs: bool, timeout_seconds: int, retry_of: int | None = None, attempt: int = 0,
                 created: float | None = None, history: bool = False, only: frozenset[str] | None = None,
                 cause_category: str = "api") -> Any:
        run_id = self._next_run_id
        if history and outcome == "error":
            rng = random.Random(f"refmix-history:{self.planner.seed}:{run_id}")
            uid = self.planner.pick(rng.uniform(0.05, 0.95), rng.choice(["model", "test"]), self.threads, rng)
            job = dataclasses.replace(job, failures=(NodeResult(uid, "error" if uid.startswith("model.") else "fail",
                                                                "", 1.0),), explicit_failures=True)
        self.planner.current = run_id
        try:
            return super()._new_run(job, body, commands, outcome, generate_docs, timeout_seconds, retry_of, attempt,
                                    created, history, only, cause_category)
        finally:
            self.planner.current = None


# ---- the mix ---------------------------------------------------------------------------------------------------
MIX = {"typical": 0.33, "short": 0.15, "long": 0.10, "queued": 0.10, "early_error": 0.10, "partway_error": 0.14,
       "slow_finalise": 0.08}
KIND_NOTES = {
    "typical": "1–15 copies of the real DAG (73–1,100 nodes), a typical run of 10–60 min; 10% end in error (a model "
               "or test at 30–90%)",
    "short": "one copy (73 nodes), 1–5 min",
    "long": "15–60 copies (1,100–4,400 nodes), 1–3 h (the log keeps its last 1,000 lines)",
    "queued": "typical, behind another run of the job (status 1, `blocked_by`) or queued 1–10 min for capacity",
    "early_error": "a source freshness error before `dbt build` (half), or a model failing in the first 5% of the "
                   "build",
    "partway_error": "a model or test failing at 20–80% of the build; its descendants are skipped",
    "slow_finalise": "typical, with a 5–30 s gap between the last step and the run's completion",
}


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def reference_mix(runs: int, seed: int) -> list[Case]:
    """The cases; `job` is the scenario job as a scenario file would say it, `_ref` the generator's own knobs."""
    rng = random.Random(f"refmix:{seed}")
    kinds = [kind for kind, share in MIX.items() for _ in range(round(share * runs))]
    kinds = (kinds + ["typical"] * runs)[:runs]
    rng.shuffle(kinds)
    cases = []
    for index, kind in enumerate(kinds):
        copies, typical = max(1, int(_log_uniform(rng, 1, 16))), _log_uniform(rng, 600, 3600)
        if kind == "short":
            copies, typical = 1, rng.uniform(60, 300)
        elif kind == "long":
            copies, typical = int(_log_uniform(rng, 15, 61)), rng.uniform(3600, 3 * 3600)
        threads = rng.choice([4, 4, 8, 8, 16])
        knobs: dict[str, Any] = {"copies": copies, "typical": round(typical, 1), "project_seed": rng.randrange(10**6),
                                 "plan_seed": rng.randrange(10**6), "failure": None}
        job: dict[str, Any] = {
            "id": 1, "name": f"refmix {kind}", "execute_steps": ["dbt build"],
            "project": {"models": copies * 27, "seed": 1_000_000 + index, "threads": threads,
                        "colour": rng.random() < 0.3},
            "duration": {"spread": 0, "slow": 0},       # the planner varies the runs, not the emulator
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
                knobs["failure"] = [round(rng.uniform(0.0, 0.05), 3), "model"]
        elif kind == "partway_error" or (kind == "typical" and rng.random() < 0.1):
            job["outcome"] = "error"
            low, high = (0.2, 0.8) if kind == "partway_error" else (0.3, 0.9)
            knobs["failure"] = [round(rng.uniform(low, high), 3), rng.choice(["model", "test"])]
        elif kind == "slow_finalise":
            job["finalize_seconds"] = [5, 30]
        cases.append(Case(index, kind, {**job, "_ref": knobs}, blocked))
    return cases


_REFERENCE: Reference | None = None


def reference() -> Reference:
    global _REFERENCE
    if _REFERENCE is None:
        _REFERENCE = load_reference()
    return _REFERENCE


def natural_span(rp: RefProject, threads: int) -> float:
    plan = dbt_schedule(rp.parents, rp.base, threads, {}, rp.is_test, rp.scores)
    return max(r.end for r in plan)


_PREPARED: dict[int, tuple[Planner, dict[str, Any]]] = {}


def prepare(case: Case) -> tuple[Planner, dict[str, Any]]:
    """The case's project (registered with the emulator) and planner, and its scenario job (failures filled in)."""
    found = _PREPARED.get(case.index)
    if found is not None and found[1]["name"] == case.job["name"]:
        return found
    knobs = case.job["_ref"]
    job = {k: v for k, v in case.job.items() if k != "_ref"}
    ref = reference()
    rp = make_project(ref, knobs["copies"], knobs["project_seed"])
    threads = int(job["project"]["threads"])
    rp.unit = knobs["typical"] / natural_span(rp, threads)
    planner = Planner(ref, rp, knobs["plan_seed"])
    if knobs["failure"]:
        at, kind = knobs["failure"]
        uid = planner.pick(at, kind, threads, random.Random(knobs["plan_seed"]))
        job["failures"] = [{"node": uid, "status": "error" if kind == "model" else "fail"}]
    spec = parse_scenario({"jobs": [job]}).jobs[0].project
    assert spec is not None
    dbt._PROJECT_CACHE[spec] = rp.project
    _REGISTERED[id(rp.project)] = planner
    if len(_PREPARED) > 4:
        for old in list(_PREPARED)[:-4]:
            old_planner = _PREPARED.pop(old)[0]
            _REGISTERED.pop(id(old_planner.rp.project), None)
    _PREPARED[case.index] = (planner, job)
    return planner, job


def build_ref(case: Case, dbt_fail_fast: bool = False) -> tuple[World, ManualClock, JobSpec, dict[str, Any]]:
    """As benchmarks.polling.build, on a RefWorld: the job's history, maybe a run ahead of ours, then ours."""
    planner, job_spec = prepare(case)
    clock = ManualClock()
    scenario = parse_scenario({"jobs": [job_spec]})
    with seam():
        world = RefWorld(scenario, clock, planner, int(job_spec["project"]["threads"]))
        job = scenario.jobs[0]
        if case.blocked:
            world.trigger(job, {"cause": "another pipeline"})
            clock.sleep(random.Random(case.index).uniform(60, 900))   # ours comes while that one runs
        triggered = world.trigger(job, trigger_body(job, dbt_fail_fast))
    return world, clock, job, triggered


def plan_matches(world: World, run_id: int, planner: Planner) -> bool | None:
    """The emulator's run_results for the run are the plan's node times (the seam took); None when the run built no
    nodes (a freshness error ends it first)."""
    record = world._runs[run_id]
    step = next((s for s in reversed(record.executed_steps) if s.log.runs), None)
    if step is None:
        return None
    plan = planner.plans.get(run_id)
    if plan is None:
        return False
    served = sorted((r.index, round(r.end - r.start, 6), r.thread, r.status) for r in step.log.runs)
    planned = sorted((r.index, round(r.end - r.start, 6), r.thread, r.status) for r in plan)
    return served == planned
