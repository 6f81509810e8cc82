"""dbt Cloud's Administrative API v2: its endpoints, envelopes, retries within each call's deadline, and errors
that say what to do.

When to retry is decided in retry.py (pure); the bytes travel through transport.py; answers become models in
models.py. `connect(config, clock)` is the one way a client is made from the user's inputs.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import requests

from dbtgate.clock import Clock
from dbtgate.cloud.interface import RUN_INCLUDE
from dbtgate.cloud.models import Job, Run, RunStep, api_int
from dbtgate.cloud.retry import Attempt, AttemptFailure, RetryPolicy, Verdict, classify
from dbtgate.cloud.transport import Response, Sink, Transport
from dbtgate.config import GateConfig
from dbtgate.errors import AmbiguousTrigger, ApiError, ApiErrorKind, BadAnswer, DeadlineExceeded
from dbtgate.escape import is_plain_http_url
from dbtgate.logs import get_logger
from dbtgate.parsers import is_loopback_url

log = get_logger("dbtgate.client")

# An API answer is JSON of a few KB to a few MB (a run with its steps' logs, each cut to 1,000 lines by dbt Cloud).
# Past this, the server is broken or hostile: reading on would only cost memory.
API_BODY_LIMIT = 16 * 1024 * 1024


class DbtCloudClient:
    """Every call takes its own `deadline` (a value of `clock.monotonic()`): no request, retry or body read of that
    call outlasts it. Budgets belong to the call, so the gate's overall timeout and a short cleanup budget for a
    cancel never interfere through shared state."""

    def __init__(self, base_url: str, token: str, account_id: int, *, api_timeout: float = 30.0,
                 clock: Clock, policy: RetryPolicy | None = None, session: requests.Session | None = None,
                 rand: Callable[[], float] = random.random, max_body: int = API_BODY_LIMIT) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self.host_name = urlsplit(self.base_url).hostname or self.host
        self.account_id = account_id
        self.api_timeout = api_timeout
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rand = rand
        self.max_body = max_body
        session = session or requests.Session()
        session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json",
                                "User-Agent": "dbtgate"})
        self._transport = Transport(session, direct=is_loopback_url(self.base_url))
        self._rate_limited_at: float | None = None
        self._run_jobs: dict[int, int] = {}   # run id → its job, as first seen
        # Body bytes read from dbt Cloud by this client, failed attempts and artifacts included: the watcher reads
        # step logs only while the bytes they cost stay within its budget, and the benchmarks report it.
        self.bytes_received = 0

    def rate_limited_recently(self, window: float = 300.0) -> bool:
        """True within `window` seconds of a 429: dbt Cloud's rate limit cools down for five minutes."""
        return self._rate_limited_at is not None and self.clock.monotonic() - self._rate_limited_at < window

    # ---- endpoints ----------------------------------------------------------------------------------------
    # Each call hands `_call` a `parse` that turns the envelope's data into models (cloud/models.py) and checks
    # that the answer is about what was asked; a BadAnswer from it is a bad body, handled like any other: retried
    # for a read, ambiguous for a trigger (the run may exist: found by its marker, never triggered again blindly).
    def get_job(self, job_id: int, *, deadline: float) -> Job:
        job: Job = self._call("GET", f"jobs/{job_id}/", what=f"job {job_id}", deadline=deadline,
                              parse=lambda data: _the_job(data, job_id))
        return job

    def trigger_run(self, job_id: int, body: dict[str, Any], *, deadline: float) -> Run:
        """POST the trigger once. Any answer that does not identify a run of this job is `AmbiguousTrigger`: the run
        may exist, and only the caller's marker can find it."""
        run: Run = self._call("POST", f"jobs/{job_id}/run/", json_body=body, idempotent=False, what=f"job {job_id}",
                              deadline=deadline, parse=lambda data: _new_run(data, job_id))
        return self._run(run)

    def retry_run(self, run_id: int, *, deadline: float) -> Run:
        """POST runs/{id}/retry/: retry *that* run from its point of failure (not the job's latest run)."""
        run: Run = self._call("POST", f"runs/{run_id}/retry/", json_body={}, idempotent=False, what=f"run {run_id}",
                              deadline=deadline, parse=lambda data: _new_run(data, None))
        return self._run(run)

    def get_run(self, run_id: int, include: Sequence[str] = RUN_INCLUDE, *, deadline: float,
                not_found_grace_until: float | None = None, missing_is_final: bool = False) -> Run:
        """`not_found_grace_until`: a 404 before then is asked again (a brand-new run can 404 for a few seconds).
        `missing_is_final`: the id is the user's, so a 404 the grace could not outlast (the attempts or the time ran
        out first) is the answer — a wrong id — rather than a timeout or an outage."""
        params = {"include_related": json.dumps(list(include))} if include else None
        job_of = self._run_jobs.get(run_id)
        run: Run = self._call("GET", f"runs/{run_id}/", params=params, what=f"run {run_id}", deadline=deadline,
                              not_found_grace_until=not_found_grace_until, missing_is_final=missing_is_final,
                              parse=lambda data: _the_run(data, run_id, job_of))
        return self._run(run)

    def get_run_step(self, step_id: int, *, deadline: float) -> RunStep:
        """GET steps/{id}/: one step of a run with its log (the run's other steps' logs are not sent): what following
        the running step costs."""
        step: RunStep = self._call("GET", f"steps/{step_id}/", what=f"run step {step_id}", deadline=deadline,
                                   parse=lambda data: _the_step(data, step_id))
        return step

    @property
    def wire_bytes_received(self) -> int:
        """Bytes as the network carried them (gzip-compressed when dbt Cloud compressed them)."""
        return self._transport.wire_bytes

    def list_jobs(self, *, deadline: float, project_id: int | None = None, environment_id: int | None = None,
                  limit: int = 100, offset: int = 0) -> list[Job]:
        """One page of the account's jobs, as dbt Cloud sent it (asked to narrow by project and environment: the
        caller checks, since a server may ignore its filters). A row that is not a job is left out."""
        params: dict[str, Any] = {"limit": limit, "offset": offset, "order_by": "id"}
        if project_id is not None:
            params["project_id"] = project_id
        if environment_id is not None:
            params["environment_id"] = environment_id
        jobs: list[Job] = self._call("GET", "jobs/", params=params, what="the job list", deadline=deadline,
                                     parse=lambda data: _rows(data, Job.from_api, "the job list"))
        return jobs

    def list_runs(self, job_id: int, *, deadline: float, limit: int = 10, statuses: Sequence[int] | None = None,
                  include: Sequence[str] = ("trigger",), offset: int = 0) -> list[Run]:
        """The job's newest runs. Runs of other jobs, or in other statuses than asked, are dropped: a list that
        ignores its filters must not hand the gate a run it did not ask for. A row that is not a run (no usable
        id) is left out: one bad row must not hide the others, least of all a run this gate created."""
        params: dict[str, Any] = {"job_definition_id": job_id, "order_by": "-created_at", "limit": limit}
        if offset:
            params["offset"] = offset
        if statuses:
            params["status__in"] = json.dumps(list(statuses))
        if include:
            params["include_related"] = json.dumps(list(include))
        rows: list[Run] = self._call("GET", "runs/", params=params, what=f"runs of job {job_id}", deadline=deadline,
                                     parse=lambda data: _rows(data, Run.from_api, "the run list"))
        return [self._run(run) for run in rows
                if run.job_id == job_id and (not statuses or run.status_code in statuses)]

    def account_ids(self, *, deadline: float) -> list[int]:
        """The accounts this token can use (GET /api/v2/accounts/), to tell a wrong account id from a wrong job."""
        ids: list[int] = self._call("GET", "/accounts/", what="the accounts of this token", deadline=deadline,
                                    parse=lambda data: _rows(data, _account_id, "the account list"))
        return ids

    def cancel_run(self, run_id: int, *, deadline: float) -> Run:
        # Cancelling twice is harmless, so the cancel POST may be retried like a read.
        run: Run = self._call("POST", f"runs/{run_id}/cancel/", json_body={}, idempotent=True, what=f"run {run_id}",
                              deadline=deadline, parse=lambda data: _the_run(data, run_id, None))
        return self._run(run)

    def download_artifact(self, run_id: int, path: str, sink: Sink, *, deadline: float, max_bytes: int,
                          step: int | None = None) -> int | None:
        """Stream an artifact into the file `sink()` opens (called again on a retry, so it must truncate); its
        size, or None when the run did not produce it (404: not an error). More than `max_bytes` is an error.
        The file failing to open or write is an OSError at once, never retried: the disk is not dbt Cloud."""
        params = {"step": step} if step is not None else None
        try:
            size = self._call("GET", f"runs/{run_id}/artifacts/{path}", params=params, sink=sink,
                              what=f"artifact {path} of run {run_id}", deadline=deadline, limit=max_bytes)
        except ApiError as failure:
            if failure.status == 404:
                return None
            raise
        return int(size)

    def _run(self, run: Run) -> Run:
        """A run with a link only to the configured host: when dbt Cloud leaves `href` empty (it has been seen
        blank), gives something that is not a plain http(s) address, or an address on another host (a link in a
        trusted-looking summary or annotation must not lead elsewhere), build the run page's address the way dbt
        Cloud does — or leave it empty when the project is unknown."""
        if run.job_id is not None:
            # A run never changes job: a later answer about this run that names another job is not about it.
            self._run_jobs.setdefault(run.id, run.job_id)
        if is_plain_http_url(run.href) and _same_origin(run.href, self.base_url):
            return run
        if run.project_id is None:
            return replace(run, href="")
        return replace(run, href=f"{self.base_url}/deploy/{self.account_id}/projects/{run.project_id}/runs/{run.id}/")

    # ---- the one HTTP path --------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith("/"):
            return f"{self.base_url}/api/v2{path}"   # outside the account (the accounts list)
        return f"{self.base_url}/api/v2/accounts/{self.account_id}/{path}"

    def _call(self, method: str, path: str, *, what: str, deadline: float, params: dict[str, Any] | None = None,
              json_body: dict[str, Any] | None = None, idempotent: bool = True, sink: Sink | None = None,
              limit: int | None = None, not_found_grace_until: float | None = None, missing_is_final: bool = False,
              parse: Callable[[Any], Any] | None = None) -> Any:
        """One logical call: attempts with backoff until an answer, a final failure, or the deadline.

        `parse` turns the envelope's `data` into models, or raises BadAnswer saying what is wrong with it; a wrong
        answer counts as a bad body (retried for reads, ambiguous for a trigger) — it is never handed on as if it
        were right. Its result is what the call returns.
        """
        attempt_number = 0
        unreadable = False   # this attempt's 2xx data could not become a model
        while True:
            attempt_number += 1
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(f"the timeout ran out while calling dbt Cloud ({what})")
            attempt, response, payload = self._transport.exchange(method, self._url(path), params, json_body,
                                                                  min(self.api_timeout, remaining), sink,
                                                                  limit or self.max_body)
            self.bytes_received += attempt.size
            if attempt.status == 429:
                self._rate_limited_at = self.clock.monotonic()
            if attempt.status is not None and 200 <= attempt.status < 300 and sink is None and parse is not None:
                try:
                    payload, unreadable = parse(payload), False
                except BadAnswer as bad:
                    attempt = Attempt(failure=AttemptFailure.BAD_BODY, detail=str(bad), size=attempt.size)
                    unreadable = True
            verdict = classify(attempt, idempotent=idempotent)
            if verdict is Verdict.OK:
                return payload
            # A brand-new run can 404 for a few seconds: dbt Cloud's own 404 is asked again within the grace.
            graced = (attempt.status == 404 and not_found_grace_until is not None and _is_dbt_cloud(response)
                      and self.clock.monotonic() < not_found_grace_until)
            if graced:
                verdict = Verdict.RETRY
            last_error = self._describe(attempt, response)
            if verdict is Verdict.AMBIGUOUS:
                raise AmbiguousTrigger(last_error, answered=unreadable)
            if verdict is Verdict.FAIL:
                raise self._failure(attempt, response, what)
            delay = self.policy.delay(attempt_number, attempt.retry_after, self.rand)
            remaining = deadline - self.clock.monotonic()
            if graced and missing_is_final and (attempt_number >= self.policy.max_attempts or delay >= remaining):
                raise self._failure(attempt, response, what)      # the user's id was never seen: a wrong id
            if attempt_number >= self.policy.max_attempts:
                raise ApiError(f"dbt Cloud at {self.host} kept failing for {what}: {last_error} "
                                 f"({attempt_number} attempts). Check https://status.getdbt.com and retry the "
                                 "workflow.", status=attempt.status, kind=ApiErrorKind.UNAVAILABLE)
            if delay >= remaining:
                raise DeadlineExceeded(f"the timeout ran out while dbt Cloud was failing ({last_error})")
            log.warning("dbt Cloud request failed; retrying", what=what, error=last_error,
                        attempt=attempt_number, retry_in=round(delay, 1))
            self.clock.sleep(delay)

    def _describe(self, attempt: Attempt, response: Response | None) -> str:
        if attempt.failure is AttemptFailure.READ_TIMEOUT:
            return "no complete answer in time (api_timeout, or the time the gate had left)"
        if attempt.failure is AttemptFailure.CONNECT:
            return f"could not connect to {self.host}"
        if attempt.failure is AttemptFailure.CONNECTION_LOST:
            return "the connection closed without an answer"
        if attempt.failure is AttemptFailure.BAD_BODY:
            return f"the answer was not usable ({attempt.detail})" if attempt.detail else "the answer was not JSON"
        if attempt.failure is AttemptFailure.TOO_LARGE:
            return f"the answer was too large ({attempt.detail})"
        if attempt.failure is AttemptFailure.TLS:
            return f"the TLS handshake with {self.host} failed (certificate not trusted?)"
        if attempt.failure is AttemptFailure.NO_SUCH_HOST:
            return f"the host name {self.host_name} does not exist"
        message = _user_message(response)
        return f"HTTP {attempt.status}" + (f" {message}" if message else "")

    def _failure(self, attempt: Attempt, response: Response | None, what: str) -> ApiError:
        message = _user_message(response)
        status = attempt.status
        if attempt.failure is AttemptFailure.TOO_LARGE:
            advice = ("Raise max_artifact_size if the file is really that large." if what.startswith("artifact")
                      else "No real answer to this request is that large; check https://status.getdbt.com.")
            return ApiError(f"dbt Cloud at {self.host} sent {attempt.detail} for {what}; dbtgate stopped reading "
                              f"it to keep its memory and disk bounded. {advice}", kind=ApiErrorKind.TOO_LARGE)
        if attempt.failure is AttemptFailure.NO_SUCH_HOST:
            return ApiError(f"input `dbt_cloud_url`: the host name {self.host_name} does not exist (the DNS resolver "
                            "says so), so there is no dbt Cloud to ask. Check the URL for a typo: it is your access "
                            "URL from dbt Cloud → Account settings → Account information, e.g. "
                            "https://ab123.us1.dbt.com.", kind=ApiErrorKind.NO_SUCH_HOST)
        if status == 404 and not _is_dbt_cloud(response):
            return ApiError(f"input `dbt_cloud_url`: {self.host} answered 404 with a page that is not dbt Cloud's "
                            "API (no dbt Cloud error envelope), so it is not a dbt Cloud host. Set dbt_cloud_url to "
                            "your access URL, e.g. https://ab123.us1.dbt.com, with no path.",
                            status=404, kind=ApiErrorKind.NOT_DBT_CLOUD)
        if attempt.failure is AttemptFailure.TLS:
            return ApiError(f"Could not make a trusted TLS connection to {self.host}. If you use a private CA, "
                              "set REQUESTS_CA_BUNDLE to its certificate file.", kind=ApiErrorKind.TLS)
        if status == 401:
            return ApiError(
                f"dbt Cloud at {self.host} answered 401 {message or 'Invalid token.'} Either the token is wrong or "
                "expired, or your account is not served by this host: accounts now have their own access URL "
                "(dbt Cloud → Account settings → Account information, e.g. https://ab123.us1.dbt.com) and the "
                "legacy hosts answer 'Invalid token.' for accounts that moved. Set input `dbt_cloud_url` to your "
                "access URL and check input `dbt_cloud_token`.", status=401, kind=ApiErrorKind.AUTH)
        if status == 403:
            return ApiError(f"dbt Cloud at {self.host} refused access to {what} (403 {message}). The token is valid "
                              "but lacks permission: give input `dbt_cloud_token` a service token with the Job Admin "
                              "or Job Runner permission set for this project.", status=403, kind=ApiErrorKind.AUTH)
        if status == 404:
            # Name the input only when the request was about it: a 404 on the run list or a run step is not.
            inputs = ("input `run_id`" if re.fullmatch(r"run \d+", what) else "input `dbt_cloud_job_id`"
                      if re.fullmatch(r"job \d+", what) else "the ids")
            return ApiError(f"dbt Cloud at {self.host} found no {what} in account {self.account_id} (404 "
                            f"{message}). Check {inputs} and input `dbt_cloud_account_id`, and that the token "
                            "belongs to this account.", status=404, kind=ApiErrorKind.NOT_FOUND)
        return ApiError(f"dbt Cloud at {self.host} rejected the request for {what}: HTTP {status} {message}",
                          status=status, kind=ApiErrorKind.REJECTED)


