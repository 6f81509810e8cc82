"""Artifacts at scale: download and read the artifacts of a 20,000-node project in bounded memory and time.

    python -m benchmarks.artifacts [--nodes 20000] [--repeat 3]

Generates a manifest.json of about 300 MB and a run_results.json of about 100 MB for a 20,000-node project (a few
nodes errored, failed or warned, scattered through the files), serves them over HTTP on loopback at dbt Cloud's
artifact path, and measures in a fresh subprocess each: a plain streamed download of both files with
`DbtCloudClient.download_artifact` (the floor: nothing is read), dbtgate's `collect_artifacts` (the same download,
then the failed and warned results and their manifest nodes read), and, for reference, `json.load()` of the two
files (what the previous version did). Peak memory is the child's `ru_maxrss`; wall time is measured inside the
child from the first request to the report.

Writes benchmarks/results/artifacts.md and artifacts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "dbtc_" + "q8Zr2Lw0" * 5
MEMORY_GOAL_MB = 300
TIME_GOAL = 3.0
STATUSES = {7: "error", 11: "fail", 13: "warn"}   # every Nth node (by a seeded draw) ends this way


# ---- the files ------------------------------------------------------------------------------------------------------
def _text(rng: random.Random, size: int) -> str:
    words = ("select", "from", "where", "join", "on", "customer_id", "order_id", "sum", "amount", "group", "by",
             "coalesce", "cast", "as", "varchar", "left", "case", "when", "then", "else", "end", "and", "or")
    out, length = [], 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)


def generate(folder: Path, nodes: int, seed: int = 20261126) -> dict[str, Any]:
    """Write manifest.json (~15 KB a node) and run_results.json (~5 KB a result) without holding either whole."""
    rng = random.Random(seed)
    kinds = ["model"] * 40 + ["test"] * 55 + ["seed"] * 3 + ["snapshot"] * 2
    ids = []
    for index in range(nodes):
        kind = rng.choice(kinds)
        ids.append((f"{kind}.warehouse.node_{index:05d}" + (f".{index:010x}" if kind == "test" else ""), kind,
                    f"node_{index:05d}"))
    outcome = {}
    for unique_id, _, _ in ids:
        draw = rng.randrange(2000)
        outcome[unique_id] = next((status for every, status in STATUSES.items() if draw == every), "success")
    with (folder / "manifest.json").open("w", encoding="utf-8") as out:
        out.write('{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json", '
                  '"dbt_version": "1.12.6", "project_name": "warehouse"}, "nodes": {')
        for number, (unique_id, kind, name) in enumerate(ids):
            folder_name = "staging" if number % 3 else "marts"
            node = {
                "unique_id": unique_id, "name": name, "resource_type": kind, "package_name": "warehouse",
                "path": f"{folder_name}/{name}.sql", "original_file_path": f"models/{folder_name}/{name}.sql",
                "fqn": ["warehouse", folder_name, name], "database": "ANALYTICS", "schema": folder_name,
                "config": {"materialized": "table" if kind == "model" else kind, "enabled": True, "tags": [],
                           "meta": {}, "grants": {}, "packages": [], "docs": {"show": True}},
                "description": _text(rng, 1500),
                "columns": {f"column_{c}": {"name": f"column_{c}", "description": _text(rng, 100),
                                            "data_type": "varchar", "meta": {}, "tags": []} for c in range(16)},
                "raw_code": _text(rng, 4500), "compiled_code": _text(rng, 4500),
                "depends_on": {"macros": ["macro.dbt.run_query"], "nodes": [i for i, _, _ in
                                                                             rng.sample(ids, 3)]},
            }
            out.write(("" if number == 0 else ", ") + json.dumps(unique_id) + ": " + json.dumps(node))
        out.write('}, "sources": {}, "macros": {}, "parent_map": {')
        out.write(", ".join(f"{json.dumps(uid)}: []" for uid, _, _ in ids))
        out.write('}, "child_map": {}}')
    with (folder / "run_results.json").open("w", encoding="utf-8") as out:
        out.write('{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json"}, '
                  '"results": [')
        for number, (unique_id, kind, name) in enumerate(ids):
            status = outcome[unique_id]
            if kind == "test" and status == "success":
                status = "pass"
            if kind != "test" and status in ("fail", "warn"):
                status = "error"
            result = {
                "status": status,
                "timing": [{"name": "compile", "started_at": "2026-11-26T10:00:00.000000Z",
                            "completed_at": "2026-11-26T10:00:00.100000Z"},
                           {"name": "execute", "started_at": "2026-11-26T10:00:00.100000Z",
                            "completed_at": "2026-11-26T10:00:02.400000Z"}],
                "thread_id": f"Thread-{number % 8 + 1} (worker)", "execution_time": round(rng.uniform(0.1, 30), 3),
                "adapter_response": {"_message": "SUCCESS 1", "code": "SUCCESS", "rows_affected": 1},
                "message": (f"Database Error in model {name}" if status == "error" else
                            f"Got 3 results, configured to {status} if != 0" if status in ("fail", "warn")
                            else None),
                "failures": 3 if status in ("fail", "warn") else 0, "unique_id": unique_id, "compiled": True,
                "compiled_code": _text(rng, 4300), "relation_name": f'"ANALYTICS"."STAGING"."{name.upper()}"',
                "batch_results": None,
            }
            out.write(("" if number == 0 else ", ") + json.dumps(result))
        out.write('], "elapsed_time": 3600.0, "args": {"which": "build"}}')
    bad = [uid for uid, _, _ in ids if outcome[uid] != "success"]
    return {"nodes": nodes, "issues": len(bad), "manifest_mb": (folder / "manifest.json").stat().st_size / 2**20,
            "run_results_mb": (folder / "run_results.json").stat().st_size / 2**20}


# ---- serving ------------------------------------------------------------------------------------------------------
def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.split("?")[0].rsplit("/", 1)[-1]
            path = folder / name
            if "/runs/1/artifacts/" not in self.path or not path.is_file():
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with path.open("rb") as handle:
                shutil.copyfileobj(handle, self.wfile, 1 << 20)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# ---- the measured child -----------------------------------------------------------------------------------------
CHILD = r"""
import json, resource, sys, tempfile, time
from pathlib import Path
mode, url, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
out = {}
started = time.perf_counter()
if mode == "json.load":
    for name in ("run_results.json", "manifest.json"):
        with (folder / name).open("rb") as handle:
            json.load(handle)
