"""A seeded model of a dbt project and of what one dbt command does with it.

Pure functions and value objects, no clock and no I/O: the world asks for a project (a DAG of seeds, models,
snapshots and data tests), then for the timeline of one command on it — which node starts when, on which thread,
how it ends — and renders logs and artifacts from that timeline. Everything is derived from seeds, so the same
scenario gives the same bytes.

The shape follows a real dbt 1.12 run (tests/fixtures/reference/dbt-core-run): nodes are numbered
"N of M" in dispatch order, several run at once on `threads` threads so their result lines arrive out of order,
durations are heavy-tailed with a long serial chain near the end, and a failure skips only its descendants
(`dbt build` semantics: a model's downstream nodes wait for its tests).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

DBT_VERSION = "1.12.6"
ADAPTER = "snowflake=1.11.1"
TAIL_LINES = 1000
TARGET = "prod"
SAMPLE_PACKAGE = "jaffle_shop"


# ---- values -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    unique_id: str
    resource_type: str  # model | test | seed | snapshot
    name: str
    original_file_path: str
    materialization: str = ""
    schema: str = "analytics"
    parents: tuple[int, ...] = ()       # what it refs (models, seeds, snapshots) or tests (tests)
    weight: float = 0.5                 # natural execution seconds
    attached_to: int | None = None      # tests: the node they test


@dataclass(frozen=True)
class NodeResult:
    """How one node ends: status is success/error/fail/warn/pass/skipped as dbt writes it in run_results.json."""

    unique_id: str
    status: str
    message: str
    execution_time: float
    failures: int | None = None


@dataclass(frozen=True)
class ProjectSpec:
    models: int = 0            # 0: the small jaffle_shop sample project
    seed: int = 7
    threads: int = 4
    packages: bool = False
    colour: bool = False
    name: str = "analytics"


@dataclass
class Project:
    name: str
    nodes: list[Node]
    sources: list[str]
    packages: bool
    macros: int
    by_id: dict[str, int] = field(default_factory=dict)
    build_parents: list[tuple[int, ...]] = field(default_factory=list)
    build_children: list[list[int]] = field(default_factory=list)
    level: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_id = {node.unique_id: i for i, node in enumerate(self.nodes)}
        tests_of: dict[int, list[int]] = {}
        for i, node in enumerate(self.nodes):
            if node.resource_type == "test" and node.attached_to is not None:
                tests_of.setdefault(node.attached_to, []).append(i)
        parents: list[tuple[int, ...]] = []
        for i, node in enumerate(self.nodes):
            extra: list[int] = []
            if node.resource_type != "test":
                # dbt build: a node waits for the tests of what it refs (tests whose parents all come before it).
                for parent in node.parents:
                    extra.extend(t for t in tests_of.get(parent, ())
                                 if all(p < i for p in self.nodes[t].parents))
            parents.append(tuple(node.parents) + tuple(extra))
        self.build_parents = parents
        self.build_children = [[] for _ in self.nodes]
        for i, ps in enumerate(parents):
            for p in ps:
                self.build_children[p].append(i)
        # Depth in the build graph: dbt dispatches ready nodes by this score first.
        indegree = [len(ps) for ps in parents]
        level = [0] * len(self.nodes)
        frontier = [i for i, d in enumerate(indegree) if d == 0]
        while frontier:
            nxt: list[int] = []
            for i in frontier:
                for c in self.build_children[i]:
                    level[c] = max(level[c], level[i] + 1)
                    indegree[c] -= 1
                    if indegree[c] == 0:
                        nxt.append(c)
            frontier = nxt
        self.level = level

    def find(self, name_or_id: str) -> int | None:
        if name_or_id in self.by_id:
            return self.by_id[name_or_id]
        return next((i for i, n in enumerate(self.nodes) if n.name == name_or_id), None)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.resource_type] = counts.get(node.resource_type, 0) + 1
        return counts


# ---- the sample project (what jobs without `project:` run) -------------------------------------------------------
def _sample_project() -> Project:
    p = SAMPLE_PACKAGE

    def model(name: str, path: str, mat: str, parents: tuple[int, ...], weight: float) -> Node:
        return Node(f"model.{p}.{name}", "model", name, path, mat, "analytics", parents, weight)

    def test(name: str, path: str, parents: tuple[int, ...], weight: float) -> Node:
        return Node(f"test.{p}.{name}", "test", name, path, "test", "analytics", parents, weight, parents[0])

    nodes = [
        Node(f"seed.{p}.raw_customers", "seed", "raw_customers", "seeds/raw_customers.csv", "seed", "raw", (), 0.9),
        Node(f"seed.{p}.raw_orders", "seed", "raw_orders", "seeds/raw_orders.csv", "seed", "raw", (), 1.4),
        Node(f"seed.{p}.raw_payments", "seed", "raw_payments", "seeds/raw_payments.csv", "seed", "raw", (), 1.1),
        model("stg_customers", "models/staging/stg_customers.sql", "view", (0,), 0.6),
        model("stg_orders", "models/staging/stg_orders.sql", "view", (1,), 0.7),
        model("stg_payments", "models/staging/stg_payments.sql", "view", (2,), 0.5),
        test("unique_stg_customers_customer_id", "models/staging/schema.yml", (3,), 0.4),
        test("not_null_stg_orders_order_id", "models/staging/schema.yml", (4,), 0.3),
        model("customers", "models/marts/customers.sql", "table", (3, 4, 5), 4.2),
        model("orders", "models/marts/orders.sql", "table", (4, 5), 7.5),
        test("unique_customers_customer_id", "models/marts/schema.yml", (8,), 0.5),
        test("not_null_orders_order_id", "models/marts/schema.yml", (9,), 0.6),
        test("relationships_orders_customer_id__customer_id__ref_customers_", "models/marts/schema.yml", (9, 8),
             0.8),
        test("accepted_values_orders_status__placed__shipped__completed__return_pending__returned",
             "models/marts/schema.yml", (9,), 0.5),
    ]
    return Project(p, nodes, ["raw_customers", "raw_orders", "raw_payments"], False, 533)


SAMPLE = _sample_project()


def sample_node(name_or_id: str) -> Node:
    """A node of the sample project by unique id or short name; a new test node for names it does not know."""
    found = SAMPLE.find(name_or_id)
    if found is not None:
        return SAMPLE.nodes[found]
    return Node(f"test.{SAMPLE_PACKAGE}.{name_or_id}", "test", name_or_id, "models/schema.yml", "test")


# ---- generated projects ----------------------------------------------------------------------------------------
_DOMAINS = ("customers", "orders", "payments", "products", "events", "sessions", "invoices", "shipments",
            "inventory", "campaigns", "subscriptions", "refunds", "accounts", "users", "ledger", "suppliers",
            "stores", "returns", "reviews", "tickets", "leads", "opportunities", "contracts", "pageviews")
_PROJECT_CACHE: dict[ProjectSpec, Project] = {}


def project_for(spec: ProjectSpec | None) -> Project:
    if spec is None or spec.models <= 0:
        return SAMPLE
    cached = _PROJECT_CACHE.get(spec)
    if cached is None:
        cached = _PROJECT_CACHE[spec] = generate_project(spec)
    return cached


def _short_hash(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:10]


def generate_project(spec: ProjectSpec) -> Project:
    """A seeded DAG: seeds → staging → intermediate → marts, snapshots, ~1.6 tests per model, heavy-tailed weights,
    and one dominant serial chain (a huge staging table, its intermediate and marts) that ends the run."""
    rng = random.Random(f"project:{spec.seed}:{spec.models}")
    pkg = spec.name
    total = spec.models
    n_seeds = max(1, total // 15)
    n_snapshots = total // 50
    n_staging = max(1, round(total * 0.35))
    n_inter = max(0, round(total * 0.3)) if total > 2 else 0
    n_marts = max(0, total - n_staging - n_inter)
    nodes: list[Node] = []
    used: dict[str, int] = {}

    def unique(base: str) -> str:
        count = used.get(base, 0)
        used[base] = count + 1
        return base if count == 0 else f"{base}_{count + 1}"

    seeds = []
    for _ in range(n_seeds):
        name = unique(f"raw_{rng.choice(_DOMAINS)}")
        seeds.append(len(nodes))
        nodes.append(Node(f"seed.{pkg}.{name}", "seed", name, f"seeds/{name}.csv", "seed", "raw", (),
                          rng.lognormvariate(math.log(0.8), 0.5)))
    staging: list[int] = []
    for i in range(n_staging):
        domain = _DOMAINS[i % len(_DOMAINS)] if i < len(_DOMAINS) else rng.choice(_DOMAINS)
        name = unique(f"stg_{domain}")
        mat = "view" if rng.random() < 0.8 else "table"
        weight = rng.lognormvariate(math.log(0.4 if mat == "view" else 1.5), 0.8)
        parents: tuple[int, ...] = (rng.choice(seeds),) if rng.random() < 0.3 else ()
        staging.append(len(nodes))
        nodes.append(Node(f"model.{pkg}.{name}", "model", name, f"models/staging/{domain}/{name}.sql", mat,
                          "staging", parents, weight))
    for _ in range(n_snapshots):
        name = unique(f"{rng.choice(_DOMAINS)}_snapshot")
        nodes.append(Node(f"snapshot.{pkg}.{name}", "snapshot", name, f"snapshots/{name}.sql", "snapshot",
                          "snapshots", (), rng.lognormvariate(math.log(2.0), 0.5)))
    # The dominant chain: one huge staging table feeding an intermediate model and a run of marts.
    chain_head = staging[0]
    head = nodes[chain_head]
    nodes[chain_head] = Node(head.unique_id, "model", head.name, head.original_file_path, "table", "staging",
                             head.parents, 0.0)
    inter: list[int] = []
    for i in range(n_inter):
        domain = rng.choice(_DOMAINS)
        name = unique(f"int_{domain}_{rng.choice(('joined', 'enriched', 'pivoted', 'daily', 'sessionized'))}")
        pool = staging + inter
        parents = tuple(sorted(set(rng.sample(pool, k=min(len(pool), rng.randint(1, 3))))))
        if i == 0:
            parents = (chain_head,)
        mat = rng.choice(("view", "view", "table", "ephemeral_like_view"))
        mat = "view" if mat == "ephemeral_like_view" else mat
        inter.append(len(nodes))
        nodes.append(Node(f"model.{pkg}.{name}", "model", name, f"models/intermediate/{name}.sql", mat,
                          "intermediate", parents, rng.lognormvariate(math.log(0.5 if mat == "view" else 2.0), 0.9)))
    marts: list[int] = []
    chain = [chain_head, *inter[:1]]
    for i in range(n_marts):
        domain = rng.choice(_DOMAINS)
        kind = rng.choice(("fct", "dim", "fct", "rpt"))
        # The classic marts keep their jaffle_shop names (so not_null_orders_order_id exists in every project).
        classic = {3: "orders", 4: "customers"}.get(i) if n_marts > 5 else None
        name = unique(classic or f"{kind}_{domain}")
        pool = (inter or staging) + marts[-10:]
        parents = tuple(sorted(set(rng.sample(pool, k=min(len(pool), rng.randint(1, 3))))))
        in_chain = i < 3 and len(chain) >= 1
        if in_chain:
            parents = (chain[-1],)
        roll = rng.random()
        mat = "table" if roll < 0.55 else ("incremental" if roll < 0.85 else "view")
        weight = rng.lognormvariate(math.log({"table": 2.0, "incremental": 3.0, "view": 0.4}[mat]), 1.0)
        marts.append(len(nodes))
        if in_chain:
            chain.append(len(nodes))
        nodes.append(Node(f"model.{pkg}.{name}", "model", name, f"models/marts/{name}.sql", mat, "marts",
                          parents, weight))
    # A few large tables (heavy tail) besides the chain.
    models = [i for i, n in enumerate(nodes) if n.resource_type == "model" and i not in chain]
    for i in rng.sample(models, k=min(len(models), max(1, total // 30))):
        n = nodes[i]
        nodes[i] = Node(n.unique_id, n.resource_type, n.name, n.original_file_path,
                        "incremental" if n.schema == "marts" else "table", n.schema, n.parents,
                        n.weight * rng.uniform(5, 15))
    # The chain takes about three times what the other models keep the threads busy for: after the first minutes
    # one thread works through it while the others are idle, as in a real run.
    others = sum(n.weight for i, n in enumerate(nodes) if i not in chain) * 1.3   # (+ tests)
    shares = [0.5, 0.3, 0.1, 0.06, 0.04][: len(chain)]
    for i, share in zip(chain, shares, strict=False):
        n = nodes[i]
        nodes[i] = Node(n.unique_id, n.resource_type, n.name, n.original_file_path,
                        "incremental" if n.schema == "marts" else "table", n.schema, n.parents,
                        max(1.0, 3.0 * others / max(1, spec.threads) * share))
    # Data tests: not_null / unique on most models, relationships on some marts.
    tests: list[Node] = []
    for i, n in enumerate(list(nodes)):
        if n.resource_type not in ("model", "snapshot", "seed") or n.resource_type == "seed":
            continue
        folder = n.original_file_path.rsplit("/", 1)[0]
        yml = f"{folder}/_{n.schema}__models.yml"
        column = f"{n.name.split('_', 1)[-1].rstrip('s')}_id"
        kinds = ["not_null"] + (["unique"] if rng.random() < 0.7 else [])
        for kind in kinds:
            name = unique(f"{kind}_{n.name}_{column}")
            tests.append(Node(f"test.{pkg}.{name}.{_short_hash(name)}", "test", name, yml, "test", n.schema,
                              (i,), rng.lognormvariate(math.log(0.15), 0.6), i))
        if n.schema == "marts" and len(marts) > 1 and rng.random() < 0.2:
            other = rng.choice([m for m in marts if m != i])
            name = unique(f"relationships_{n.name}_{column}__{column}__ref_{nodes[other].name}_")
            tests.append(Node(f"test.{pkg}.{name}.{_short_hash(name)}", "test", name, yml, "test", n.schema,
                              (i, other), rng.lognormvariate(math.log(0.3), 0.6), i))
    # Keep tests right after their model in index order, so the node list reads like a project.
    ordered: list[Node] = []
    remap: dict[int, int] = {}
    tests_by_model: dict[int, list[Node]] = {}
    for t in tests:
        tests_by_model.setdefault(max(t.parents), []).append(t)
    for i, n in enumerate(nodes):
        remap[i] = len(ordered)
        ordered.append(n)
        ordered.extend(tests_by_model.get(i, ()))
    final: list[Node] = []
    for n in ordered:
        parents = tuple(remap[p] for p in n.parents)
        attached = remap[n.attached_to] if n.attached_to is not None else None
        final.append(Node(n.unique_id, n.resource_type, n.name, n.original_file_path, n.materialization, n.schema,
                          parents, n.weight, attached))
    sources = [f"src_{d}" for d in _DOMAINS[: max(1, min(len(_DOMAINS), total // 12))]]
    return Project(pkg, final, sources, spec.packages, 512 + (318 if spec.packages else 0))


# ---- commands ---------------------------------------------------------------------------------------------------
_VERB_TYPES = {"build": {"seed", "model", "test", "snapshot"}, "run": {"model"}, "test": {"test"},
               "seed": {"seed"}, "snapshot": {"snapshot"}, "retry": {"seed", "model", "test", "snapshot"}}


def verb_of(command: str) -> str:
    words = command.split()
    return words[1] if len(words) > 1 and words[0] == "dbt" else ""


def builds_nodes(command: str) -> bool:
    return verb_of(command) in _VERB_TYPES


def step_name(command: str) -> str:
    return f"Invoke dbt with `{command}`"


@dataclass(frozen=True)
class NodeRun:
    index: int
    number: int
    status: str
    start: float            # seconds after the step began
    end: float
    thread: int
    message: str | None
    failures: int | None
    adapter_message: str


@dataclass
class StepLog:
    """One command step, relative to its start: the lines it prints and when, and its node results."""

    command: str
    duration: float
    offsets: list[float]
    texts: list[str]
    stamped: list[bool]
    threads: list[int]
    runs: list[NodeRun]                  # in completion order, as run_results.json lists them
    elapsed: float = 0.0                 # "Finished running ... in" figure
    fails: bool = False
    nodes_began: float = 0.0
    pending: Callable[[StepLog], None] | None = None   # writes the lines on first use (history is rarely read)
    # `dbt source freshness`: (source name, status pass/warn/error, start, end, thread) per source, for sources.json
    sources: list[tuple[str, str, float, float, int]] = field(default_factory=list)
    fusion: str | None = None            # the Fusion version the step ran on; None for dbt-core
    debug: tuple[list[float], list[str], list[int]] | None = None   # the debug log's lines, built on first use

    def results(self, project: Project) -> tuple[NodeResult, ...]:
        return tuple(NodeResult(project.nodes[r.index].unique_id, r.status, r.message or "",
                                round(r.end - r.start, 4), r.failures) for r in self.runs)

    def ensure(self) -> StepLog:
        if self.pending is not None:
            write, self.pending = self.pending, None
            write(self)
        return self

    def count_at(self, offset: float) -> int:
        self.ensure()
        return bisect_right(self.offsets, offset + 1e-4)   # epoch-sized floats carry ~1e-7 of error


class _Lines:
    def __init__(self, colour: bool, fusion: str | None = None) -> None:
        self.colour = colour and fusion is None
        self.fusion = fusion            # the Fusion version when the step runs on Fusion
        self.offsets: list[float] = []
        self.texts: list[str] = []
        self.stamped: list[bool] = []
        self.threads: list[int] = []

    def add(self, at: float, text: str, thread: int = 0, level: str = "INFO") -> None:
        first, *rest = text.split("\n")
        if self.fusion is not None:
            # dbt Cloud's prefix on a Fusion line: `HH:MM:SS      LEVEL message` (render() adds the time and two
            # spaces); a blank line is the level alone, continuation lines carry no prefix.
            first = f"    {level} {first}" if first else f"    {level}"
        self.offsets.append(at)
        self.texts.append(first)
        self.stamped.append(True)
        self.threads.append(thread)
        for line in rest:  # multi-line error text: continuation lines carry no timestamp
            self.offsets.append(at)
            self.texts.append(line)
            self.stamped.append(False)
            self.threads.append(thread)

    def paint(self, text: str, colour: int) -> str:
        return f"\x1b[{colour}m{text}\x1b[0m" if self.colour else text


def _justify(text: str, bracket: str) -> str:
    return f"{(text + ' ').ljust(80, '.')} [{bracket}]"


def _header(out: _Lines, project: Project, at: float, parse_seconds: float, threads: int | None,
            full: bool = True) -> float:
    if out.fusion is not None:
        out.add(at, f"     Running Fusion version: {out.fusion}")
        out.add(at + min(0.6, parse_seconds / 4), f"dbt-fusion {out.fusion}")
        out.add(at + min(0.7, parse_seconds / 3), "   Loading profiles.yml")
        return at + parse_seconds
    out.add(at, f"Running with dbt={DBT_VERSION}")
    out.add(at + min(0.6, parse_seconds / 4), f"Registered adapter: {ADAPTER}")
    at += parse_seconds
    counts = project.counts()
    parts = [(counts.get("model", 0), "model"), (counts.get("test", 0), "data test"), (counts.get("seed", 0), "seed"),
             (counts.get("snapshot", 0), "snapshot"), (len(project.sources), "source"), (project.macros, "macro")]
    found = ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for n, word in parts if n)
    out.add(at, f"Found {found}")
    if threads is not None:
        out.add(at, "")
        out.add(at, f"Concurrency: {threads} thread{'s' if threads != 1 else ''} (target='{TARGET}')")
        out.add(at, "")
    return at


def _parse_seconds(project: Project) -> float:
    return 1.5 + len(project.nodes) * 0.004


@dataclass(frozen=True)
class RunShape:
    """What varies from run to run of one job (all seeded by the caller)."""

    seed: str
    factor: float = 1.0                          # 2.0 for a slow run
    target: float | None = None                  # seconds the whole step should take; None: natural durations
    failing: frozenset[str] = frozenset()        # unique ids that fail this run
    failures: dict[str, NodeResult] = field(default_factory=dict)   # explicit scenario results by unique id
    threads: int = 4
    jitter_seed: str = ""                        # node-to-node variation, drawn per run (σ 0.15 about each weight)


_SCHEDULES: dict[tuple[Any, ...], list[NodeRun]] = {}


def _cached_schedule(project: Project, selected: list[int], durations: dict[int, float], threads: int,
                     outcome: dict[int, str], key: tuple[Any, ...]) -> list[NodeRun]:
    """schedule(), remembered: the runs of one job share their node durations, so mostly their schedule too."""
    full = (id(project), threads, tuple(sorted(outcome.items())), *key)
    found = _SCHEDULES.get(full)
    if found is None:
        if len(_SCHEDULES) > 64:
            _SCHEDULES.clear()
        found = _SCHEDULES[full] = schedule(project, selected, durations, threads, outcome)
    return found


def schedule(project: Project, selected: list[int], durations: dict[int, float], threads: int,
             outcome: dict[int, str]) -> list[NodeRun]:
    """List scheduling on `threads` threads in dbt's dispatch order; a failed or skipped node skips its children.

    Returns the node runs in completion order. Times are in natural seconds from the first dispatch.
    """
    chosen = set(selected)
    parents = {i: [p for p in project.build_parents[i] if p in chosen] for i in selected}
    children: dict[int, list[int]] = {i: [] for i in selected}
    for i in selected:
        for p in parents[i]:
            children[p].append(i)
    pending = {i: len(parents[i]) for i in selected}
    ready: list[tuple[int, int]] = [(project.level[i], i) for i in selected if pending[i] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int, int, int]] = []       # (end, number, index, thread)
    free = list(range(1, threads + 1))
    heapq.heapify(free)
    bad: set[int] = set()
    number = 0
    now = 0.0
    done: list[NodeRun] = []
    started: dict[int, tuple[int, float, int]] = {}

    def release(i: int) -> None:
        for c in children[i]:
            pending[c] -= 1
            if pending[c] == 0:
                heapq.heappush(ready, (project.level[c], c))

    while ready or running:
        while ready and free:
            _, i = heapq.heappop(ready)
            number += 1
            if any(p in bad for p in parents[i]):
                bad.add(i)
                done.append(NodeRun(i, number, "skipped", now, now, free[0], None, None, ""))
                release(i)
                continue
            thread = heapq.heappop(free)
            started[i] = (number, now, thread)
            heapq.heappush(running, (now + durations[i], number, i, thread))
        if not running:
            continue
        end, num, i, thread = heapq.heappop(running)
        now = end
        heapq.heappush(free, thread)
        status = outcome.get(i, "pass" if project.nodes[i].resource_type == "test" else "success")
        if status in ("error", "fail"):
            bad.add(i)
        _, begin, _ = started[i]
        done.append(NodeRun(i, num, status, begin, end, thread, None, None, ""))
        release(i)
    return done


def _selection(project: Project, command: str, only: frozenset[str] | None) -> list[int]:
    wanted = _VERB_TYPES.get(verb_of(command), set())
    chosen = [i for i, n in enumerate(project.nodes) if n.resource_type in wanted]
    if only is not None:
        chosen = [i for i in chosen if project.nodes[i].unique_id in only]
    return chosen


def _node_jitter(seed: str, selected: list[int], project: Project, factor: float) -> dict[int, float]:
    rng = random.Random(f"durations:{seed}")
    return {i: project.nodes[i].weight * factor * rng.lognormvariate(0.0, 0.15) for i in selected}


def pick_failure(project: Project, command: str, seed: str, at: float, node_type: str,
                 threads: int, only: frozenset[str] | None = None) -> str | None:
    """The node of `node_type` that would finish closest to fraction `at` of the command's run (`seed`: the
    jitter seed of the run's durations)."""
    selected = _selection(project, command, only)
    runs = _cached_schedule(project, selected, _node_jitter(seed, selected, project, 1.0), threads, {},
                            (seed, command, only, 1.0))
    span = max((r.end for r in runs), default=0.0) or 1.0
    candidates = [r for r in runs if project.nodes[r.index].resource_type == node_type]
    if not candidates:
        return None
    # Prefer a node something waits for (a failure that skips nothing is rare in a real project).
    chosen = set(selected)
    waited_on = [r for r in candidates if any(c in chosen and project.nodes[c].resource_type != "test"
                                              for c in project.build_children[r.index])]
    candidates = waited_on or candidates
    best = min(candidates, key=lambda r: (abs(r.end / span - at), r.number))
    return project.nodes[best.index].unique_id


