"""Cold start: how long the action takes from process start to its first HTTP request, and what it imports.

    python -m benchmarks.coldstart [--repeat 20]

The action pays this on every workflow run. Two setups are timed: the development install (the editable
package in .venv, whose import hook costs a little) and the container's layout (dependencies and the package on
PYTHONPATH, no import hooks), approximated by `python -S` with the same PYTHONPATH the image sets.
Writes benchmarks/results/coldstart.md and coldstart.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 150.0
RATIO_TARGET = 1.3


BARE = "import sys, requests\ntry:\n    requests.get(sys.argv[1] + '/api/v2/accounts/1/jobs/1/', timeout=5)\nexcept " \
       "Exception:\n    pass\n"


def first_request_ms(python_args: list[str], env_extra: dict[str, str], bare: bool = False) -> float:
    """Spawn entrypoint.py in action mode (or, `bare`, a script that only imports requests and sends one GET)
    against a loopback socket; time from spawn to the request's bytes."""
    with socket.socket() as server, tempfile.TemporaryDirectory() as folder:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        files = {name: Path(folder) / name.lower() for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}
        for path in files.values():
            path.write_text("")
        env = {"PATH": os.environ.get("PATH", ""), "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": folder,
               "INPUT_DBT_CLOUD_URL": f"http://127.0.0.1:{port}", "INPUT_DBT_CLOUD_TOKEN": "t",
               "INPUT_DBT_CLOUD_ACCOUNT_ID": "1", "INPUT_DBT_CLOUD_JOB_ID": "1", "INPUT_TIMEOUT": "5s",
               "INPUT_API_TIMEOUT": "1", **{k: str(v) for k, v in files.items()}, **env_extra}
        started = time.perf_counter()
        command = ([*python_args, "-c", BARE, f"http://127.0.0.1:{port}"] if bare
                   else [*python_args, str(ROOT / "entrypoint.py")])
        process = subprocess.Popen(command, env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            connection, _ = server.accept()
            with connection:
                connection.recv(1)
                elapsed = (time.perf_counter() - started) * 1000
        finally:
            process.kill()
            process.wait()
        return elapsed


def python_startup_ms(python_args: list[str], env_extra: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([*python_args, "-c", "pass"], env={"PATH": os.environ.get("PATH", ""), **env_extra}, check=True)
    return (time.perf_counter() - started) * 1000


def import_profile(python_args: list[str], env_extra: dict[str, str], top: int = 12) -> list[tuple[str, float]]:
    result = subprocess.run([*python_args, "-X", "importtime", "-c", "import dbtgate.cli"], capture_output=True,
                            text=True, env={"PATH": os.environ.get("PATH", ""), **env_extra}, check=True)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        rows.append((name, int(cumulative) / 1000))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows[:top]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.coldstart")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    site_packages = sysconfig.get_paths()["purelib"]
    setups = {
        "development install (.venv, editable)": ([sys.executable], {}),
        "container layout (PYTHONPATH, no site hooks)": ([sys.executable, "-S"],
                                                         {"PYTHONPATH": f"{site_packages}:{ROOT}",
                                                          "PYTHONUNBUFFERED": "1"}),
    }
    report: dict[str, dict[str, object]] = {}
    for name, (python_args, env_extra) in setups.items():
        first_request_ms(python_args, env_extra)  # warm the file cache once
        first_request_ms(python_args, env_extra, bare=True)
        # Side by side, alternating, so both see the same machine load.
        times, bare = [], []
        for _ in range(args.repeat):
            times.append(first_request_ms(python_args, env_extra))
            bare.append(first_request_ms(python_args, env_extra, bare=True))
        times.sort()
        startup = statistics.median(python_startup_ms(python_args, env_extra) for _ in range(5))
        report[name] = {"median_ms": statistics.median(times), "min_ms": times[0], "max_ms": times[-1],
                        "bare_requests_ms": statistics.median(bare),
                        "ratio": statistics.median(times) / statistics.median(bare),
                        "python_startup_ms": startup, "imports": import_profile(python_args, env_extra)}
    lines = ["# Cold start", "", "Generated by `python -m benchmarks.coldstart`; do not edit by hand.", "",
             f"From process start to the first HTTP request of the action (the job lookup), {args.repeat} runs "
             f"each after one warm-up, on this machine ({os.cpu_count()} cores), alternating with a bare script that "
             "only imports `requests` and sends one GET (the floor for any Python client). Targets: under "
             f"{TARGET_MS:g} ms, and within {RATIO_TARGET:g}× the bare script.", "",
             "| Setup | median | min | max | bare `import requests` + GET | ratio | bare `python -c pass` | "
             "targets |", "|---|---|---|---|---|---|---|---|"]
    for name, row in report.items():
        met = ("met" if float(row["median_ms"]) < TARGET_MS  # type: ignore[arg-type]
               and float(row["ratio"]) <= RATIO_TARGET else "NOT met")  # type: ignore[arg-type]
        lines.append(f"| {name} | {row['median_ms']:.0f} ms | {row['min_ms']:.0f} ms | {row['max_ms']:.0f} ms | "
                     f"{row['bare_requests_ms']:.0f} ms | {row['ratio']:.2f}× | {row['python_startup_ms']:.0f} ms | "
                     f"{met} |")
    lines += ["", "Heaviest imports of `dbtgate.cli` (cumulative, `python -X importtime`, container layout):", "",
              "| Module | ms |", "|---|---|"]
    container = list(report.values())[-1]
    lines += [f"| `{module}` | {ms:.1f} |" for module, ms in container["imports"]]  # type: ignore[attr-defined]
    lines += ["", "What is kept off the path to the first request: structlog (imported on the first log line, ~45 "
              "ms with the asyncio it pulls in), PyYAML (only for `steps_override` given as a `[...]` list), the "
              "emulator, argparse's help formatting, artifacts and summary rendering run after the run ends. What "
              "remains is mostly `requests` and its urllib3 stack, which the first request needs.", ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "coldstart.md").write_text("\n".join(lines), "utf-8")
    (RESULTS / "coldstart.json").write_text(json.dumps(report, indent=1), "utf-8")
    for name, row in report.items():
        print(f"{name}: median {row['median_ms']:.0f} ms, bare requests {row['bare_requests_ms']:.0f} ms "
              f"({row['ratio']:.2f}x; python alone {row['python_startup_ms']:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
