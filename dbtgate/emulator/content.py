"""What an emulated dbt run produces: step names, step logs, run_results.json and manifest.json.

The project is a small jaffle-shop: enough nodes for realistic "N of M" log lines, per-node results, failing tests
with messages, and a manifest whose `original_file_path` lets annotations point at files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PACKAGE = "jaffle_shop"


@dataclass(frozen=True)
class Node:
    unique_id: str
    resource_type: str  # model | test | seed | snapshot
    name: str
    original_file_path: str
    materialization: str = ""


@dataclass(frozen=True)
class NodeResult:
    """How one node ends in a run: status is success/error/fail/warn/pass/skipped as dbt writes it."""

    unique_id: str
    status: str
    message: str
    execution_time: float
    failures: int | None = None


def _model(name: str, path: str, materialization: str) -> Node:
    return Node(f"model.{PACKAGE}.{name}", "model", name, path, materialization)


def _test(name: str, path: str) -> Node:
    return Node(f"test.{PACKAGE}.{name}", "test", name, path)


PROJECT_NODES: tuple[Node, ...] = (
    Node(f"seed.{PACKAGE}.raw_customers", "seed", "raw_customers", "seeds/raw_customers.csv"),
    Node(f"seed.{PACKAGE}.raw_orders", "seed", "raw_orders", "seeds/raw_orders.csv"),
    Node(f"seed.{PACKAGE}.raw_payments", "seed", "raw_payments", "seeds/raw_payments.csv"),
    _model("stg_customers", "models/staging/stg_customers.sql", "view"),
    _model("stg_orders", "models/staging/stg_orders.sql", "view"),
    _model("stg_payments", "models/staging/stg_payments.sql", "view"),
    _test("unique_stg_customers_customer_id", "models/staging/schema.yml"),
    _test("not_null_stg_orders_order_id", "models/staging/schema.yml"),
    _model("customers", "models/marts/customers.sql", "table"),
    _model("orders", "models/marts/orders.sql", "table"),
    _test("unique_customers_customer_id", "models/marts/schema.yml"),
    _test("not_null_orders_order_id", "models/marts/schema.yml"),
    _test("relationships_orders_customer_id__customer_id__ref_customers_", "models/marts/schema.yml"),
    _test("accepted_values_orders_status__placed__shipped__completed__return_pending__returned",
          "models/marts/schema.yml"),
)

NODES_BY_ID = {node.unique_id: node for node in PROJECT_NODES}

DEFAULT_FAILURES: tuple[NodeResult, ...] = (
    NodeResult(
        f"test.{PACKAGE}.not_null_orders_order_id", "fail", "Got 3 results, configured to fail if != 0", 0.61, 3
    ),
)


def resolve_node(name_or_id: str) -> Node:
    """A node by unique id or by short name, for scenario files; a new test node for names it does not know."""
    if name_or_id in NODES_BY_ID:
        return NODES_BY_ID[name_or_id]
    for node in PROJECT_NODES:
        if node.name == name_or_id:
            return node
    return _test(name_or_id, "models/schema.yml")


def step_name(command: str) -> str:
    return f"Invoke dbt with `{command}`"


SETUP_STEPS = ("Clone git repository", "Create profile from connection Snowflake")


def builds_nodes(command: str) -> bool:
    words = command.split()
    return len(words) > 1 and words[0] == "dbt" and words[1] in {"build", "run", "test", "seed", "retry"}


def node_results(command: str, overrides: dict[str, NodeResult]) -> list[NodeResult]:
    """Every node the command touches, in execution order, with the scenario's failures and warnings applied.

    Nodes downstream of an erroring model are skipped, as dbt does.
    """
    verb = command.split()[1] if len(command.split()) > 1 else ""
    wanted = {"build": {"seed", "model", "test"}, "run": {"model"}, "test": {"test"}, "seed": {"seed"},
              "retry": {"seed", "model", "test"}}.get(verb, set())
    results: list[NodeResult] = []
    errored_models = False
    for position, node in enumerate(PROJECT_NODES):
        if node.resource_type not in wanted:
            continue
        if node.unique_id in overrides:
            result = overrides[node.unique_id]
            errored_models = errored_models or (node.resource_type == "model" and result.status == "error")
        elif errored_models and node.resource_type in {"model", "test"} and "marts" in node.original_file_path:
            result = NodeResult(node.unique_id, "skipped", "SKIP", 0.0)
        else:
            ok = "pass" if node.resource_type == "test" else "success"
            message = _ok_message(node)
            result = NodeResult(node.unique_id, ok, message, round(0.3 + (position % 5) * 0.17, 2),
                                0 if node.resource_type == "test" else None)
        results.append(result)
    return results


def _ok_message(node: Node) -> str:
    if node.resource_type == "seed":
        return "INSERT 100"
    if node.resource_type == "test":
        return ""
    return "CREATE VIEW" if node.materialization == "view" else "SUCCESS 1"


def _clock(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M:%S")


def setup_step_log(name: str, started: float) -> list[tuple[float, str]]:
    """The log of a setup step as (moment, line) pairs."""
    if name.startswith("Clone"):
        texts = ["Cloning into '/tmp/jobs/repo'...", "Checked out at 4e041f69 (main)"]
    else:
        texts = ["Creating profile from connection Snowflake", "Profile written to /tmp/jobs/.dbt/profiles.yml"]
    return [(started, f"{_clock(started)}  {text}") for text in texts]


def command_log_lines(command: str, results: list[NodeResult], started: float,
                      duration: float) -> list[tuple[float, str]]:
    """The full log of a dbt command step as (moment, line) pairs, so a running step shows what has happened.

    Nodes finish evenly over the step and the last one ends it, as dbt prints "Finished" right after it.
    """
    total = len(results)
    end = started + duration
    lines = [(started, f"{_clock(started)}  {text}") for text in (
        "Running with dbt=1.9.4", "Registered adapter: snowflake=1.9.2",
        "Found 5 models, 7 data tests, 3 seeds, 0 sources, 533 macros")]
    if total == 0:
        lines.append((end, f"{_clock(end)}  Done."))
        return lines
    lines.append((started, f"{_clock(started)}  Concurrency: 8 threads (target='prod')"))
    for number, result in enumerate(results, start=1):
        node = NODES_BY_ID.get(result.unique_id) or resolve_node(result.unique_id)
        begin, finish = started + duration * (number - 1) / total, started + duration * number / total
        kind = {"model": f"sql {node.materialization or 'table'} model", "test": "test", "seed": "seed file"}.get(
            node.resource_type, node.resource_type)
        lines.append((begin, f"{_clock(begin)}  {number} of {total} START {kind} analytics.{node.name} [RUN]"))
        label = {"success": "OK", "pass": "PASS", "fail": "FAIL", "warn": "WARN", "error": "ERROR",
                 "skipped": "SKIP"}.get(result.status, result.status.upper())
        suffix = f"[{label} {result.failures}" if result.failures else f"[{label}"
        lines.append((finish, f"{_clock(finish)}  {number} of {total} {label} {node.name} {'.' * 8} {suffix} in "
                              f"{result.execution_time}s]"))
    at = _clock(end)
    errors = [r for r in results if r.status in {"error", "fail"}]
    warnings = [r for r in results if r.status == "warn"]
    passed = sum(1 for r in results if r.status in {"success", "pass"})
    skipped = sum(1 for r in results if r.status == "skipped")
    tail = [f"Finished running {total} nodes in 0 hours 0 minutes and {duration:.2f} seconds."]
    if errors or warnings:
        word = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        tail.append(f"Completed with {word} and {len(warnings)} warnings:")
        for result in errors + warnings:
            node = NODES_BY_ID.get(result.unique_id) or resolve_node(result.unique_id)
            kind = "Failure" if result.status == "fail" else ("Warning" if result.status == "warn" else
                                                               "Database Error")
            tail.append(f"{kind} in {node.resource_type} {node.name} ({node.original_file_path})")
            tail.extend(f"  {line}" for line in result.message.splitlines())
    else:
        tail.append("Completed successfully")
    tail.append(f"Done. PASS={passed} WARN={len(warnings)} ERROR={len(errors)} SKIP={skipped} TOTAL={total}")
    lines.extend((end, f"{at}  {text}") for text in tail)
    return lines


def run_results_json(command: str, results: list[NodeResult], generated_at: str, elapsed: float) -> dict[str, Any]:
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "dbt_version": "1.9.4",
            "generated_at": generated_at,
            "invocation_id": "5f1d2a40-0000-4000-8000-000000000000",
        },
        "results": [
            {
                "unique_id": r.unique_id,
                "status": r.status,
                "message": r.message or None,
                "execution_time": r.execution_time,
                "failures": r.failures,
                "thread_id": "Thread-1",
                "timing": [],
                "adapter_response": {},
                "compiled": True,
                "relation_name": f"analytics.{r.unique_id.rsplit('.', 1)[-1]}",
            }
            for r in results
        ],
        "elapsed_time": elapsed,
        "args": {"which": command.split()[1] if len(command.split()) > 1 else ""},
    }


def manifest_json(generated_at: str) -> dict[str, Any]:
    nodes = {
        node.unique_id: {
            "unique_id": node.unique_id,
            "name": node.name,
            "resource_type": node.resource_type,
            "package_name": PACKAGE,
            "original_file_path": node.original_file_path,
            "path": node.original_file_path.split("/", 1)[-1],
            "config": {"materialized": node.materialization or "test"},
        }
        for node in PROJECT_NODES
    }
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "dbt_version": "1.9.4",
            "generated_at": generated_at,
            "project_name": PACKAGE,
        },
        "nodes": nodes,
        "sources": {},
        "macros": {},
    }


def catalog_json(generated_at: str) -> dict[str, Any]:
    return {
        "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/catalog/v1.json",
                     "generated_at": generated_at},
        "nodes": {n.unique_id: {"unique_id": n.unique_id, "metadata": {"name": n.name}, "columns": {}}
                  for n in PROJECT_NODES if n.resource_type == "model"},
        "sources": {},
    }
