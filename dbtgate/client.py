"""dbt Cloud's Administrative API v2 over HTTP: envelopes, timeouts, retries, and errors that say what to do.

The retry decisions are pure functions (`classify`, `RetryPolicy.delay`) so they are tested without a network;
`DbtCloudClient` is the only place that talks HTTP.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import requests

from dbtgate.clock import Clock
from dbtgate.logs import get_logger
from dbtgate.models import Job, Run

log = get_logger("dbtgate.client")

RUN_INCLUDE = ("run_steps", "job", "trigger")
CONNECT_TIMEOUT = 10.0


class ApiFailure(Exception):
    """dbt Cloud could not be used: bad auth, something not found, or the API kept failing. Exit code 3."""

    def __init__(self, message: str, *, status: int | None = None, kind: str = "api") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class AmbiguousTrigger(Exception):
    """The trigger request was sent but its answer was lost: the run may or may not exist."""


class DeadlineExceeded(Exception):
    """The gate's overall timeout ran out while talking to dbt Cloud."""


@dataclass(frozen=True)
class Attempt:
    """What one HTTP attempt came to, reduced to what the retry policy needs."""

    status: int | None = None       # HTTP status, None when no response arrived
    failure: str | None = None      # connect | read_timeout | connection_lost | bad_body | tls
    retry_after: float | None = None


def classify(attempt: Attempt, *, idempotent: bool) -> str:
    """What to do after an attempt: "ok", "retry", "fail" or (for a non-idempotent POST) "ambiguous".

    A POST is retried only when it certainly did not reach dbt Cloud (no connection, or 429 which rejects it
    before work). Anything else that went wrong after sending it is ambiguous: the run may have been created.
    """
    if attempt.failure == "tls":
        return "fail"
    if attempt.failure == "connect" or attempt.status == 429:
        return "retry"
    if attempt.failure in ("read_timeout", "connection_lost", "bad_body"):
        return "retry" if idempotent else "ambiguous"
    if attempt.status is None:
        return "retry" if idempotent else "ambiguous"
    if 200 <= attempt.status < 300:
        return "ok"
    if attempt.status >= 500:
        return "retry" if idempotent else "ambiguous"
    return "fail"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring Retry-After, bounded by attempts and by the caller's deadline."""

    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    max_attempts: int = 8
    jitter: float = 0.25  # ± this fraction of the delay, so many gates do not retry in lockstep

    def delay(self, attempt_number: int, retry_after: float | None, rand: Callable[[], float]) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, 300.0)
        raw = min(self.max_delay, self.base * self.factor ** (attempt_number - 1))
        return max(0.0, raw * (1 + self.jitter * (2 * rand() - 1)))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (now if now is not None else time.time()))


@dataclass
class _Response:
    status: int
    body: Any            # parsed JSON, or None
    text: str
    headers: dict[str, str]