def fails_fast(command: str) -> bool:
    """dbt's own --fail-fast (or -x) is on the command line."""
    words = command.split()
    return "--fail-fast" in words or "-x" in words


def without_fail_fast(command: str) -> str:
    """The command as it selects and times nodes: --fail-fast changes when dbt stops, not what it builds."""
    return " ".join(word for word in command.split() if word not in ("--fail-fast", "-x"))


FAIL_FAST_SKIP = "Skipping due to fail_fast"     # dbt-core's message for the nodes --fail-fast never ran


def stopped_at_first_failure(runs: list[NodeRun]) -> list[NodeRun]:
    """The node runs as dbt's --fail-fast leaves them: at the first error or test failure dbt kills the queries in
    flight and starts nothing more. Every node without a result by then — interrupted or never started — is reported
    skipped with FAIL_FAST_SKIP as its message (dbt-core >= 1.7, runnable.execute_nodes): they are in
    run_results.json, so `dbt retry` runs them, and the console's "Completed with N errors" counts them while their
    message goes to the debug log only. Times in natural seconds, as schedule() returns them."""
    first = min((r.end for r in runs if r.status in ("error", "fail")), default=None)
    if first is None:
        return runs
    kept = [r for r in runs if r.end <= first]
    interrupted = [replace(r, status="skipped", end=first, message=FAIL_FAST_SKIP)
                   for r in runs if r.start < first < r.end]
    never = [replace(r, status="skipped", start=first, end=first, message=FAIL_FAST_SKIP)
             for r in runs if r.start >= first and r.end > first]
    return kept + interrupted + never


