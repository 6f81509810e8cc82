"""`dbtgate demo`: start the emulator in-process and gate four jobs end to end, the way a workflow would: one that
passes with a warning, one whose test fails, a Fusion job whose model fails, and one whose docs step comes last."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from dbtgate.app import execute
from dbtgate.config import parse_config
from dbtgate.emulator import Emulator
from dbtgate.github import Workflow
from dbtgate.logs import Redactor, configure

DEMO_JOBS = ((1, 0, "a job that succeeds (with one warning)"), (2, 1, "a job whose test fails"),
             (6, 1, "a Fusion job (dbt 2.0) whose model fails"),
             (7, 0, "a job whose last step generates docs: its warning still reported"))


def run_demo(out: Path, stdout: TextIO, stderr: TextIO) -> int:
    out.mkdir(parents=True, exist_ok=True)
    surprises = 0
    with Emulator() as emulator:
        stderr.write(f"Started the dbt Cloud emulator at {emulator.url} "
                     f"(1 real second = {emulator.scenario.time_scale:g} emulated seconds)\n\n")
        for job_id, expected_exit, what in DEMO_JOBS:
            folder = out / f"job-{job_id}"
            folder.mkdir(parents=True, exist_ok=True)
            summary, outputs = folder / "summary.md", folder / "outputs.txt"
            for file in (summary, outputs):
                file.write_text("")
            stderr.write(f"=== Gating job {job_id}: {what} ===\n")
            raw = {"dbt_cloud_url": emulator.url, "dbt_cloud_token": emulator.token,
                   "dbt_cloud_account_id": str(emulator.account_id), "dbt_cloud_job_id": str(job_id),
                   "cause": "dbtgate demo", "interval": "1", "timeout": "5m", "artifacts_dir": str(folder / "target")}
            config = parse_config(raw, {})
            redactor = configure(stderr, redactor=Redactor([emulator.token]))
            code = execute(config, {}, Workflow(stderr, github=False), redactor, summary_file=str(summary),
                           output_file=str(outputs))
            verdict = "as expected" if code == expected_exit else f"UNEXPECTED (expected {expected_exit})"
            stderr.write(f"--> exit code {code} ({verdict}). Outputs: {outputs}  Summary: {summary}\n\n")
            surprises += code != expected_exit
            stdout.write(f"job {job_id}: exit {code}\n")
    stderr.write(f"Done. Open {out}/job-2/summary.md to see what a failing run's job summary looks like, and "
                 f"{out}/job-6/summary.md for a failing Fusion run.\n")
    return 0 if surprises == 0 else 1