def _is_dbt_cloud(response: Response | None) -> bool:
    """The answer has dbt Cloud's envelope ({"status": {...}, "data": ...}): it came from dbt Cloud's API."""
    return response is not None and isinstance(response.body, dict) and isinstance(response.body.get("status"), dict)


def _user_message(response: Response | None) -> str:
    """dbt Cloud's own explanation of an error, kept short (it is untrusted text and may be a whole HTML page)."""
    if response is None:
        return ""
    if isinstance(response.body, dict) and isinstance(response.body.get("status"), dict):
        status = response.body["status"]
        parts = [str(status.get("user_message") or "").strip(), str(status.get("developer_message") or "").strip()]
        fields = response.body.get("data")
        if isinstance(fields, dict) and response.status == 400:
            # A 400 names the bad fields in `data`: {"cause": ["Ensure this field has no more than 255 ..."]}.
            parts.append("; ".join(f"{key}: {' '.join(map(str, value)) if isinstance(value, list) else value}"
                                   for key, value in list(fields.items())[:5]))
        return " ".join(part for part in parts if part)[:MESSAGE_LIMIT]
    return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""


MESSAGE_LIMIT = 500


def _the_job(data: Any, job_id: int) -> Job:
    job = Job.from_api(data)
    if job.id != job_id:
        raise BadAnswer(f"asked for job {job_id}, got job {job.id}")
    return job


