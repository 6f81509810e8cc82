"""Every input of dbtgate, declared once: its name, what it means, its kind, its group, its default, its flag and
the environment variables that stand in for it.

From this one table come the action's inputs (action.yml, generated), the CLI's flags and their help (cli.py), the
Python API's keyword arguments (api.py), README's input table, and the defaults parse_config falls back to.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_URL = "https://cloud.getdbt.com"


class Kind(StrEnum):
    """How a value is written: what the CLI offers (a switch, a repeatable flag) and what the parser expects."""

    TEXT = "text"
    SECRET = "secret"
    ID = "id"
    BOOL = "bool"            # true/false, with a default
    AUTO_BOOL = "auto_bool"  # true/false, empty means "dbtgate decides"
    NUMBER = "number"
    DURATION = "duration"
    SIZE = "size"
    LINES = "lines"          # one value per line (a repeatable flag on the CLI)


class Group(StrEnum):
    CREDENTIALS = "credentials"
    WHAT_TO_RUN = "what to run"
    OVERRIDES = "run overrides"
    WAITING = "waiting"
    REPORTING = "reporting"


# Which CLI commands take an input: `run` triggers (or finds) a run, `wait` waits on one given by RUN_ID;
# `status` and `cancel` take the credentials only.
CONNECT = ("run", "wait", "status", "cancel")
GATE = ("run", "wait")
RUN = ("run",)


@dataclass(frozen=True)
class InputSpec:
    name: str
    description: str
    default: str = ""
    required: bool = False
    cli_flag: str | None = None     # None: derived from the name (--name-with-dashes)
    env_vars: tuple[str, ...] = ()  # fallbacks for the CLI and the standalone container
    kind: Kind = Kind.TEXT
    group: Group = Group.WHAT_TO_RUN
    commands: tuple[str, ...] = RUN  # the CLI commands that take it as a flag
    metavar: str = ""               # the CLI's name for the value, when a boolean takes another word too

    @property
    def flag(self) -> str:
        return self.cli_flag or "--" + self.name.replace("_", "-")


INPUTS: tuple[InputSpec, ...] = (
    InputSpec("dbt_cloud_url", "Your dbt Cloud access URL, e.g. https://ab123.us1.dbt.com (Account settings → "
              "Account information). The legacy https://cloud.getdbt.com answers 401 for accounts that moved.",
              DEFAULT_URL, cli_flag="--url", env_vars=("DBT_CLOUD_URL", "DBT_CLOUD_HOST"),
              kind=Kind.TEXT, group=Group.CREDENTIALS, commands=CONNECT),
    InputSpec("dbt_cloud_token", "API token: a service token with Job Admin (or a personal access token). Pass it "
              "from a secret.", required=True, cli_flag="--token", env_vars=("DBT_CLOUD_API_TOKEN",),
              kind=Kind.SECRET, group=Group.CREDENTIALS, commands=CONNECT),
    InputSpec("dbt_cloud_account_id", "dbt Cloud account id (the number after /deploy/ in dbt Cloud URLs).",
              required=True, cli_flag="--account-id", env_vars=("DBT_CLOUD_ACCOUNT_ID",),
              kind=Kind.ID, group=Group.CREDENTIALS, commands=CONNECT),
    InputSpec("dbt_cloud_job_id", "Id of the job to trigger (or dbt_cloud_job_name; neither is needed with run_id).",
              cli_flag="--job-id", env_vars=("DBT_CLOUD_JOB_ID",),
              kind=Kind.ID, group=Group.WHAT_TO_RUN, commands=RUN),
    InputSpec("dbt_cloud_job_name", "The job's exact name, instead of its id: several jobs with that name (narrow "
              "with dbt_cloud_project_id / dbt_cloud_environment_id) or none is bad input, listing the candidates.",
              cli_flag="--job-name", env_vars=("DBT_CLOUD_JOB_NAME",),
              kind=Kind.TEXT, group=Group.WHAT_TO_RUN, commands=RUN),
    InputSpec("dbt_cloud_project_id", "With dbt_cloud_job_name: only jobs of this project.",
              cli_flag="--project-id", env_vars=("DBT_CLOUD_PROJECT_ID",),
              kind=Kind.ID, group=Group.WHAT_TO_RUN, commands=RUN),
    InputSpec("dbt_cloud_environment_id", "With dbt_cloud_job_name: only jobs of this environment.",
              cli_flag="--environment-id", env_vars=("DBT_CLOUD_ENVIRONMENT_ID",),
              kind=Kind.ID, group=Group.WHAT_TO_RUN, commands=RUN),
    InputSpec("run_id", "Wait on this existing run instead of triggering a new one (e.g. one started earlier "
              "with wait_for_job: false).", cli_flag="--run-id",
              kind=Kind.ID, group=Group.WHAT_TO_RUN, commands=()),
    InputSpec("cause", "Reason shown in dbt Cloud (at most 236 characters are kept). Default: built from the "
              "repository, workflow run and commit.",
              kind=Kind.TEXT, group=Group.OVERRIDES, commands=RUN),
    InputSpec("git_sha", "Git commit to check out for the run.",
              kind=Kind.TEXT, group=Group.OVERRIDES, commands=RUN),
    InputSpec("git_branch", "Git branch to check out for the run.",
              kind=Kind.TEXT, group=Group.OVERRIDES, commands=RUN),
    InputSpec("github_pull_request_id", "Pull request number; makes the run a CI run in dbt Cloud. Set at most one "
              "of the four pull/merge request ids.",
              kind=Kind.ID, group=Group.OVERRIDES, commands=RUN),
    InputSpec("gitlab_merge_request_id", "GitLab merge request id (IID), for a project connected through GitLab.",
              kind=Kind.ID, group=Group.OVERRIDES, commands=RUN),
    InputSpec("azure_pull_request_id", "Azure DevOps pull request id, for a project connected through Azure DevOps.",
              kind=Kind.ID, group=Group.OVERRIDES, commands=RUN),
    InputSpec("non_native_pull_request_id", "Pull request id for a git provider dbt Cloud has no native "
              "integration with.",
              kind=Kind.ID, group=Group.OVERRIDES, commands=RUN),
    InputSpec("schema_override", "Override the target schema, e.g. dbt_pr_123 for pull request 123.",
              kind=Kind.TEXT, group=Group.OVERRIDES, commands=RUN),
    InputSpec("dbt_version_override", "Override the dbt version of the job.",
              kind=Kind.TEXT, group=Group.OVERRIDES, commands=RUN),
    InputSpec("threads_override", "Override the number of threads (1 to 1024).",
              kind=Kind.NUMBER, group=Group.OVERRIDES, commands=RUN),
    InputSpec("target_name_override", "Override target.name.",
              kind=Kind.TEXT, group=Group.OVERRIDES, commands=RUN),
    InputSpec("generate_docs_override", "Override whether the run generates docs (true/false).",
              kind=Kind.AUTO_BOOL, group=Group.OVERRIDES, commands=RUN),
    InputSpec("timeout_seconds_override", "Override dbt Cloud's own timeout for the run, in whole seconds "
              "(0: no timeout).",
              kind=Kind.NUMBER, group=Group.OVERRIDES, commands=RUN),
    InputSpec("steps_override", "Replace the job's steps: a YAML list or one dbt command per line.",
              kind=Kind.LINES, group=Group.OVERRIDES, commands=RUN),
    InputSpec("rerun_attempts", "When the run ends in error and dbt Cloud can retry it, rerun it from the point of "
              "failure up to this many times (within timeout). Cancelled runs are never retried.", "0",
              kind=Kind.NUMBER, group=Group.WAITING, commands=GATE),
    InputSpec("reuse_existing_run", "If a run of the job is already queued or running and matches what this gate "
              "would trigger (same git_sha, git_branch and overrides, where given), wait on it instead of queueing "
              "another.", "false",
              kind=Kind.BOOL, group=Group.WHAT_TO_RUN, commands=RUN),
    InputSpec("latest_run", "Trigger nothing: gate on the job's latest run — wait for it if it is in flight, "
              "decide by its outcome if it has finished. With git_sha (or a pull request id), the latest run for "
              "that commit, waiting within timeout for one to appear (e.g. dbt Cloud's own CI run).", "false",
              kind=Kind.BOOL, group=Group.WHAT_TO_RUN, commands=RUN),
    InputSpec("max_age", "With latest_run: the run must have finished (or started, if still running) within this "
              "long, e.g. 26h; otherwise the outcome is stale.",
              kind=Kind.DURATION, group=Group.WHAT_TO_RUN, commands=RUN),
    InputSpec("fail_fast", "At the first failed model or test, fail now instead of waiting for the end. true: "
              "dbtgate follows the running step's log and cancels the run (for a run this gate did not trigger, "
              "only with cancel_on_timeout: true). dbt: the run is triggered with dbt's own --fail-fast added to "
              "the job's build, run, test, seed and snapshot commands (through steps_override), so dbt stops "
              "itself and dbtgate only polls the run's status: fewer bytes read, nothing to cancel.",
              "false",
              kind=Kind.BOOL, group=Group.WAITING, commands=GATE, metavar="{true,false,dbt}"),
    InputSpec("wait_for_job", "Wait for the run to finish. false: trigger, set run_id, and return at once.",
              "true", cli_flag="--wait",
              kind=Kind.BOOL, group=Group.WAITING, commands=RUN),
    InputSpec("failure_on_error", "Fail the step when the run does not succeed. false: report the outcome in "
              "the outputs and exit 0.", "true", cli_flag="--fail-on-error",
              kind=Kind.BOOL, group=Group.REPORTING, commands=GATE),
    InputSpec("interval", "Longest time between two polls, in seconds. dbtgate polls more often right after the "
              "trigger and as the run nears its end (estimated from its progress and the job's history). At "
              "least 1s: faster polling only spends dbt Cloud's rate limit.", "60",
              kind=Kind.DURATION, group=Group.WAITING, commands=GATE),
    InputSpec("api_timeout", "Timeout of one HTTP request to dbt Cloud: 30s, 5000ms, or a bare number of seconds "
              "from 1 to 300. A bare number of 1000 or more is read as milliseconds, as in "
              "dbt-labs/dbt-cloud-job-action (with a warning).", "30",
              kind=Kind.DURATION, group=Group.CREDENTIALS, commands=CONNECT),
    InputSpec("timeout", "The longest the gate waits, retries and queueing included: seconds or a duration "
              "such as 45m, 2h, 1h30m (1s to 7d).", "2h",
              kind=Kind.DURATION, group=Group.WAITING, commands=GATE),
    InputSpec("cancel_on_timeout", "Cancel the dbt Cloud run when the gate gives up waiting, so no warehouse "
              "money burns for a pipeline that already failed. Empty means: yes for a run this gate triggered, no "
              "for a run given by run_id.",
              kind=Kind.AUTO_BOOL, group=Group.WAITING, commands=GATE),
    InputSpec("cancel_on_interrupt", "Cancel the dbt Cloud run when the workflow is cancelled (SIGINT/SIGTERM). "
              "Empty means: yes for a run this gate triggered, no for a run given by run_id.",
              kind=Kind.AUTO_BOOL, group=Group.WAITING, commands=GATE),
    InputSpec("allow_insecure_http", "Allow plain http:// to a host that is not loopback (never for real "
              "tokens).", "false",
              kind=Kind.BOOL, group=Group.CREDENTIALS, commands=CONNECT),
    InputSpec("get_artifacts", "Download run_results.json and manifest.json into artifacts_dir.", "true",
              kind=Kind.BOOL, group=Group.REPORTING, commands=GATE),
    InputSpec("artifacts_dir", "Where artifacts go, relative to the workspace (no `..`; an absolute path "
              "must lie inside the workspace).", "target",
              kind=Kind.TEXT, group=Group.REPORTING, commands=GATE),
    InputSpec("fetch_catalog", "Also download catalog.json (runs that generate docs).", "false",
              kind=Kind.BOOL, group=Group.REPORTING, commands=GATE),
    InputSpec("max_artifact_size", "The largest artifact dbtgate downloads (streamed to disk), e.g. 500MB or 2GB; "
              "a larger one is reported and skipped.", "1GB",
              kind=Kind.SIZE, group=Group.REPORTING, commands=GATE),
    InputSpec("artifacts", "More artifact paths to download, one per line (e.g. compiled/...).",
              cli_flag="--artifact",
              kind=Kind.LINES, group=Group.REPORTING, commands=GATE),
    InputSpec("junit_xml", "Also write the run's nodes as JUnit XML to this file, relative to the workspace (like "
              "artifacts_dir), for GitLab's artifacts:reports:junit, Azure DevOps, Jenkins or CircleCI: one testcase "
              "per node of run_results.json, and one for the run itself.",
              kind=Kind.TEXT, group=Group.REPORTING, commands=GATE),
    InputSpec("project_dir", "Folder of the dbt project in the repository, so annotations point at the right "
              "files (e.g. transform/).", "",
              kind=Kind.TEXT, group=Group.REPORTING, commands=GATE),
)
PULL_REQUEST_INPUTS = ("github_pull_request_id", "gitlab_merge_request_id", "azure_pull_request_id",
                       "non_native_pull_request_id")
INPUT_NAMES = tuple(spec.name for spec in INPUTS)
SPECS = {spec.name: spec for spec in INPUTS}
