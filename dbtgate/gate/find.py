"""How the gate gets the run it decides on, when it does not trigger one: the job by its name, and the job's
latest run (for a commit or pull request, and no older than `max_age`).

Triggering (exactly once, adopting a run whose answer was lost, reusing one in flight) lives in trigger.py;
waiting in watch/watcher.py.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from dbtgate.clock import Clock
from dbtgate.cloud.interface import CloudApi
from dbtgate.cloud.models import Job, Run, RunStatus
from dbtgate.config import MIN_SHA_PREFIX, GateConfig
from dbtgate.errors import ConfigError
from dbtgate.watch.progress import format_seconds

JOB_PAGE = 100
MAX_JOB_PAGES = 50        # 5,000 jobs: past that the account needs project_id/environment_id to narrow it
RUN_PAGE = 100
MAX_RUN_PAGES = 3         # how far back to look for a commit's run: its 300 newest runs
APPEAR_POLL = 30.0        # how often to look for a run that has not appeared yet


def same_commit(one: str, other: str) -> bool:
    """The one rule for commits: equal, or one a prefix of the other of at least MIN_SHA_PREFIX characters (a
    short sha names its full form; "a" names nothing but "a")."""
    one, other = one.strip().lower(), other.strip().lower()
    if not one or not other:
        return False
    if one == other:
        return True
    return min(len(one), len(other)) >= MIN_SHA_PREFIX and (one.startswith(other) or other.startswith(one))


@dataclass(frozen=True)
class LatestRunQuery:
    job_id: int
    git_sha: str | None = None
    pull_request_id: int | None = None

    @classmethod
    def for_config(cls, job_id: int, config: GateConfig) -> LatestRunQuery:
        trigger = config.trigger
        return cls(job_id, trigger.git_sha, trigger.github_pull_request_id or trigger.gitlab_merge_request_id or
                   trigger.azure_pull_request_id or trigger.non_native_pull_request_id)

    def matches(self, run: Run) -> bool:
        if run.job_id != self.job_id:
            return False
        if self.git_sha:
            # A short sha matches its full form either way, but only from 7 characters: "a" matches nothing.
            shas = {run.git_sha, str(run.trigger_fields.get("git_sha") or "")}
            if not any(same_commit(sha, self.git_sha) for sha in shas):
                return False
        if self.pull_request_id is not None:
            ids = {run.trigger_fields.get(key) for key in ("github_pull_request_id", "gitlab_merge_request_id",
                                                             "azure_pull_request_id", "non_native_pull_request_id")}
            if self.pull_request_id not in ids:
                return False
        return True

    def describe(self) -> str:
        what = [f"commit {self.git_sha[:12]}"] if self.git_sha else []
        what += [f"pull request {self.pull_request_id}"] if self.pull_request_id is not None else []
        return f"job {self.job_id}" + (f" for {' and '.join(what)}" if what else "")


def find_job_by_name(client: CloudApi, name: str, *, project_id: int | None, environment_id: int | None,
                     deadline: float) -> Job:
    """The one job with exactly this name (in the project/environment when given), reading every page."""
    jobs: list[Job] = []
    for page in range(MAX_JOB_PAGES):
        batch = client.list_jobs(deadline=deadline, project_id=project_id, environment_id=environment_id,
                                 limit=JOB_PAGE, offset=page * JOB_PAGE)
        jobs.extend(batch)
        if len(batch) < JOB_PAGE:  # the page as dbt Cloud sent it: a short page is the last one
            break
    else:
        raise ConfigError(f"input `dbt_cloud_job_name`: the account has more than {MAX_JOB_PAGES * JOB_PAGE} "
                             "jobs; narrow the search with dbt_cloud_project_id / dbt_cloud_environment_id, or set "
                             "dbt_cloud_job_id.")
    # Narrowed here, not by trusting the server's filters: a list that ignores them must not offer another project's
    # job of the same name.
    jobs = [job for job in jobs if project_id in (None, job.project_id) and environment_id in (None,
                                                                                               job.environment_id)]
    return pick_job(jobs, name, project_id=project_id, environment_id=environment_id)


def pick_job(jobs: list[Job], name: str, *, project_id: int | None = None,
             environment_id: int | None = None) -> Job:
    """Exact match only: a pipeline must never gate on a job that merely looks like the one it named."""
    where = "".join([f" in project {project_id}" if project_id is not None else "",
                     f" in environment {environment_id}" if environment_id is not None else ""])
    found = [job for job in jobs if job.name == name]
    if len(found) == 1:
        return found[0]
    if found:
        candidates = "; ".join(f"id {job.id} (project {job.project_id}, environment {job.environment_id})"
                               for job in found)
        raise ConfigError(f"input `dbt_cloud_job_name`: {len(found)} jobs{where} are named {name!r}: "
                             f"{candidates}. Set dbt_cloud_job_id to the one you mean, or narrow the search with "
                             "dbt_cloud_project_id / dbt_cloud_environment_id.")
    close = difflib.get_close_matches(name, sorted({job.name for job in jobs}), n=5, cutoff=0.5)
    hint = (f" The closest names: {', '.join(repr(c) for c in close)}." if close else
            f" The account has {len(jobs)} jobs{where}; none is close.")
    raise ConfigError(f"input `dbt_cloud_job_name`: no job{where} is named exactly {name!r}.{hint} Names are "
                         "matched exactly, case and spaces included.")


def find_latest_run(client: CloudApi, query: LatestRunQuery, *, deadline: float) -> Run | None:
    """The newest run of the job that matches the query (any status), or None."""
    for page in range(MAX_RUN_PAGES):
        runs = client.list_runs(query.job_id, deadline=deadline, limit=RUN_PAGE, offset=page * RUN_PAGE,
                                include=("trigger", "job"))
        # Newest first, whatever order the server kept: by creation time, then id.
        for run in sorted(runs, key=lambda r: (r.created_at is not None, r.created_at, r.id), reverse=True):
            if query.matches(run):
                return run
        if len(runs) < RUN_PAGE or (query.git_sha is None and query.pull_request_id is None):
            break
    return None


def wait_for_latest_run(client: CloudApi, clock: Clock, query: LatestRunQuery, *, deadline: float,
                        interval: float, emit: Callable[[str], None]) -> Run | None:
    """The latest matching run; when there is none yet (dbt Cloud's own CI job starts on its own after a push),
    look again until one appears or the deadline passes (None)."""
    said = False
    while clock.monotonic() < deadline:
        run = find_latest_run(client, query, deadline=deadline)
        if run is not None:
            return run
        if not said:
            emit(f"No run of {query.describe()} yet; waiting for one to appear (dbtgate triggers nothing with "
                 "latest_run).")
            said = True
        clock.sleep(min(max(interval, 1.0), APPEAR_POLL, max(0.0, deadline - clock.monotonic())))
    return None


def staleness(run: Run, max_age: float, now: datetime) -> str:
    """Why the run is too old to gate on ("" when it is fresh): it must have finished — or, still going, started
    (or been created) — within `max_age` of `now`."""
    if run.is_terminal:
        moment, what = run.finished_at, "finished"
    elif run.status is RunStatus.QUEUED:
        moment, what = run.created_at, "was queued"
    else:
        moment, what = run.started_at or run.created_at, "started"
    moment = moment or run.created_at
    if moment is None:
        return "dbt Cloud gave no time for it, so its age is unknown"  # fail closed: never gate on an unknown age
    age = (now - moment).total_seconds()
    if age <= max_age:
        return ""
    return f"it {what} {format_seconds(age)} ago, more than max_age ({format_seconds(max_age)})"