def _default_message(project: Project, node: Node, status: str, failures: int) -> str:
    if status in ("fail", "warn"):
        word = "fail" if status == "fail" else "warn"
        return f"Got {failures} result{'s' if failures != 1 else ''}, configured to {word} if != 0"
    return (f"Database Error in model {node.name} ({node.original_file_path})\n"
            "  000904 (42000): SQL compilation error: error line 29 at position 4\n"
            "  invalid identifier 'ORDERS.DISCOUNT_CODE'")


def _adapter_message(node: Node, rng: random.Random) -> str:
    if node.resource_type == "seed":
        return f"INSERT {rng.randint(50, 5000)}"
    if node.resource_type == "test":
        return "SUCCESS 1"
    return "SUCCESS 1"


def command_step(project: Project, command: str, shape: RunShape, *, only: frozenset[str] | None = None,
                 warnings: dict[str, NodeResult] | None = None, colour: bool = False,
                 fails: bool = False, run_id: int = 0, fusion: str | None = None) -> StepLog:
    """The whole timeline of one dbt command: header, nodes on threads, closing summary. `fusion`: the Fusion
    version the step runs on (Fusion's words instead of dbt-core's)."""
    verb = verb_of(command)
    out = _Lines(colour, fusion)
    if verb == "deps":
        step = _deps_step(command, out, shape)
        step.fusion = fusion
        return step
    if verb == "source" and "freshness" in command:
        step = _freshness_step(project, command, out, shape, fails)
        step.fusion = fusion
        return step
    parse = _parse_seconds(project)
    if verb in ("docs", "parse", "compile", "ls", "list", "debug", "clean", "run-operation", "") or \
            verb not in _VERB_TYPES:
        threads = shape.threads if verb in ("docs", "compile") else None
        at = _header(out, project, 0.0, parse, threads)
        end = at + (shape.target - at if shape.target and shape.target > at else 1.0 + len(project.nodes) * 0.01)
        runs: list[NodeRun] = []
        if verb == "docs":
            catalog = end - 0.5 if end - 0.5 > at else at
            runs = _compiled_everything(project, shape, at, catalog)
            out.add(catalog, "Building catalog")
            out.add(end, f"Catalog written to /tmp/jobs/{run_id}/target/catalog.json")
        elif fails:
            if fusion is not None:
                out.add(end, "[error] [JinjaError (dbt1501)]: Compilation Error in model orders "
                             "(models/marts/orders.sql)", level="ERROR")
            else:
                out.add(end, "Encountered an error:")
                out.add(end, "Compilation Error in model orders (models/marts/orders.sql)")
        if fusion is not None:
            out.add(end, "")
            out.add(end, f"{' Execution Summary ':=^60}")
            word = "with 1 error" if fails else "successfully"
            out.add(end, f"Finished '{' '.join(command.split()[1:3]) or 'dbt'}' {word} for target '{TARGET}' "
                         f"[{_fusion_total(end)}]")
        elapsed = (max((r.end for r in runs), default=at) - at) if runs else 0.0
        return StepLog(command, end, out.offsets, out.texts, out.stamped, out.threads, runs, elapsed, fails, at,
                       fusion=fusion)

    selected = _selection(project, command, only)
    outcome: dict[int, str] = {}
    explicit: dict[int, NodeResult] = {}
    for uid, result in {**(warnings or {}), **(shape.failures if fails else {})}.items():
        index = project.find(uid)
        if index is not None:
            outcome[index] = result.status
            explicit[index] = result
    if fails:
        for uid in shape.failing:
            index = project.find(uid)
            if index is not None and index not in explicit:
                outcome[index] = "error" if project.nodes[index].resource_type == "model" else "fail"
    jitter = shape.jitter_seed or shape.seed
    clean_durations = _node_jitter(jitter, selected, project, 1.0)
    durations = dict(clean_durations)
    for index, status in outcome.items():
        if status == "error" and index in durations:
            durations[index] *= 0.1        # an error comes quickly
    header_end = _header(out, project, 0.0, parse, shape.threads)
    closing = 0.4
    key = (jitter, command, only)
    runs = _cached_schedule(project, selected, durations, shape.threads, outcome, key)
    if fails_fast(command):
        runs = stopped_at_first_failure(runs)
    natural = max((r.end for r in runs), default=0.0)
    scale = shape.factor       # list scheduling is scale-invariant: durations x f give times x f
    if shape.target is not None:
        # Fit a run without failures into the target; a failing run (skipped descendants) ends sooner.
        clean = natural if not outcome else max(
            (r.end for r in _cached_schedule(project, selected, clean_durations, shape.threads, {}, key)),
            default=0.0)
        header_end = min(header_end, shape.target * 0.15)
        closing = min(closing, shape.target * 0.02)
        scale = max(1e-6, shape.target - header_end - closing) / clean if clean > 0 else 1.0
    begin = header_end + 0.2 * min(scale, 1.0)
    messages_rng = random.Random(f"messages:{shape.seed}")
    finished: list[NodeRun] = []
    for r in runs:
        node = project.nodes[r.index]
        message: str | None
        failures: int | None = None
        adapter = ""
        if r.status == "skipped":
            message = r.message        # None, or FAIL_FAST_SKIP for a node --fail-fast stopped
        elif r.index in explicit:
            result = explicit[r.index]
            failures = result.failures
            if node.resource_type == "test" and failures is None:
                failures = 1
            message = result.message or _default_message(project, node, r.status, failures or 0)
            adapter = "ERROR" if r.status == "error" else "SUCCESS 1"
        elif r.status in ("fail", "warn"):
            failures = messages_rng.randint(1, 40)
            message = _default_message(project, node, r.status, failures)
        elif r.status == "error":
            message = _default_message(project, node, r.status, 0)
            adapter = "ERROR"
        else:
            adapter = _adapter_message(node, messages_rng)
            message = None if node.resource_type == "test" else adapter
            failures = 0 if node.resource_type == "test" else None
        if node.resource_type == "test" and r.status != "skipped" and failures is None:
            failures = 1 if r.status in ("fail", "warn") else 0
        finished.append(NodeRun(r.index, r.number, r.status, begin + r.start * scale, begin + r.end * scale,
                                r.thread, message, failures, adapter))
    last = max((r.end for r in finished), default=begin)
    end = last + closing
    elapsed = last - header_end
    by_number = sorted(finished, key=lambda r: (r.end, r.number))
    failed = any(r.status in ("error", "fail") for r in finished)

    def write(step: StepLog) -> None:
        if fusion is not None:
            _write_fusion_nodes(out, project, [r for r in finished if r.message != FAIL_FAST_SKIP], end, elapsed,
                                verb)
        else:
            _write_nodes(out, project, selected, finished, end, elapsed, verb)
        step.offsets, step.texts, step.stamped, step.threads = out.offsets, out.texts, out.stamped, out.threads

    return StepLog(command, end, [], [], [], [], by_number, elapsed, failed or fails, begin, write, fusion=fusion)