class DbtCloudClient:
    def __init__(self, base_url: str, token: str, account_id: int, *, api_timeout: float = 30.0,
                 clock: Clock, policy: RetryPolicy | None = None, session: requests.Session | None = None,
                 rand: Callable[[], float] = random.random) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self.account_id = account_id
        self.api_timeout = api_timeout
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rand = rand
        self.deadline: float | None = None  # monotonic; set by the gate
        self._session = session or requests.Session()
        self._session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json",
                                      "User-Agent": "dbtgate"})
        self._rate_limited_at: float | None = None

    def rate_limited_recently(self, window: float = 300.0) -> bool:
        """True within `window` seconds of a 429: dbt Cloud's rate limit cools down for five minutes."""
        return self._rate_limited_at is not None and self.clock.monotonic() - self._rate_limited_at < window

    # ---- endpoints ----------------------------------------------------------------------------------------
    def get_job(self, job_id: int) -> Job:
        data = self._call("GET", f"jobs/{job_id}/", what=f"job {job_id}")
        return Job.from_api(_expect_dict(data, "job"))

    def trigger_run(self, job_id: int, body: dict[str, Any]) -> Run:
        data = self._call("POST", f"jobs/{job_id}/run/", json_body=body, idempotent=False, what=f"job {job_id}")
        return self._run(_expect_dict(data, "run"))

    def rerun(self, job_id: int) -> Run:
        data = self._call("POST", f"jobs/{job_id}/rerun/", json_body={}, idempotent=False, what=f"job {job_id}")
        return self._run(_expect_dict(data, "run"))

    def get_run(self, run_id: int, include: Sequence[str] = RUN_INCLUDE, *,
                not_found_grace_until: float | None = None) -> Run:
        params = {"include_related": json.dumps(list(include))} if include else None
        data = self._call("GET", f"runs/{run_id}/", params=params, what=f"run {run_id}",
                          not_found_grace_until=not_found_grace_until)
        return self._run(_expect_dict(data, "run"))

    def list_runs(self, job_id: int, *, limit: int = 10, statuses: Sequence[int] | None = None,
                  include: Sequence[str] = ("trigger",)) -> list[Run]:
        params: dict[str, Any] = {"job_definition_id": job_id, "order_by": "-created_at", "limit": limit}
        if statuses:
            params["status__in"] = json.dumps(list(statuses))
        if include:
            params["include_related"] = json.dumps(list(include))
        data = self._call("GET", "runs/", params=params, what=f"runs of job {job_id}")
        if not isinstance(data, list):
            raise ApiFailure(f"dbt Cloud at {self.host} answered the run list with something that is not a list.")
        return [self._run(item) for item in data if isinstance(item, dict)]

    def cancel_run(self, run_id: int) -> Run:
        # Cancelling twice is harmless, so the cancel POST may be retried like a read.
        data = self._call("POST", f"runs/{run_id}/cancel/", json_body={}, idempotent=True, what=f"run {run_id}")
        return self._run(_expect_dict(data, "run"))

    def get_artifact(self, run_id: int, path: str, step: int | None = None) -> bytes | None:
        """The raw artifact, or None when the run did not produce it (404): that is not an error."""
        params = {"step": step} if step is not None else None
        try:
            response = self._call("GET", f"runs/{run_id}/artifacts/{path}", params=params, raw=True,
                                  what=f"artifact {path} of run {run_id}")
        except ApiFailure as failure:
            if failure.status == 404:
                return None
            raise
        assert isinstance(response, bytes)
        return response

    def _run(self, data: dict[str, Any]) -> Run:
        """A run with a link: when dbt Cloud leaves `href` empty (it has been seen blank), build the run page's
        address the way dbt Cloud does, so every message can link the run."""
        run = Run.from_api(data)
        if run.href or run.project_id is None:
            return run
        return replace(run, href=f"{self.base_url}/deploy/{self.account_id}/projects/{run.project_id}/runs/{run.id}/")

    # ---- the one HTTP path --------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.base_url}/api/v2/accounts/{self.account_id}/{path}"

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock.monotonic()

    def _call(self, method: str, path: str, *, what: str, params: dict[str, Any] | None = None,
              json_body: dict[str, Any] | None = None, idempotent: bool = True, raw: bool = False,
              not_found_grace_until: float | None = None) -> Any:
        attempt_number = 0
        while True:
            attempt_number += 1
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded(f"the timeout ran out while calling dbt Cloud ({what})")
            read_timeout = self.api_timeout if remaining is None else max(0.1, min(self.api_timeout, remaining))
            connect_timeout = min(CONNECT_TIMEOUT, read_timeout)
            attempt, response, raw_bytes = self._send(method, path, params, json_body,
                                                      (connect_timeout, read_timeout), raw)
            if attempt.status == 429:
                self._rate_limited_at = self.clock.monotonic()
            verdict = classify(attempt, idempotent=idempotent)
            if verdict == "ok":
                if raw:
                    return raw_bytes
                assert response is not None
                return response.body.get("data") if isinstance(response.body, dict) else None
            if (attempt.status == 404 and not_found_grace_until is not None
                    and self.clock.monotonic() < not_found_grace_until):
                verdict = "retry"  # a brand-new run can 404 for a few seconds
            last_error = self._describe(attempt, response)
            if verdict == "ambiguous":
                raise AmbiguousTrigger(last_error)
            if verdict == "fail":
                raise self._failure(attempt, response, what)
            if attempt_number >= self.policy.max_attempts:
                raise ApiFailure(f"dbt Cloud at {self.host} kept failing for {what}: {last_error} "
                                 f"({attempt_number} attempts). Check https://status.getdbt.com and retry the "
                                 "workflow.", status=attempt.status, kind="unavailable")
            delay = self.policy.delay(attempt_number, attempt.retry_after, self.rand)
            remaining = self._remaining()
            if remaining is not None and delay >= remaining:
                raise DeadlineExceeded(f"the timeout ran out while dbt Cloud was failing ({last_error})")
            log.warning("dbt Cloud request failed; retrying", what=what, error=last_error,
                        attempt=attempt_number, retry_in=round(delay, 1))
            self.clock.sleep(delay)

    def _send(self, method: str, path: str, params: dict[str, Any] | None, json_body: dict[str, Any] | None,
              timeout: tuple[float, float], raw: bool) -> tuple[Attempt, _Response | None, bytes]:
        attempt, response, content = self._exchange(method, path, params, json_body, timeout, raw)
        # Debug output (RUNNER_DEBUG=1 / --debug) shows every exchange. The Authorization header is never put in
        # the event — only its scheme — so even a caller that uses this client without dbtgate's redacting log
        # configuration (structlog's default prints debug lines) cannot leak the token.
        headers = {key: value for key, value in self._session.headers.items() if key.lower() != "authorization"}
        log.debug("dbt Cloud request", method=method, path=path, params=params, auth="Token ***", headers=headers,
                  status=attempt.status, failure=attempt.failure)
        return attempt, response, content

    def _exchange(self, method: str, path: str, params: dict[str, Any] | None, json_body: dict[str, Any] | None,
                  timeout: tuple[float, float], raw: bool) -> tuple[Attempt, _Response | None, bytes]:
        try:
            reply = self._session.request(method, self._url(path), params=params, json=json_body, timeout=timeout)
        except requests.exceptions.SSLError:
            return Attempt(failure="tls"), None, b""
        except requests.exceptions.ConnectTimeout:
            return Attempt(failure="connect"), None, b""
        except requests.exceptions.ReadTimeout:
            return Attempt(failure="read_timeout"), None, b""
        except requests.exceptions.ConnectionError as error:
            return Attempt(failure="connect" if _never_sent(error) else "connection_lost"), None, b""
        except requests.exceptions.RequestException:
            return Attempt(failure="connection_lost"), None, b""
        headers = {key.lower(): value for key, value in reply.headers.items()}
        retry_after = parse_retry_after(headers.get("retry-after"))
        content = reply.content
        if raw and 200 <= reply.status_code < 300:
            return Attempt(status=reply.status_code), None, content
        text = content.decode("utf-8", "replace")
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        response = _Response(reply.status_code, body, text, headers)
        if 200 <= reply.status_code < 300 and not isinstance(body, dict):
            return Attempt(failure="bad_body", status=None, retry_after=retry_after), response, b""
        return Attempt(status=reply.status_code, retry_after=retry_after), response, b""

    def _describe(self, attempt: Attempt, response: _Response | None) -> str:
        if attempt.failure == "read_timeout":
            return f"no answer within {self.api_timeout:g}s (read timeout)"
        if attempt.failure == "connect":
            return f"could not connect to {self.host}"
        if attempt.failure == "connection_lost":
            return "the connection closed without an answer"
        if attempt.failure == "bad_body":
            return "the answer was not valid JSON"
        if attempt.failure == "tls":
            return f"the TLS handshake with {self.host} failed (certificate not trusted?)"
        message = _user_message(response)
        return f"HTTP {attempt.status}" + (f" {message}" if message else "")

    def _failure(self, attempt: Attempt, response: _Response | None, what: str) -> ApiFailure:
        message = _user_message(response)
        status = attempt.status
        if attempt.failure == "tls":
            return ApiFailure(f"Could not make a trusted TLS connection to {self.host}. If you use a private CA, "
                              "set REQUESTS_CA_BUNDLE to its certificate file.", kind="tls")
        if status == 401:
            return ApiFailure(
                f"dbt Cloud at {self.host} answered 401 {message or 'Invalid token.'} Either the token is wrong or "
                "expired, or your account is not served by this host: accounts now have their own access URL "
                "(dbt Cloud → Account settings → Account information, e.g. https://ab123.us1.dbt.com) and the "
                "legacy hosts answer 'Invalid token.' for accounts that moved. Set dbt_cloud_url to your access "
                "URL and check dbt_cloud_token.", status=401, kind="auth")
        if status == 403:
            return ApiFailure(f"dbt Cloud at {self.host} refused access to {what} (403 {message}). The token is valid "
                              "but lacks permission: a service token needs the Job Admin or Job Runner permission "
                              "set for this project.", status=403, kind="auth")
        if status == 404:
            return ApiFailure(f"dbt Cloud at {self.host} found no {what} in account {self.account_id} (404 "
                              f"{message}). Check dbt_cloud_account_id and dbt_cloud_job_id, and that the token "
                              "belongs to this account.", status=404, kind="not_found")
        return ApiFailure(f"dbt Cloud at {self.host} rejected the request for {what}: HTTP {status} {message}",
                          status=status, kind="rejected")


def _user_message(response: _Response | None) -> str:
    if response is None:
        return ""
    if isinstance(response.body, dict) and isinstance(response.body.get("status"), dict):
        status = response.body["status"]
        parts = [str(status.get("user_message") or "").strip(), str(status.get("developer_message") or "").strip()]
        return " ".join(part for part in parts if part)
    return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""


def _expect_dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ApiFailure(f"dbt Cloud returned no {what} object where one was expected.", kind="protocol")
    return data


def _never_sent(error: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never established (so the request certainly did not reach the server)."""
    text = repr(error.args[0]) if error.args else repr(error)
    return any(marker in text for marker in ("NewConnectionError", "Connection refused", "NameResolutionError",
                                             "Failed to establish"))