def _the_run(data: Any, run_id: int, job_of: int | None) -> Run:
    """The run that was asked for (and, for a run seen before, of the same job), or BadAnswer."""
    run = Run.from_api(data)
    if run.id != run_id:
        raise BadAnswer(f"asked for run {run_id}, got run {run.id}")
    if job_of is not None and run.job_id is not None and run.job_id != job_of:
        raise BadAnswer(f"run {run_id} belongs to job {job_of}, the answer says job {run.job_id}")
    return run


def _the_step(data: Any, step_id: int) -> RunStep:
    """The run step that was asked for, or BadAnswer."""
    if not isinstance(data, dict):
        raise BadAnswer("no run step object")
    step = RunStep.from_api(data)
    if step.id != step_id:
        raise BadAnswer(f"asked for run step {step_id}, got {step.id}")
    return step


def _new_run(data: Any, job_id: int | None) -> Run:
    """A run that a POST created: a usable id, and (when known) the job that was triggered."""
    run = Run.from_api(data)
    if job_id is not None and run.job_id is not None and run.job_id != job_id:
        raise BadAnswer(f"the new run belongs to job {run.job_id}, not job {job_id}")
    return run


def _account_id(data: Any) -> int:
    found = api_int(data.get("id"), low=1) if isinstance(data, dict) else None
    if found is None:
        raise BadAnswer("an account without an id")
    return found


def _rows(data: Any, parse: Callable[[Any], Any], what: str) -> list[Any]:
    """A list answer: every row that is a model; a row that is not is skipped (one row is not the answer)."""
    if not isinstance(data, list):
        raise BadAnswer(f"{what} is not a list")
    rows = []
    for item in data:
        try:
            rows.append(parse(item))
        except BadAnswer as bad:
            log.debug("a row of the list is not usable; skipped", list=what, problem=str(bad))
    return rows


def _same_origin(url: str, base_url: str) -> bool:
    one, other = urlsplit(url), urlsplit(base_url)
    return (one.scheme.lower(), (one.netloc or "").lower()) == (other.scheme.lower(), (other.netloc or "").lower())




def connect(config: GateConfig, clock: Clock) -> DbtCloudClient:
    """The client for the user's inputs: the one place where one is made from them."""
    return DbtCloudClient(config.base_url, config.token, config.account_id, api_timeout=config.api_timeout,
                          clock=clock)