# ---- Fusion (dbt v2.0): its console words as dbt Cloud shows them -------------------------------------------------
# Sources: dbt-labs/dbt-fusion crates/dbt-common/src/tracing/formatters/ (node.rs, layout.rs, invocation.rs,
# duration.rs); tests/fixtures/fusion/README.md.
FUSION_VERSION = "2.0.0-preview.176"
_FUSION_WORDS = {"success": "Succeeded", "pass": "Passed", "warn": "Warned", "fail": "Failed", "error": "Failed",
                 "skipped": "Skipped", "reused": "Reused", "cancelled": "Cancelled"}


def fusion_preview(version: str) -> int:
    """N of 2.0.0-preview.N (a large number for other 2.x versions: the newest shapes)."""
    match = re.search(r"preview(?:-nightly)?\.(\d+)", version)
    return int(match.group(1)) if match else 10_000


def _fusion_duration(seconds: float) -> str:
    """duration.rs format_duration_fixed_width: 7 characters."""
    if seconds <= 0:
        return "-------"
    if seconds < 60:
        return f"{seconds:6.2f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60:>3}m{whole % 60:>2}s"
    if whole < 86400:
        return f"{whole // 3600:>3}h{whole % 3600 // 60:>2}m"
    return "   >24h"


def _fusion_total(seconds: float) -> str:
    """duration.rs format_duration_for_summary: 850ms, 4.2s, 1m 23s, 1h 5m 3s."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, minutes, secs = whole // 3600, whole % 3600 // 60, whole % 60
    parts = ([f"{hours}h"] if hours else []) + ([f"{minutes}m"] if minutes else []) + ([f"{secs}s"] if secs else [])
    return " ".join(parts)


def _fusion_line(node: Node, status: str, seconds: float, position: int) -> str:
    """node.rs format_node_processed_end: `{ACTION:>10} [{DUR:7}] {TYPE:<5} {schema.}{alias}{suffix}`."""
    action = _FUSION_WORDS.get(status, "Finished")
    kind = node.resource_type
    if kind == "test":
        target = node.name
        suffix = "" if status == "pass" else f" ({node.original_file_path}:{8 + position % 40}:15)"
    else:
        target = f"{node.schema}.{node.name}"
        suffix = f" ({node.materialization or kind})"
    return f"{action:>10} [{_fusion_duration(0.0 if status == 'skipped' else seconds)}] {kind:<5} {target}{suffix}"


def _write_fusion_nodes(out: _Lines, project: Project, finished: list[NodeRun], end: float, elapsed: float,
                        verb: str) -> None:
    """Fusion prints one line per node when it ends (no `N of M`, no START on the console), skipped nodes
    included, then Test Failures, Errors and Warnings and the Execution Summary (tui_layer.rs)."""
    events: list[tuple[float, int, str, int]] = []
    for r in finished:
        node = project.nodes[r.index]
        moment = r.start if r.status == "skipped" else r.end
        events.append((moment, r.number, _fusion_line(node, r.status, r.end - r.start, r.index), r.thread))
    events.sort(key=lambda e: (e[0], e[1]))
    for moment, _, text, thread in events:
        out.add(moment, text, thread)
    failed_tests = [r for r in finished if r.status == "fail"]
    errors = [r for r in finished if r.status == "error"]
    warned = [r for r in finished if r.status == "warn"]
    if failed_tests:
        out.add(end, "")
        out.add(end, f"{' Test Failures ':=^60}")
        for r in sorted(failed_tests, key=lambda r: r.end):
            out.add(end, f"Test failed ({r.failures or 1} failed row(s)): {project.nodes[r.index].name}")
    if errors:
        out.add(end, "", level="ERROR")
        out.add(end, f"{' Errors and Warnings ':=^60}", level="ERROR")
        for r in sorted(errors, key=lambda r: r.end):
            node = project.nodes[r.index]
            detail = (r.message or "").split("\n")[1:] or ["  Sql Execution Error: SQL compilation error"]
            text = (f"[error] [DbSyntaxInvalid (dbt1302)]: Database Error in model {node.name} "
                    f"(target/run/{project.name}/{node.original_file_path})\n" + "\n".join(detail))
            out.add(end, text, level="ERROR")
    out.add(end, "")
    out.add(end, f"{' Execution Summary ':=^60}")
    n_errors, n_warns = len(errors) + len(failed_tests), len(warned)
    words = [f"{n_warns} warning{'s' if n_warns != 1 else ''}"] if n_warns else []
    words += [f"{n_errors} error{'s' if n_errors != 1 else ''}"] if n_errors else []
    outcome = f"with {' and '.join(words)}" if words else "successfully"
    out.add(end, f"Finished '{verb}' {outcome} for target '{TARGET}' [{_fusion_total(elapsed)}]")
    counts: dict[str, int] = {}
    for r in finished:
        kind = project.nodes[r.index].resource_type
        counts[kind] = counts.get(kind, 0) + 1
    plural = {"model": "models", "test": "tests", "snapshot": "snapshots", "seed": "seeds"}
    out.add(end, "Processed: " + " | ".join(f"{counts[k]} {k if counts[k] == 1 else plural[k]}"
                                           for k in ("model", "test", "snapshot", "seed") if counts.get(k)))
    buckets = {"success": sum(1 for r in finished if r.status in ("success", "pass")), "warn": n_warns,
               "error": n_errors, "skipped": sum(1 for r in finished if r.status == "skipped")}
    out.add(end, f"Summary: {len(finished)} total" + "".join(f" | {n} {name}" for name, n in buckets.items() if n))


def fusion_run_results(results: dict[str, Any], version: str) -> dict[str, Any]:
    """Fusion's run_results.json from dbt-core's shape, by version (run_results.rs): before preview.90 error and
    skipped results are left out (dbt-fusion #1130); up to preview.202 keys that are None are not written — no
    `message`, `compiled`, `compiled_code`, `relation_name`, `batch_results`, and `failures` only on tests
    (#1437, dbt-core #14554); timing's compile and execute share the node's whole span; thread ids are `Thread-N`;
    adapter_response is {} before preview.208."""
    preview = fusion_preview(version)
    shaped: list[dict[str, Any]] = []
    defaults = {"success": "Succeeded", "error": "Error", "warn": "Warn", "pass": "Pass", "fail": "Error",
                "skipped": "Skipped"}
    for result in results["results"]:
        status = result["status"]
        if preview < 90 and status in ("error", "skipped"):
            continue
        timing = result["timing"]
        moment = results["metadata"]["generated_at"]
        span = ({"started_at": timing[0]["started_at"], "completed_at": timing[-1]["completed_at"]} if timing else
                {"started_at": moment, "completed_at": moment})
        item: dict[str, Any] = {
            "status": status,
            "timing": [{"name": "compile", **span}, {"name": "execute", **span}],
            "thread_id": result["thread_id"].replace(" (worker)", ""),
            "execution_time": result["execution_time"],
            "adapter_response": {} if preview < 208 else result["adapter_response"],
            "unique_id": result["unique_id"],
        }
        is_test = result["unique_id"].startswith(("test.", "unit_test."))
        if preview <= 202:
            if is_test and status != "skipped":
                item["failures"] = result["failures"] or 0
        else:
            item.update(message=result["message"] or defaults.get(status, ""), failures=result["failures"]
                        if is_test else None, compiled=None,
                        compiled_code=result["compiled_code"] if preview >= 209 else None,
                        relation_name=result["relation_name"], batch_results=None)
        shaped.append(item)
    digest = results["metadata"]["invocation_id"].replace("-", "")
    return {
        "metadata": {**results["metadata"], "dbt_version": version,
                     "invocation_id": f"019d{digest[4:8]}-{digest[8:12]}-7{digest[13:16]}-{digest[16:20]}-"
                                      f"{digest[20:32]}"},
        "results": shaped,
        "elapsed_time": results["elapsed_time"],
        "args": {"command": results["args"]["which"], **results["args"]},
    }


def _compiled_everything(project: Project, shape: RunShape, begin: float, until: float) -> list[NodeRun]:
    """What `dbt docs generate` puts in run_results.json: every node of the project compiled, each `success`
    (dbt-core #3171, #4448), on the step's threads, in completion order."""
    rng = random.Random(f"compile:{shape.seed}")
    threads = max(1, shape.threads)
    free = [begin] * threads
    span = max(0.01, until - begin)
    each = span * threads / max(1, len(project.nodes))
    runs: list[NodeRun] = []
    for number in range(1, len(project.nodes) + 1):
        slot = min(range(threads), key=lambda k: (free[k], k))
        start = free[slot]
        end = min(until, start + each * rng.uniform(0.5, 1.0))
        free[slot] = end
        runs.append(NodeRun(number - 1, number, "success", start, end,
                            slot + 1, None, None, ""))
    runs.sort(key=lambda r: (r.end, r.number))
    return runs


def _write_nodes(out: _Lines, project: Project, selected: list[int], finished: list[NodeRun], end: float,
                 elapsed: float, verb: str) -> None:
    total = len(selected)
    events: list[tuple[float, int, int, str, int]] = []      # (moment, order, number, text, thread)
    for r in finished:
        node = project.nodes[r.index]
        if r.message == FAIL_FAST_SKIP:
            # dbt prints no result for a node --fail-fast stopped: a START if it had begun, then dbt cancels its
            # query (runnable._cancel_connections); one never started has no line at all.
            if r.start < r.end:
                events.append((r.start, 0, r.number,
                               _justify(f"{r.number} of {total} START {_describe(node)}", "RUN"), r.thread))
                events.append((r.end, 3, r.number, _justify(f"CANCEL query {node.unique_id}",
                                                            out.paint("CANCEL", 31)), r.thread))
            continue
        if r.status == "skipped":
            kind = "test" if node.resource_type == "test" else "relation"
            label = node.name if kind == "test" else f"{node.schema}.{node.name}"
            events.append((r.start, 1, r.number,
                           _justify(f"{r.number} of {total} SKIP {kind} {label}", out.paint("SKIP", 33)), r.thread))
            continue
        events.append((r.start, 0, r.number,
                       _justify(f"{r.number} of {total} START {_describe(node)}", "RUN"), r.thread))
        events.append((r.end, 2, r.number, _result_line(out, node, r, total), r.thread))
    # At one instant results print before the STARTs they make room for; STARTs and SKIPs go by number.
    events.sort(key=lambda e: (e[0], 0 if e[1] == 2 else 1, e[2]))
    for moment, _, _, text, thread in events:
        out.add(moment, text, thread)
    _closing(out, project, selected, finished, end, elapsed, verb)


def _describe(node: Node) -> str:
    if node.resource_type == "model":
        return f"sql {node.materialization or 'table'} model {node.schema}.{node.name}"
    if node.resource_type == "seed":
        return f"seed file {node.schema}.{node.name}"
    if node.resource_type == "snapshot":
        return f"snapshot {node.schema}.{node.name}"
    return f"test {node.name}"


def _result_line(out: _Lines, node: Node, r: NodeRun, total: int) -> str:
    seconds = f" in {r.end - r.start:.2f}s"
    prefix = f"{r.number} of {total}"
    if node.resource_type == "test":
        if r.status == "pass":
            return _justify(f"{prefix} PASS {node.name}", out.paint("PASS", 32) + seconds)
        if r.status in ("warn", "fail"):
            word = r.status.upper()
            return _justify(f"{prefix} {word} {r.failures} {node.name}",
                            out.paint(f"{word} {r.failures}", 33 if word == "WARN" else 31) + seconds)
        return _justify(f"{prefix} ERROR {node.name}", out.paint("ERROR", 31) + seconds)
    if r.status == "error":
        return _justify(f"{prefix} ERROR creating {_describe(node)}", out.paint("ERROR", 31) + seconds)
    verb = {"model": "OK created", "seed": "OK loaded", "snapshot": "OK snapshotted"}[node.resource_type]
    what = _describe(node) if node.resource_type != "snapshot" else f"{node.schema}.{node.name}"
    return _justify(f"{prefix} {verb} {what}", out.paint(r.adapter_message or "OK", 32) + seconds)


_KIND_ORDER = ("incremental", "seed", "snapshot", "table", "test", "view")


def _finished_kinds(project: Project, selected: list[int]) -> str:
    counts: dict[str, int] = {}
    for i in selected:
        node = project.nodes[i]
        key = node.materialization if node.resource_type == "model" else node.resource_type
        counts[key] = counts.get(key, 0) + 1
    words = {"incremental": "incremental model", "table": "table model", "view": "view model", "test": "data test",
             "seed": "seed", "snapshot": "snapshot"}
    parts = []
    for key in sorted(counts, key=lambda k: (_KIND_ORDER.index(k) if k in _KIND_ORDER else 99, k)):
        n = counts[key]
        word = words.get(key, f"{key} model")
        parts.append(f"{n} {word}{'s' if n != 1 else ''}")
    return ", ".join(parts)


def _took(seconds: float) -> str:
    whole = int(seconds)
    return (f"{whole // 3600} hours {whole % 3600 // 60} minutes and {seconds - whole // 60 * 60:.2f} seconds "
            f"({seconds:.2f}s)")


def _closing(out: _Lines, project: Project, selected: list[int], runs: list[NodeRun], at: float, elapsed: float,
             verb: str) -> None:
    out.add(at, "")
    out.add(at, f"Finished running {_finished_kinds(project, selected)} in {_took(elapsed)}.")
    out.add(at, "")
    errors = sorted((r for r in runs if r.status in ("error", "fail")), key=lambda r: r.end)
    warns = sorted((r for r in runs if r.status == "warn"), key=lambda r: r.end)
    # dbt counts a skip with a message (--fail-fast's) as an error here, but prints its message at debug level only.
    counted = len(errors) + sum(1 for r in runs if r.status == "skipped" and r.message == FAIL_FAST_SKIP)
    if not errors and not warns:
        out.add(at, out.paint("Completed successfully", 32))
    elif not errors:
        out.add(at, out.paint(f"Completed with {len(warns)} warning{'s' if len(warns) != 1 else ''}:", 33))
    else:
        out.add(at, out.paint(f"Completed with {counted} error{'s' if counted != 1 else ''}, 0 partial "
                              f"successes, and {len(warns)} warning{'s' if len(warns) != 1 else ''}:", 31))
    if errors or warns:
        out.add(at, "")
    pkg = project.name
    for r in errors + warns:
        node = project.nodes[r.index]
        tag = out.paint("ERROR", 31) if r in errors else out.paint("WARNING", 33)
        out.add(at, f"[{tag}]: in {node.resource_type} {node.name} ({node.original_file_path})")
        message = r.message or ""
        if r in errors:
            first, *rest = message.split("\n")
            out.add(at, "  " + first + "".join("\n" + line for line in rest))
        else:
            out.add(at, f"[{tag}]: {message}")
        out.add(at, "")
        compiled = (f"{node.original_file_path}/{node.name}.sql" if node.resource_type == "test"
                    else node.original_file_path)
        out.add(at, f"  compiled code at target/compiled/{pkg}/{compiled}")
        out.add(at, "")
    passed = sum(1 for r in runs if r.status in ("success", "pass"))
    skipped = sum(1 for r in runs if r.status == "skipped")
    out.add(at, f"Done. PASS={passed} WARN={len(warns)} ERROR={len(errors)} SKIP={skipped} NO-OP=0 REUSED=0 "
                f"TOTAL={len(runs)}")


def _deps_step(command: str, out: _Lines, shape: RunShape) -> StepLog:
    end = shape.target if shape.target else 4.0
    if out.fusion is not None:
        out.add(0.0, f"     Running Fusion version: {out.fusion}")
        out.add(end * 0.3, "Installing packages")
        out.add(end * 0.9, " Installed 1 package")
        return StepLog(command, end, out.offsets, out.texts, out.stamped, out.threads, [], 0.0, False, 0.0)
    out.add(0.0, f"Running with dbt={DBT_VERSION}")
    out.add(end * 0.3, "Updating lock file in file path: /tmp/jobs/target/package-lock.yml")
    out.add(end * 0.4, "Installing dbt-labs/dbt_utils")
    out.add(end * 0.9, "Installed from version 1.3.0")
    out.add(end * 0.9, "Up to date!")
    return StepLog(command, end, out.offsets, out.texts, out.stamped, out.threads, [], 0.0, False, 0.0)


def _freshness_step(project: Project, command: str, out: _Lines, shape: RunShape, fails: bool) -> StepLog:
    header_end = _header(out, project, 0.0, _parse_seconds(project), shape.threads)
    rng = random.Random(f"freshness:{shape.seed}")
    sources = project.sources
    total = len(sources)
    stale = (rng.randrange(total) if fails and total else -1)
    warn = rng.randrange(total) if total > 2 and rng.random() < 0.5 else -1
    per = [rng.uniform(0.5, 3.0) for _ in sources]
    span = max(per, default=0.0)
    if shape.target:
        header_end = min(header_end, shape.target * 0.5)
        factor = max(0.01, shape.target - header_end - 0.2) / (span * max(1, math.ceil(total / shape.threads)))
    else:
        factor = 1.0
    free = [header_end] * shape.threads
    events: list[tuple[float, int, str]] = []
    checked: list[tuple[str, str, float, float, int]] = []
    for n, (source, seconds) in enumerate(zip(sources, per, strict=True), start=1):
        slot = min(range(len(free)), key=lambda k: (free[k], k))
        start = free[slot]
        end = start + seconds * factor
        free[slot] = end
        timing = f" in {end - start:.2f}s"
        n_index = n - 1
        if n_index == stale:
            label, colour = "ERROR STALE", 31
        elif n_index == warn:
            label, colour = "WARN", 33
        else:
            label, colour = "PASS", 32
        if out.fusion is not None:
            # format_freshness_result: Passed / Warned / Stale, and how old the data is.
            word, age = {"ERROR STALE": ("Stale", "1d 6h"), "WARN": ("Warned", "13h 2m")}.get(label, ("Passed",
                                                                                                    "30m"))
            events.append((end, n * 2 + 1, f"{word:>10} [{_fusion_duration(end - start)}] source raw.{source} "
                                           f"(last updated {age} ago)"))
        else:
            events.append((start, n * 2, _justify(f"{n} of {total} START freshness of raw.{source}", "RUN")))
            events.append((end, n * 2 + 1, _justify(f"{n} of {total} {label} freshness of raw.{source}",
                                                    out.paint(label, colour) + timing)))
        checked.append((source, {"ERROR STALE": "error", "WARN": "warn"}.get(label, "pass"), start, end, slot + 1))
    events.sort()
    for moment, _, text in events:
        out.add(moment, text)
    last = max((e[0] for e in events), default=header_end)
    end = last + 0.2
    checked.sort(key=lambda c: (c[3], c[0]))
    if out.fusion is not None:
        out.add(end, "")
        out.add(end, f"{' Execution Summary ':=^60}")
        outcome = "with 1 error" if stale >= 0 else "successfully"
        out.add(end, f"Finished 'source freshness' {outcome} for target '{TARGET}' [{_fusion_total(last)}]")
        return StepLog(command, end, out.offsets, out.texts, out.stamped, out.threads, [], last - header_end,
                       stale >= 0, header_end, sources=checked)
    out.add(end, "")
    out.add(end, f"Finished running {total} source{'s' if total != 1 else ''} in {_took(last - header_end)}.")
    out.add(end, "")
    if stale >= 0:
        out.add(end, f"[{out.paint('ERROR', 31)}]: in source {sources[stale]} (models/staging/_sources.yml)")
        out.add(end, "  Status: error")
    out.add(end, "Done.")
    return StepLog(command, end, out.offsets, out.texts, out.stamped, out.threads, [], last - header_end,
                   stale >= 0, header_end, sources=checked)


def placeholder(command: str) -> StepLog:
    """A step that never runs (it comes after a failing one): no lines, no duration."""
    return StepLog(command, 0.0, [], [], [], [], [])


def setup_step(name: str, duration: float, git_sha: str, git_branch: str) -> StepLog:
    out = _Lines(False)
    if name.startswith("Clone"):
        out.add(0.0, "Cloning into '/tmp/jobs/repo'...")
        out.add(duration, f"Checked out at {git_sha[:8]} ({git_branch})")
    else:
        out.add(0.0, "Creating profile from connection Snowflake")
        out.add(duration, "Profile written to /tmp/jobs/.dbt/profiles.yml")
    return StepLog(name, duration, out.offsets, out.texts, out.stamped, out.threads, [], 0.0, False, 0.0)


# ---- rendering ----------------------------------------------------------------------------------------------------
def _hms(moment: float) -> str:
    whole = int(moment) % 86400
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def render(step: StepLog, began: float, upto: float, colour: bool, tail: int | None = TAIL_LINES) -> str:
    """The step's log as printed up to `upto` seconds after it began (absolute time `began`), last `tail` lines."""
    count = step.count_at(upto)
    first = 0 if tail is None else max(0, count - tail)
    reset = "\x1b[0m" if colour else ""
    lines = []
    for k in range(first, count):
        if step.stamped[k]:
            lines.append(f"{reset}{_hms(began + step.offsets[k])}  {step.texts[k]}")
        else:
            lines.append(step.texts[k])
    return "\n".join(lines) + "\n" if lines else ""


_LINE, _RAW, _BANNER, _DONE = 1, 0, 2, 3     # kinds of debug lines: stamped, continuation, banner, "Command ..."


def _level(text: str) -> str:
    """The level dbt gives a console line in dbt.log: errors and failures [error], warnings [warn ]."""
    plain = text.replace("\x1b[31m", "").replace("\x1b[33m", "").replace("\x1b[32m", "").replace("\x1b[0m", "")
    if plain.startswith("[ERROR]") or re.search(r"^\d+ of \d+ (ERROR|FAIL \d+) ", plain):
        return "error"
    if plain.startswith("[WARNING]") or re.search(r"^\d+ of \d+ WARN ", plain):
        return "warn "
    return "info "


def debug_timeline(step: StepLog, project: Project, run_id: int) -> tuple[list[float], list[str], list[int]]:
    """dbt.log of the step at debug level, as dbt-core writes it (reference: build-error-debug.log): the invocation
    banner, `running dbt with arguments`, every console line with its level and thread, and per node the
    `Began running node` / compiling / executing / SQL / `SQL status` / `Finished running node` lines; at the end
    `Resource report` and `Command ... succeeded|failed at ... after N seconds`. Built once, on first use."""
    if step.debug is not None:
        return step.debug
    step.ensure()
    if step.fusion is not None:
        step.debug = _fusion_debug(step, project, run_id)
        return step.debug
    events: list[tuple[float, int, int, int, str, str]] = []   # (offset, priority, seq, kind, thread, text)
    seq = 0

    def add(at: float, priority: int, text: str, thread: str = "MainThread", level: str = "debug",
            kind: int = _LINE) -> None:
        nonlocal seq
        first, *rest = text.split("\n")
        events.append((at, priority, seq, kind, thread, f"[{level}] [{thread}]: {first}" if kind == _LINE
                       else first))
        seq += 1
        for line in rest:
            events.append((at, priority, seq, _RAW, thread, line))
            seq += 1

    dbt_command = step.command.startswith("dbt ")
    target = f"/tmp/jobs/{run_id}/target"
    if dbt_command:
        add(0.0, -1, f"{'=' * 30} {{stamp}} | {invocation_id(run_id, step.command)} {'=' * 30}", kind=_BANNER)
    for k, text in enumerate(step.texts):
        at = step.offsets[k]
        thread = f"Thread-{step.threads[k]} (" if step.threads[k] else "MainThread"
        if not step.stamped[k]:
            events.append((at, 1, seq, _RAW, thread, text))
            seq += 1
            continue
        add(at, 1, text, thread, _level(text))
        if dbt_command and text.startswith("Running with dbt="):
            arguments = {"invocation_command": step.command, "log_path": "/tmp/jobs/repo/logs", "printer_width": "80",
                         "use_colors": "False", "log_format": "default", "partial_parse": "True",
                         "send_anonymous_usage_stats": "False", "write_json": "True", "profiles_dir": "/tmp/jobs/.dbt"}
            add(at, 1, f"running dbt with arguments {arguments}")
        elif dbt_command and text.startswith("Registered adapter:"):
            digest = hashlib.sha256(f"{project.name}".encode()).hexdigest()
            add(at, 1, f"checksum: {digest}, vars: {{}}, profile: user, target: {TARGET}, version: {DBT_VERSION}")
        elif dbt_command and text.startswith("Found "):
            add(at, 0, f"Wrote artifact WritableManifest to {target}/manifest.json")
        elif dbt_command and text.startswith("Concurrency:"):
            add(at, 1, "Acquiring new snowflake connection 'master'")
    generate = verb_of(step.command) == "docs"
    for r in step.runs:
        if r.status == "skipped":
            continue
        node = project.nodes[r.index]
        uid, thread, span = node.unique_id, f"Thread-{r.thread} (", max(r.end - r.start, 1e-3)
        add(r.start, 0, f"Began running node {uid}", thread)
        add(r.start + span * 0.02, 2, f"Began compiling node {uid}", thread)
        add(r.start + span * 0.05, 2, f'Writing injected SQL for node "{uid}"', thread)
        if generate:
            add(r.end, 2, f"Finished running node {uid}", thread)
            continue
        add(r.start + span * 0.08, 2, f"Began executing node {uid}", thread)
        if node.resource_type != "seed":
            add(r.start + span * 0.1, 2, f'Using snowflake connection "{uid}"', thread)
            comment = json.dumps({"app": "dbt", "dbt_version": DBT_VERSION, "profile_name": "user",
                                  "target_name": TARGET, "node_id": uid})
            relation = f"ANALYTICS.{node.schema.upper()}.{node.name.upper()}"
            sql = (f"select count(*) as failures from (\n  select * from {relation}\n) dbt_internal_test"
                   if node.resource_type == "test" else
                   f"create or replace transient table {relation}\n  as\n  (\nselect * from {node.name}\n  );")
            add(r.start + span * 0.12, 2, f"On {uid}: /* {comment} */\n{sql}", thread)
        if r.status == "error":
            add(r.end, 0, f"Snowflake adapter: Snowflake query id: 01b{r.number:05d}-0000-{r.thread:04d}", thread)
            add(r.end, 0, f"Snowflake adapter: Snowflake error: {(r.message or '').split(chr(10))[-1].strip()}",
                thread)
            add(r.end, 0, f"On {uid}: ROLLBACK", thread)
        else:
            add(r.end, 0, f"SQL status: {r.adapter_message or 'SUCCESS 1'} in {span * 0.9:.3f} seconds", thread)
        add(r.end, 2, f"On {uid}: Close", thread)
        add(r.end, 2, f"Finished running node {uid}", thread)
    if dbt_command and verb_of(step.command) != "deps":
        end = step.duration
        verb = verb_of(step.command)
        if step.runs or step.sources:
            artifact = "sources.json" if step.sources else "run_results.json"
            add(end, 0, f"Wrote artifact {'FreshnessExecutionResultArtifact' if step.sources else 'RunExecutionResult'}"
                        f" to {target}/{artifact}")
        report = {"command_name": which_of(step.command), "command_success": not step.fails,
                  "command_wall_clock_time": round(end, 6), "process_mem_max_rss": "512000"}
        add(end, 3, f"Resource report: {json.dumps(report)}")
        add(end, 3, f"Command `dbt {verb}` {'failed' if step.fails else 'succeeded'} at {{at}} after "
                    f"{end:.2f} seconds", kind=_DONE)
        add(end, 3, "Flushing usage events")
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    step.debug = ([e[0] for e in events], [e[5] for e in events], [e[3] for e in events])
    return step.debug


def _fusion_debug(step: StepLog, project: Project, run_id: int) -> tuple[list[float], list[str], list[int]]:
    """Fusion's logs/dbt.log (file_log_layer.rs): a `==== <RFC3339> | <invocation> ====` banner, then
    `HH:MM:SS.ffffff [level]: message` — `Started model schema.alias` lines, the node result lines, the rest."""
    banner = f"{'=' * 20} {{stamp}} | {invocation_id(run_id, step.command)} {'=' * 20}"
    events: list[tuple[float, int, int, str]] = [(0.0, -1, _BANNER, banner)]
    levels = {"INFO": "info ", "WARN": "warn ", "ERROR": "error"}
    for k, text in enumerate(step.texts):
        if not step.stamped[k]:
            events.append((step.offsets[k], k, _RAW, text))
            continue
        word, _, message = text.strip().partition(" ")
        events.append((step.offsets[k], k, _LINE, f"[{levels.get(word, 'info ')}]: {message}"))
    for r in step.runs:
        if r.status != "skipped":
            node = project.nodes[r.index]
            what = node.name if node.resource_type == "test" else f"{node.schema}.{node.name}"
            events.append((r.start, -1, _LINE, f"[debug]: Started {node.resource_type} {what}"))
            events.append((r.end, -1, _LINE, f"[debug]: Query executed on node {node.unique_id}:"))
            events.append((r.end, -1, _RAW, f"select * from {node.name}"))
    events.sort(key=lambda e: (e[0], e[1]))
    return [e[0] for e in events], [e[3] for e in events], [e[2] for e in events]


def render_debug(step: StepLog, began: float, upto: float, tail: int | None = None, project: Project | None = None,
                 run_id: int = 0) -> str:
    """The debug-level log up to `upto` seconds after the step began (the last `tail` lines when given)."""
    offsets, texts, kinds = debug_timeline(step, project or SAMPLE, run_id)
    count = bisect_right(offsets, upto + 1e-4)
    first = 0 if tail is None else max(0, count - tail)
    lines: list[str] = []
    for k in range(first, count):
        kind = kinds[k]
        if kind == _RAW:
            lines.append(texts[k])
            continue
        stamp = datetime.fromtimestamp(began + offsets[k], UTC).strftime("%H:%M:%S.%f")
        if kind == _BANNER:
            moment = datetime.fromtimestamp(began + offsets[k], UTC)
            lines.append(texts[k].replace("{stamp}", moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if "=" * 30 not in
                                          texts[k] else stamp))
        elif kind == _DONE:
            lines.append(f"{stamp} [debug] [MainThread]: {texts[k].replace('{at}', stamp)}")
        else:
            lines.append(f"{stamp} {texts[k]}")
    return "\n".join(lines) + "\n" if lines else ""


# ---- artifacts ------------------------------------------------------------------------------------------------
def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# `args.which` as dbt-core records it: the (sub)command's own name (`dbt source freshness` → freshness,
# `dbt docs generate` → generate).
_WHICH = {"source": "freshness", "docs": "generate"}


def which_of(command: str) -> str:
    verb = verb_of(command)
    return _WHICH.get(verb, verb)


def invocation_id(run_id: int, command: str) -> str:
    digest = hashlib.md5(f"{run_id}:{command}".encode(), usedforsecurity=False).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


def _args(command: str, run_id: int, threads: int) -> dict[str, Any]:
    words = command.split()
    select = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--select", "-s", "--models", "-m")]
    return {"which": which_of(command), "invocation_command": command, "project_dir": "/tmp/jobs/repo",
            "profiles_dir": "/tmp/jobs/.dbt", "target_path": f"/tmp/jobs/{run_id}/target", "log_level": "info",
            "log_level_file": "debug", "log_format": "default", "log_format_file": "debug", "use_colors": False,
            "printer_width": 80, "threads": threads, "select": select, "exclude": [], "vars": {},
            "full_refresh": "--full-refresh" in words, "fail_fast": "--fail-fast" in words or "-x" in words,
            "defer": False, "favor_state": False, "indirect_selection": "eager", "write_json": True,
            "partial_parse": True, "static_parser": True, "introspect": True, "send_anonymous_usage_stats": False,
            "version_check": True, "warn_error_options": {"error": [], "warn": [], "silence": []},
            "quiet": False, "print": True}


def run_results_json(project: Project, step: StepLog, began: float, run_id: int,
                     env: dict[str, str] | None = None, threads: int = 4) -> dict[str, Any]:
    results = []
    for r in step.runs:
        node = project.nodes[r.index]
        skipped = r.status == "skipped"
        compile_end = r.start + min(0.05, (r.end - r.start) * 0.1)
        relation = None if node.resource_type == "test" else f'"ANALYTICS"."{node.schema.upper()}".' \
                                                              f'"{node.name.upper()}"'
        results.append({
            "status": r.status,
            "timing": [] if skipped else [
                {"name": "compile", "started_at": _iso(began + r.start), "completed_at": _iso(began + compile_end)},
                {"name": "execute", "started_at": _iso(began + compile_end), "completed_at": _iso(began + r.end)}],
            "thread_id": f"Thread-{r.thread} (worker)",
            "execution_time": 0 if skipped else r.end - r.start,
            "adapter_response": {} if skipped or not r.adapter_message else {
                "_message": r.adapter_message, "code": r.adapter_message.split()[0],
                "rows_affected": int(r.adapter_message.split()[-1]) if r.adapter_message.split()[-1].isdigit()
                else 0},
            "message": r.message,
            "failures": r.failures,
            "unique_id": node.unique_id,
            "compiled": not skipped and node.resource_type != "seed",
            "compiled_code": None if skipped or node.resource_type == "seed" else f"select * from {node.name}",
            "relation_name": relation,
            "batch_results": None,
            "overload_results": None,
        })
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "dbt_version": DBT_VERSION,
            "generated_at": _iso(began + step.duration),
            "invocation_id": invocation_id(run_id, step.command),
            "invocation_started_at": _iso(began),
            "env": dict(env or {}),
        },
        "results": results,
        "elapsed_time": step.elapsed,
        "args": _args(step.command, run_id, threads),
    }


def sources_json(project: Project, step: StepLog, began: float, run_id: int,
                 env: dict[str, str] | None = None) -> dict[str, Any]:
    """target/sources.json of a `dbt source freshness` step (schema v3), as in the reference run."""
    criteria = {"warn_after": {"count": 12, "period": "hour"}, "error_after": {"count": 24, "period": "hour"},
                "filter": None}
    results = []
    for name, status, start, end, thread in step.sources:
        age = {"pass": 1800.0, "warn": 13 * 3600.0, "error": 30 * 3600.0}[status]
        snapshotted = began + end
        results.append({
            "unique_id": f"source.{project.name}.raw.{name}",
            "max_loaded_at": datetime.fromtimestamp(snapshotted - age, UTC).isoformat(),
            "snapshotted_at": datetime.fromtimestamp(snapshotted, UTC).isoformat(),
            "max_loaded_at_time_ago_in_s": age, "status": status, "criteria": criteria,
            "adapter_response": {"_message": "SUCCESS 1", "code": "SUCCESS", "rows_affected": 1},
            "timing": [{"name": "compile", "started_at": _iso(began + start), "completed_at": _iso(began + start)},
                       {"name": "execute", "started_at": _iso(began + start), "completed_at": _iso(began + end)}],
            "thread_id": f"Thread-{thread} (worker)", "execution_time": end - start,
        })
    return {
        "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json",
                     "dbt_version": DBT_VERSION, "generated_at": _iso(began + step.duration),
                     "invocation_id": invocation_id(run_id, step.command), "invocation_started_at": _iso(began),
                     "env": dict(env or {})},
        "results": results,
        "elapsed_time": step.elapsed,
    }


