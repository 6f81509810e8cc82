"""Extract the little of the real dbt-core run that benchmarks.refmix needs into tests/fixtures/reference-run/.

    python -m benchmarks.reference_fixture [/path/to/dbt-core-run]

Run once, by hand, when the reference changes; it reads the copy in tests/fixtures/reference/dbt-core-run, and the
benchmark itself reads only what it writes (nothing outside the checkout at run time). Writes:

- dag.json      the manifest's executable nodes (seeds, models, snapshots, data tests, unit tests) and the
                ephemeral models: unique id, type, name, materialization, schema, file, depends_on.nodes,
                attached_node; and the sources.
- timings.json  per node of the successful build (run_results.json) and of the failing build
                (run_results-error.json): status, thread, compile start and execute end (seconds after the first
                node began), execution_time; and each build's elapsed_time.
- reruns.json   the `in X.XXs` of every node result line of the four other builds captured with the same project
                (build-success-color.log, build-error.log, build-error-color.log, build-error.jsonl), by node
                name: what a node's time varies by from one run to the next.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "reference-run"
# The real run as copied into the checkout (tests/fixtures/README.md): nothing outside the repository is read.
DEFAULT_SOURCE = ROOT / "tests" / "fixtures" / "reference" / "dbt-core-run"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
RESULT = re.compile(r"^\d\d:\d\d:\d\d\s+\d+ of \d+ (?!START|SKIP)(.*?) \.+ \[.* in ([0-9.]+)s\]\s*$")


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def dag(manifest: dict[str, Any]) -> dict[str, Any]:
    nodes = []
    for uid, node in {**manifest["nodes"], **manifest.get("unit_tests", {})}.items():
        if node["resource_type"] not in ("seed", "model", "snapshot", "test", "unit_test"):
            continue
        config = node.get("config") or {}
        nodes.append({"unique_id": uid, "resource_type": node["resource_type"], "name": node["name"],
                      "materialized": config.get("materialized", ""), "schema": node.get("schema", ""),
                      "file": node.get("original_file_path", ""),
                      "depends_on": sorted((node.get("depends_on") or {}).get("nodes") or []),
                      "attached_node": node.get("attached_node")})
    sources = sorted(s["name"] for s in manifest.get("sources", {}).values())
    return {"project": manifest["metadata"].get("project_name"), "nodes": sorted(nodes, key=lambda n: n["unique_id"]),
            "sources": sources}


def timings(run_results: dict[str, Any]) -> dict[str, Any]:
    rows = []
    starts = [_seconds(t["started_at"]) for r in run_results["results"] for t in r["timing"] if t["name"] == "compile"]
    origin = min(starts)
    for r in run_results["results"]:
        timing = {t["name"]: t for t in r["timing"]}
        began = timing.get("compile", timing.get("execute"))
        rows.append({"unique_id": r["unique_id"], "status": r["status"], "thread": r["thread_id"],
                     "start": round(_seconds(began["started_at"]) - origin, 6) if began else None,
                     "end": round(_seconds(timing["execute"]["completed_at"]) - origin, 6)
                     if "execute" in timing else None,
                     "execution_time": r["execution_time"]})
    return {"elapsed_time": run_results["elapsed_time"], "results": rows}


def log_times(lines: list[str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in lines:
        match = RESULT.match(ANSI.sub("", line))
        if match:
            words = match.group(1).split()
            name = words[-1].split(".")[-1].split("::")[-1]
            found[name] = float(match.group(2))
    return found


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else DEFAULT_SOURCE
    FIXTURE.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((source / "manifest.json").read_text("utf-8"))
    (FIXTURE / "dag.json").write_text(json.dumps(dag(manifest), indent=1) + "\n", "utf-8")
    runs = {"success": timings(json.loads((source / "run_results.json").read_text("utf-8"))),
            "error": timings(json.loads((source / "run_results-error.json").read_text("utf-8")))}
    (FIXTURE / "timings.json").write_text(json.dumps(runs, indent=1) + "\n", "utf-8")
    reruns: dict[str, dict[str, float]] = {}
    for name in ("build-success-color.log", "build-error.log", "build-error-color.log"):
        reruns[name] = log_times((source / name).read_text("utf-8").splitlines())
    messages = [json.loads(line)["info"]["msg"] for line in (source / "build-error.jsonl").read_text("utf-8")
                .splitlines() if line.strip()]
    stamp = "00:00:00  "
    reruns["build-error.jsonl"] = log_times([stamp + m for m in messages])
    (FIXTURE / "reruns.json").write_text(json.dumps(reruns, indent=1, sort_keys=True) + "\n", "utf-8")
    print(f"wrote {FIXTURE}: {len(manifest['nodes'])} manifest nodes, "
          + ", ".join(f"{k} {len(v)}" for k, v in reruns.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
