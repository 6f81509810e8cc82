"""dbt Cloud's Administrative API v2: its endpoints, envelopes, retries within each call's deadline, and errors
that say what to do.

When to retry is decided in retry.py (pure); the bytes travel through transport.py; answers become models in
models.py. `connect(config, clock)` is the one way a client is made from the user's inputs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import requests

from dbtgate.clock import Clock
from dbtgate.cloud.interface import RUN_INCLUDE
from dbtgate.cloud.models import Job, Run, RunStep
from dbtgate.cloud.retry import Attempt, AttemptFailure, RetryPolicy, Verdict, classify
from dbtgate.cloud.transport import Response, Sink, Transport
from dbtgate.config import GateConfig
from dbtgate.errors import AmbiguousTrigger, ApiError, ApiErrorKind, DeadlineExceeded
from dbtgate.escape import is_plain_http_url
from dbtgate.logs import get_logger

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
        self._transport = Transport(session)
        self._rate_limited_at: float | None = None
        self._run_jobs: dict[int, int] = {}   # run id → its job, as first seen
        # Body bytes read from dbt Cloud by this client, failed attempts and artifacts included: the watcher reads
        # step logs only while the bytes they cost stay within its budget, and the benchmarks report it.
        self.bytes_received = 0

    def rate_limited_recently(self, window: float = 300.0) -> bool:
        """True within `window` seconds of a 429: dbt Cloud's rate limit cools down for five minutes."""
        return self._rate_limited_at is not None and self.clock.monotonic() - self._rate_limited_at < window

    # ---- endpoints ----------------------------------------------------------------------------------------
    def get_job(self, job_id: int, *, deadline: float) -> Job:
        data = self._call("GET", f"jobs/{job_id}/", what=f"job {job_id}", deadline=deadline,
                          validate=_object_with_id(job_id, "job"))
        return Job.from_api(data)

    def trigger_run(self, job_id: int, body: dict[str, Any], *, deadline: float) -> Run:
        """POST the trigger once. Any answer that does not identify a run of this job is `AmbiguousTrigger`: the run
        may exist, and only the caller's marker can find it."""
        data = self._call("POST", f"jobs/{job_id}/run/", json_body=body, idempotent=False, what=f"job {job_id}",
                          deadline=deadline, validate=_new_run_of(job_id))
        return self._run(data)

    def retry_run(self, run_id: int, *, deadline: float) -> Run:
        """POST runs/{id}/retry/: retry *that* run from its point of failure (not the job's latest run)."""
        data = self._call("POST", f"runs/{run_id}/retry/", json_body={}, idempotent=False, what=f"run {run_id}",
                          deadline=deadline, validate=_new_run_of(None))
        return self._run(data)

    def get_run(self, run_id: int, include: Sequence[str] = RUN_INCLUDE, *, deadline: float,
                not_found_grace_until: float | None = None) -> Run:
        params = {"include_related": json.dumps(list(include))} if include else None
        data = self._call("GET", f"runs/{run_id}/", params=params, what=f"run {run_id}", deadline=deadline,
                          not_found_grace_until=not_found_grace_until,
                          validate=_object_with_id(run_id, "run", job_of=self._run_jobs.get(run_id)))
        return self._run(data)

    def get_run_step(self, step_id: int, *, deadline: float) -> RunStep:
        """GET steps/{id}/: one step of a run with its log (the run's other steps' logs are not sent): what following
        the running step costs."""
        data = self._call("GET", f"steps/{step_id}/", what=f"run step {step_id}", deadline=deadline,
                          validate=_object_with_id(step_id, "run step"))
        return RunStep.from_api(data)

    @property
    def wire_bytes_received(self) -> int:
        """Bytes as the network carried them (gzip-compressed when dbt Cloud compressed them)."""
        return self._transport.wire_bytes

    def list_jobs(self, *, deadline: float, project_id: int | None = None, environment_id: int | None = None,
                  limit: int = 100, offset: int = 0) -> list[Job]:
        """One page of the account's jobs, as dbt Cloud sent it (asked to narrow by project and environment: the
        caller checks, since a server may ignore its filters)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset, "order_by": "id"}
        if project_id is not None:
            params["project_id"] = project_id
        if environment_id is not None:
            params["environment_id"] = environment_id
        data = self._call("GET", "jobs/", params=params, what="the job list", deadline=deadline,
                          validate=lambda d: None if isinstance(d, list) else "the job list is not a list")
        jobs = []
        for item in data:
            try:
                jobs.append(Job.from_api(item))
            except (ValueError, AttributeError):
                continue
        return jobs

    def list_runs(self, job_id: int, *, deadline: float, limit: int = 10, statuses: Sequence[int] | None = None,
                  include: Sequence[str] = ("trigger",), offset: int = 0) -> list[Run]:
        """The job's newest runs. Runs of other jobs, or in other statuses than asked, are dropped: a list that
        ignores its filters must not hand the gate a run it did not ask for."""
        params: dict[str, Any] = {"job_definition_id": job_id, "order_by": "-created_at", "limit": limit}
        if offset:
            params["offset"] = offset
        if statuses:
            params["status__in"] = json.dumps(list(statuses))
        if include:
            params["include_related"] = json.dumps(list(include))
        data = self._call("GET", "runs/", params=params, what=f"runs of job {job_id}", deadline=deadline,
                          validate=lambda d: None if isinstance(d, list) else "the run list is not a list")
        runs = []
        for item in data:
            try:
                run = self._run(item) if isinstance(item, dict) else None
            except ValueError:
                run = None
            if run is not None and run.job_id == job_id and (not statuses or run.status_code in statuses):
                runs.append(run)
        return runs

    def account_ids(self, *, deadline: float) -> list[int]:
        """The accounts this token can use (GET /api/v2/accounts/), to tell a wrong account id from a wrong job."""
        data = self._call("GET", "/accounts/", what="the accounts of this token", deadline=deadline,
                          validate=lambda d: None if isinstance(d, list) else "the account list is not a list")
        return [item["id"] for item in data if isinstance(item, dict) and isinstance(item.get("id"), int)
                and not isinstance(item.get("id"), bool)]

    def cancel_run(self, run_id: int, *, deadline: float) -> Run:
        # Cancelling twice is harmless, so the cancel POST may be retried like a read.
        data = self._call("POST", f"runs/{run_id}/cancel/", json_body={}, idempotent=True, what=f"run {run_id}",
                          deadline=deadline, validate=_object_with_id(run_id, "run"))
        return self._run(data)

    def download_artifact(self, run_id: int, path: str, sink: Sink, *, deadline: float, max_bytes: int,
                          step: int | None = None) -> int | None:
        """Stream an artifact into the file `sink()` opens (called again on a retry, so it must truncate); its
        size, or None when the run did not produce it (404: not an error). More than `max_bytes` is an error."""
        params = {"step": step} if step is not None else None
        try:
            size = self._call("GET", f"runs/{run_id}/artifacts/{path}", params=params, sink=sink,
                              what=f"artifact {path} of run {run_id}", deadline=deadline, limit=max_bytes)
        except ApiError as failure:
            if failure.status == 404:
                return None
            raise
        return int(size)

    def _run(self, data: dict[str, Any]) -> Run:
        """A run with a link: when dbt Cloud leaves `href` empty (it has been seen blank) or gives something that is
        not an http(s) address on this host, build the run page's address the way dbt Cloud does."""
        run = Run.from_api(data)
        if run.job_id is not None:
            # A run never changes job: a later answer about this run that names another job is not about it.
            self._run_jobs.setdefault(run.id, run.job_id)
        if is_plain_http_url(run.href) or run.project_id is None:
            return run if is_plain_http_url(run.href) else replace(run, href="")
        return replace(run, href=f"{self.base_url}/deploy/{self.account_id}/projects/{run.project_id}/runs/{run.id}/")

    # ---- the one HTTP path --------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        if path.startswith("/"):
            return f"{self.base_url}/api/v2{path}"   # outside the account (the accounts list)
        return f"{self.base_url}/api/v2/accounts/{self.account_id}/{path}"

    def _call(self, method: str, path: str, *, what: str, deadline: float, params: dict[str, Any] | None = None,
              json_body: dict[str, Any] | None = None, idempotent: bool = True, sink: Sink | None = None,
              limit: int | None = None, not_found_grace_until: float | None = None,
              validate: Callable[[Any], str | None] | None = None) -> Any:
        """One logical call: attempts with backoff until an answer, a final failure, or the deadline.

        `validate` inspects the envelope's `data` and names what is wrong with it; a wrong answer counts as a bad
        body (retried for reads, ambiguous for a trigger) — it is never handed on as if it were right.
        """
        attempt_number = 0
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
            if attempt.status is not None and 200 <= attempt.status < 300 and sink is None:
                problem = validate(payload) if validate is not None else None
                if problem is not None:
                    attempt = Attempt(failure=AttemptFailure.BAD_BODY, detail=problem, size=attempt.size)
            verdict = classify(attempt, idempotent=idempotent)
            if verdict is Verdict.OK:
                return payload
            if (attempt.status == 404 and not_found_grace_until is not None
                    and self.clock.monotonic() < not_found_grace_until):
                verdict = Verdict.RETRY  # a brand-new run can 404 for a few seconds
            last_error = self._describe(attempt, response)
            if verdict is Verdict.AMBIGUOUS:
                raise AmbiguousTrigger(last_error)
            if verdict is Verdict.FAIL:
                raise self._failure(attempt, response, what)
            if attempt_number >= self.policy.max_attempts:
                raise ApiError(f"dbt Cloud at {self.host} kept failing for {what}: {last_error} "
                                 f"({attempt_number} attempts). Check https://status.getdbt.com and retry the "
                                 "workflow.", status=attempt.status, kind=ApiErrorKind.UNAVAILABLE)
            delay = self.policy.delay(attempt_number, attempt.retry_after, self.rand)
            remaining = deadline - self.clock.monotonic()
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
            inputs = ("input `run_id`" if what.startswith("run") else "input `dbt_cloud_job_id`"
                      if what.startswith("job") else "the ids")
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