def _checksum(text: str) -> dict[str, str]:
    return {"name": "sha256", "checksum": hashlib.sha256(text.encode()).hexdigest()}


def _manifest_node(project: Project, node: Node) -> dict[str, Any]:
    """One node as dbt 1.12 writes it in manifest.json (schema v12): every field dbt-core's loader requires."""
    kind = node.resource_type
    parents = [project.nodes[p].unique_id for p in node.parents]
    folders = node.original_file_path.split("/")[1:-1]
    path = node.original_file_path.split("/", 1)[-1] if kind != "test" else f"{node.name}.sql"
    config: dict[str, Any] = {"enabled": True, "alias": None, "schema": None, "database": None, "tags": [],
                              "meta": {}, "group": None, "materialized": node.materialization or "test"}
    if kind == "test":
        config.update(severity="ERROR", store_failures=None, where=None, limit=None, fail_calc="count(*)",
                      warn_if="!= 0", error_if="!= 0")
    else:
        config.update({"persist_docs": {}, "post-hook": [], "pre-hook": [], "quoting": {}, "column_types": {},
                       "full_refresh": None, "unique_key": None, "on_schema_change": "ignore",
                       "on_configuration_change": "apply", "grants": {}, "packages": [],
                       "docs": {"show": True, "node_color": None},
                       "contract": {"enforced": False, "alias_types": True}})
    if kind == "snapshot":
        config.update(strategy="check", check_cols="all", unique_key="id")
    raw_code = "" if kind == "seed" else f"select * from {{{{ ref('{project.nodes[node.parents[0]].name}') }}}}" \
        if node.parents else f"select 1 as {node.name}_id"
    relation = None if kind == "test" else f'"ANALYTICS"."{node.schema.upper()}"."{node.name.upper()}"'
    entry: dict[str, Any] = {
        "database": "ANALYTICS", "schema": node.schema, "name": node.name, "resource_type": kind,
        "package_name": project.name, "path": path, "original_file_path": node.original_file_path,
        "unique_id": node.unique_id, "fqn": [project.name, *folders, node.name], "alias": node.name,
        "checksum": _checksum(f"{node.unique_id}:{raw_code}"), "config": config, "tags": [], "description": "",
        "columns": {}, "meta": {}, "group": None, "docs": {"show": True, "node_color": None}, "patch_path": None,
        "build_path": None, "unrendered_config": {}, "created_at": 1700000000.0, "relation_name": relation,
        "doc_blocks": [], "raw_code": raw_code,
        # dbt writes attached_node on tests only; null elsewhere keeps readers that look it up on every node working.
        "attached_node": None,
    }
    if kind == "seed":
        # dbt writes only "macros" for a seed; "nodes": [] too keeps graph walkers that expect it working.
        entry.update(root_path="/tmp/jobs/repo", depends_on={"macros": [], "nodes": []})
        return entry
    entry.update(language="sql", refs=[{"name": project.nodes[p].name, "package": None, "version": None}
                                       for p in node.parents if project.nodes[p].resource_type != "test"],
                 sources=[], metrics=[], functions=[], depends_on={"macros": [], "nodes": parents},
                 compiled_path=None, contract={"enforced": False, "alias_types": True, "checksum": None})
    if kind == "model":
        entry.update(access="protected", constraints=[], version=None, latest_version=None, deprecation_date=None,
                     primary_key=[], time_spine=None)
    if kind == "test":
        column = node.name.split("_", 2)[-1]
        entry.update(column_name=column, file_key_name=f"models.{project.nodes[node.parents[0]].name}"
                     if node.parents else None,
                     attached_node=project.nodes[node.attached_to].unique_id if node.attached_to is not None
                     else None,
                     test_metadata={"name": node.name.split("_")[0] if not node.name.startswith("not_null")
                                    else "not_null", "kwargs": {"column_name": column}, "namespace": None})
    return entry