else:
    from dbtgate.cloud.client import DbtCloudClient
    from dbtgate.clock import SystemClock
    client = DbtCloudClient(url, TOKEN, 1, clock=SystemClock(), api_timeout=300)
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        if mode == "plain":
            for name in ("run_results.json", "manifest.json"):
                target = Path(scratch) / name
                client.download_artifact(1, name, lambda target=target: target.open("wb"),
                                         deadline=time.monotonic() + 600, max_bytes=4 << 30)
        else:
            from dbtgate.artifacts import collect_artifacts
            report = collect_artifacts(client, 1, workspace=Path(scratch), directory=Path(scratch) / "target",
                                       fetch_catalog=False, extra=(), max_bytes=4 << 30,
                                       deadline=time.monotonic() + 600, secrets=(TOKEN,))
            out.update(failed=len(report.failed), warned=len(report.warned), problems=list(report.problems),
                       with_file=sum(1 for issue in report.failed + report.warned if issue.file_path))
out["seconds"] = time.perf_counter() - started
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def measure(mode: str, url: str, folder: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = CHILD.replace("TOKEN", repr(TOKEN))
    done = subprocess.run([sys.executable, "-c", code, mode, url, str(folder)], capture_output=True, text=True,
                          env=env, check=True, timeout=1800)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.artifacts", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-json-load", action="store_true", help="skip the json.load reference")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dbtgate-artifacts-bench-") as scratch:
        folder = Path(scratch) / "files"
        folder.mkdir()
        sizes = generate(folder, args.nodes)
        print(f"generated {sizes}")
        server, url = serve(folder)
        try:
            runs: dict[str, list[dict[str, Any]]] = {"plain": [], "dbtgate": [], "json.load": []}
            for _ in range(args.repeat):
                for mode in ("plain", "dbtgate"):
                    runs[mode].append(measure(mode, url, folder))
                    print(mode, runs[mode][-1])
            if not args.skip_json_load:
                runs["json.load"].append(measure("json.load", url, folder))
                print("json.load", runs["json.load"][-1])
        finally:
            server.shutdown()
    summary = {mode: {"seconds": statistics.median(r["seconds"] for r in rows),
                      "peak_rss_mb": max(r["peak_rss_mb"] for r in rows)} for mode, rows in runs.items() if rows}
    ours, plain = summary["dbtgate"], summary["plain"]
    ratio = ours["seconds"] / plain["seconds"]
    found = runs["dbtgate"][-1]
    lines = [
        "# Artifacts at scale", "",
        "Generated by `python -m benchmarks.artifacts`; do not edit by hand.", "",
        f"A {args.nodes:,}-node project: manifest.json {sizes['manifest_mb']:.0f} MB, run_results.json "
        f"{sizes['run_results_mb']:.0f} MB, {sizes['issues']} results errored, failed or warned (scattered through "
        "the files). Served over HTTP on loopback at `runs/1/artifacts/<file>`; each measurement in a fresh "
        f"subprocess, {args.repeat} times (median time, highest peak memory), on this machine ({os.cpu_count()} "
        "cores).", "",
        "| What | wall time | peak memory (RSS) |", "|---|---|---|",
        f"| plain streamed download of both files (`download_artifact`) | {plain['seconds']:.1f} s | "
        f"{plain['peak_rss_mb']:.0f} MB |",
        f"| dbtgate `collect_artifacts`: the download, then the failed and warned nodes and their files | "
        f"{ours['seconds']:.1f} s | {ours['peak_rss_mb']:.0f} MB |",
    ]
    if "json.load" in summary:
        lines.append(f"| for reference: `json.load()` of the two files, no download (the previous reader) | "
                     f"{summary['json.load']['seconds']:.1f} s | {summary['json.load']['peak_rss_mb']:.0f} MB |")
    lines += [
        "", "## Goals", "",
        f"- Peak memory under {MEMORY_GOAL_MB} MB: {ours['peak_rss_mb']:.0f} MB — "
        f"{'met' if ours['peak_rss_mb'] < MEMORY_GOAL_MB else 'NOT met'}.",
        f"- Wall time under {TIME_GOAL:g}× the plain download's: {ratio:.2f}× — "
        f"{'met' if ratio < TIME_GOAL else 'NOT met'}.",
        f"- The report found {found.get('failed')} failed and {found.get('warned')} warned nodes, "
        f"{found.get('with_file')} with their file from the manifest; problems: {found.get('problems') or 'none'}.",
        "", "How: `run_results.json` is walked with a small incremental reader (its `results` array one element at "
        "a time, each parsed by the C decoder); from `manifest.json` only the nodes that a failed or warned result "
        "names are decoded, found by searching the bytes for their key followed by an object. Memory holds a "
        "chunk (1–8 MB) and one value, never a file; the files themselves stream to disk as before.", "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "artifacts.md").write_text("\n".join(lines), "utf-8")
    (RESULTS / "artifacts.json").write_text(json.dumps({"sizes": sizes, "summary": summary, "runs": runs,
                                                        "ratio": ratio}, indent=1), "utf-8")
    print(f"dbtgate {ours} plain {plain} ratio {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