def _object_with_id(expected: int, what: str, job_of: int | None = None) -> Callable[[Any], str | None]:
    """A validator: the answer is the `what` that was asked for (and, for a run seen before, of the same job)."""
    def check(data: Any) -> str | None:
        if not isinstance(data, dict):
            return f"no {what} object"
        found = data.get("id")
        if found != expected or isinstance(found, bool):
            return f"asked for {what} {expected}, got {what} {_short(found)}"
        job = data.get("job_definition_id", data.get("job_id"))
        if job_of is not None and job is not None and job != job_of:
            return f"{what} {expected} belongs to job {job_of}, the answer says job {_short(job)}"
        return None
    return check


def _new_run_of(job_id: int | None) -> Callable[[Any], str | None]:
    """A validator for a run that a POST created: an integer id, and (when known) the job that was triggered."""
    def check(data: Any) -> str | None:
        if not isinstance(data, dict):
            return "no run object"
        run_id = data.get("id")
        if not isinstance(run_id, int) or isinstance(run_id, bool) or run_id <= 0:
            return f"the new run has no usable id ({_short(run_id)})"
        job = data.get("job_definition_id", data.get("job_id"))
        if job_id is not None and job is not None and job != job_id:
            return f"the new run belongs to job {_short(job)}, not job {job_id}"
        return None
    return check


def _short(value: Any) -> str:
    return repr(value)[:40]




def connect(config: GateConfig, clock: Clock) -> DbtCloudClient:
    """The client for the user's inputs: the one place where one is made from them."""
    return DbtCloudClient(config.base_url, config.token, config.account_id, api_timeout=config.api_timeout,
                          clock=clock)