def manifest_json(project: Project, generated_at: str, invocation_id: str = "", dbt_version: str = DBT_VERSION,
                  env: dict[str, str] | None = None) -> dict[str, Any]:
    """manifest.json (schema v12) with the fields dbt-core's own loader requires of every node and source
    (WritableManifest.from_dict accepts it; docs/emulator.md, "Artifacts")."""
    nodes = {node.unique_id: _manifest_node(project, node) for node in project.nodes}
    child_map: dict[str, list[str]] = {}
    for node in project.nodes:
        for p in node.parents:
            child_map.setdefault(project.nodes[p].unique_id, []).append(node.unique_id)
    freshness = {"warn_after": {"count": 12, "period": "hour"}, "error_after": {"count": 24, "period": "hour"},
                 "filter": None}
    sources: dict[str, Any] = {}
    for name in project.sources:
        uid = f"source.{project.name}.raw.{name}"
        sources[uid] = {
            "database": "RAW", "schema": "raw", "name": name, "resource_type": "source",
            "package_name": project.name, "path": "models/staging/_sources.yml",
            "original_file_path": "models/staging/_sources.yml", "unique_id": uid,
            "fqn": [project.name, "staging", "raw", name], "source_name": "raw", "source_description": "",
            "loader": "", "identifier": name, "quoting": {"database": None, "schema": None, "identifier": None,
                                                          "column": None},
            "loaded_at_field": "_loaded_at", "loaded_at_query": None, "freshness": freshness, "external": None,
            "description": "", "columns": {}, "meta": {}, "source_meta": {}, "tags": [],
            "config": {"enabled": True, "event_time": None, "freshness": freshness, "meta": {}, "tags": []},
            "patch_path": None, "unrendered_config": {}, "relation_name": f'"RAW"."RAW"."{name.upper()}"',
            "created_at": 1700000000.0, "unrendered_database": None, "unrendered_schema": None, "doc_blocks": [],
        }
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "dbt_version": dbt_version,
            "generated_at": generated_at,
            "invocation_id": invocation_id or None,
            "invocation_started_at": generated_at,
            "env": dict(env or {}),
            "project_name": project.name,
            "project_id": hashlib.md5(project.name.encode(), usedforsecurity=False).hexdigest(),
            "user_id": None,
            "send_anonymous_usage_stats": False,
            "adapter_type": "snowflake",
            "quoting": {"database": True, "schema": True, "identifier": True, "column": None},
            "run_started_at": generated_at,
        },
        "nodes": nodes,
        "sources": sources,
        "macros": {},
        "docs": {},
        "exposures": {},
        "metrics": {},
        "groups": {},
        "selectors": {},
        "disabled": {},
        "parent_map": {**{n.unique_id: [project.nodes[p].unique_id for p in n.parents] for n in project.nodes},
                       **{uid: [] for uid in sources}},
        "child_map": {**{n.unique_id: child_map.get(n.unique_id, []) for n in project.nodes},
                      **{uid: [] for uid in sources}},
        "group_map": {},
        "saved_queries": {},
        "semantic_models": {},
        "unit_tests": {},
        "functions": {},
    }


def catalog_json(project: Project, generated_at: str) -> dict[str, Any]:
    return {
        "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/catalog/v1.json",
                     "dbt_version": DBT_VERSION, "generated_at": generated_at},
        "nodes": {n.unique_id: {"unique_id": n.unique_id, "metadata": {"name": n.name, "schema": n.schema},
                                "columns": {}}
                  for n in project.nodes if n.resource_type in ("model", "seed", "snapshot")},
        "sources": {},
    }
