"""The emulator's HTTP face: routing, auth, envelopes, validation, fault delivery and the request log.

A request goes through one pipeline: route → read and parse the body → choose a fault (faults.py) → answer
(dispatch to the World, or an error envelope) → distort the answer's content (content faults) → send it
(delivery faults). Anything unexpected becomes a 500 envelope: no request may take the server down.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import gzip
import html
import json
import re
import socket
import sys
import threading
import time
import traceback
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from dbtgate.emulator.faults import FaultInjector, RequestFacts
from dbtgate.emulator.scenario import HOSTILE_FIELDS, FaultSpec
from dbtgate.emulator.world import JobFilters, RetryRefused, RunFilters, World

API = r"^/api/v2/accounts/(?P<account>[^/]+)"
ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(r"^/api/v2/accounts/?$"), {"GET": "list_accounts"}),
    (re.compile(API + r"/?$"), {"GET": "get_account"}),
    (re.compile(API + r"/steps/(?P<step>[^/]+)/?$"), {"GET": "get_step"}),
    (re.compile(API + r"/jobs/(?P<job>[^/]+)/artifacts/(?P<path>.+)$"), {"GET": "get_job_artifact"}),
    (re.compile(API + r"/jobs/(?P<job>[^/]+)/run/?$"), {"POST": "trigger"}),
    (re.compile(API + r"/jobs/(?P<job>[^/]+)/rerun/?$"), {"POST": "rerun"}),
    (re.compile(API + r"/jobs/(?P<job>[^/]+)/?$"), {"GET": "get_job"}),
    (re.compile(API + r"/jobs/?$"), {"GET": "list_jobs"}),
    (re.compile(API + r"/runs/?$"), {"GET": "list_runs"}),
    (re.compile(API + r"/runs/(?P<run>[^/]+)/cancel/?$"), {"POST": "cancel"}),
    (re.compile(API + r"/runs/(?P<run>[^/]+)/retry/?$"), {"POST": "retry", "GET": "retry_details"}),
    (re.compile(API + r"/runs/(?P<run>[^/]+)/artifacts/?$"), {"GET": "list_artifacts"}),
    (re.compile(API + r"/runs/(?P<run>[^/]+)/artifacts/(?P<path>.+)$"), {"GET": "get_artifact"}),
    (re.compile(API + r"/runs/(?P<run>[^/]+)/?$"), {"GET": "get_run"}),
]
RUN_PAGE = re.compile(r"^/deploy/(?P<account>\d+)/projects/\d+/runs/(?P<run>\d+)/?$")
CREATING = ("trigger", "rerun", "retry")

# Trigger fields as dbt Cloud types them, with the bounds its database puts on them (a Postgres integer).
INT_FIELDS = {"github_pull_request_id": 0, "gitlab_merge_request_id": 0, "azure_pull_request_id": 0,
              "non_native_pull_request_id": 0, "threads_override": 1, "timeout_seconds_override": 0}  # minimum
STR_FIELDS = ("git_sha", "git_branch", "schema_override", "dbt_version_override", "target_name_override")
INT_MAX = 2**31 - 1
STR_MAX = 255
STEPS_MAX = 100
TRUE_WORDS = frozenset({"t", "y", "yes", "true", "on", "1"})    # how a form field says a boolean (as DRF reads it)
FALSE_WORDS = frozenset({"f", "n", "no", "false", "off", "0"})

MAX_BODY = 1024 * 1024          # bytes; a larger request body is a 413 (real gateways refuse far less)
MAX_PARAM = 2048                # characters of one query value; longer is a 400, never a parser's stack overflow
INVALID = "The request was invalid. Please double check the provided data and try again."
NOT_FOUND = "The requested resource was not found."
HTML_502 = ("<html>\r\n<head><title>{code} Bad Gateway</title></head>\r\n<body>\r\n<center><h1>{code} Bad Gateway"
            "</h1></center>\r\n</body>\r\n</html>\r\n")
CHUNK = 64 * 1024


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the emulator saw it. The token itself is never kept: only the auth scheme."""

    method: str
    path: str
    endpoint: str
    query: dict[str, list[str]]
    body: Any
    auth_scheme: str | None
    run_id: int | None
    job_id: int | None
    status: int | None          # None when the connection was dropped without a response
    fault: str | None
    at: float                   # emulated seconds since start


LOG_CAPACITY = 10_000           # requests the log keeps (the newest); older ones are counted, not kept
CRASH_CAPACITY = 100


@dataclass
class RequestLog:
    """The newest LOG_CAPACITY requests (a ring buffer), with counters for all of them: a long-lived emulator
    under load keeps a bounded memory. `total` counts every request ever logged, `dropped` those that fell out."""

    entries: deque[LoggedRequest] = field(default_factory=lambda: deque(maxlen=LOG_CAPACITY))
    # Endpoints of requests as they arrive, before any answer: a slow fault's request shows here at once.
    arrivals: Counter[str] = field(default_factory=Counter)
    # Unexpected exceptions the server answered with a 500 (a test can assert there were none); the newest 100.
    crashes: list[str] = field(default_factory=list)
    total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def capacity(self) -> int:
        return self.entries.maxlen or 0

    @property
    def dropped(self) -> int:
        return self.total - len(self.entries)

    def add(self, entry: LoggedRequest) -> None:
        with self.lock:
            self.entries.append(entry)
            self.total += 1

    def arrive(self, endpoint: str) -> None:
        with self.lock:
            self.arrivals[endpoint] += 1

    def crash(self, text: str) -> None:
        with self.lock:
            self.crashes.append(text)
            del self.crashes[:-CRASH_CAPACITY]

    def arrived(self, endpoint: str) -> int:
        with self.lock:
            return self.arrivals[endpoint]

    def all(self) -> list[LoggedRequest]:
        with self.lock:
            return list(self.entries)

    def of(self, endpoint: str) -> list[LoggedRequest]:
        return [entry for entry in self.all() if entry.endpoint == endpoint]

    def cancels(self) -> list[int]:
        return [e.run_id for e in self.of("cancel") if e.run_id is not None]

    def polls(self, run_id: int) -> int:
        return sum(1 for e in self.of("get_run") if e.run_id == run_id)


class ApiError(Exception):
    """An answer with dbt Cloud's error envelope. `data` carries field errors on a 400, None otherwise."""

    def __init__(self, code: int, user_message: str, developer_message: str | None = None, data: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(user_message)
        self.code, self.user_message, self.developer_message = code, user_message, developer_message
        self.data, self.headers = data, headers or {}


def invalid(errors: dict[str, Any]) -> ApiError:
    """A 400 the way dbt Cloud words one: a fixed user message, an empty developer message, the fields in data."""
    return ApiError(400, INVALID, "", errors)


class FormBody(dict[str, list[str]]):
    """A form-encoded (urlencoded or multipart) body: every field is strings, possibly repeated."""


class Unparseable(str):
    """A body that was sent as JSON but is not: the parser's complaint, kept for the endpoints that read bodies."""


def parse_include_related(values: list[str]) -> frozenset[str]:
    """`include_related` as real clients send it: repeated keys, a comma list, a JSON list or a Python list."""
    names: set[str] = set()
    for value in values:
        if len(value) > MAX_PARAM:
            raise invalid({"include_related": f"Ensure this value has at most {MAX_PARAM} characters."})
        text = value.strip()
        items: list[Any]
        if text.startswith("["):
            try:
                items = list(json.loads(text))
            except (ValueError, TypeError, RecursionError):
                try:
                    items = list(ast.literal_eval(text))
                except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                    items = text.strip("[]").split(",")
        else:
            items = text.split(",")
        names.update(str(item).strip().strip("'\"").strip() for item in items)
    names.discard("")
    return frozenset(names)


def list_values(name: str, values: list[str]) -> list[str]:
    """A list parameter in any encoding clients use: repeated keys, a comma list, a JSON or Python list."""
    items: list[str] = []
    for value in values:
        if len(value) > MAX_PARAM:
            raise invalid({name: f"Ensure this value has at most {MAX_PARAM} characters."})
        text = value.strip()
        if text.startswith(("[", "(")):
            try:
                parsed = json.loads(text.replace("(", "[").replace(")", "]"))
            except (ValueError, RecursionError):
                parsed = text.strip("[]()").split(",")
            if not isinstance(parsed, list):
                raise invalid({name: f"{value!r} is not valid under any of the given schemas"})
            items.extend(str(item).strip().strip("'\"") for item in parsed)
        else:
            items.extend(part.strip() for part in text.split(","))
    return [item for item in items if item]


def parse_int_list(values: list[str], name: str = "status__in") -> set[int]:
    numbers: set[int] = set()
    for item in list_values(name, values):
        if not re.fullmatch(r"-?\d{1,18}", item):
            # How dbt Cloud's schema validation words a bad list filter (apache/airflow#40047).
            raise invalid({name: f"{item!r} is not valid under any of the given schemas"})
        numbers.add(int(item))
    return numbers


def envelope(code: int, data: Any, user_message: str = "Success!", developer_message: str | None = "",
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": {"code": code, "is_success": 200 <= code < 300, "user_message": user_message,
                                       "developer_message": developer_message}, "data": data}
    if extra is not None:
        body["extra"] = extra
    return body


@dataclass
class Reply:
    """An answer before it is sent: content faults rewrite `payload`, delivery faults change how it goes out."""

    code: int
    payload: Any                      # a JSON value, or str for a text artifact
    enveloped: bool = True            # False for a raw artifact file
    headers: dict[str, str] = field(default_factory=dict)


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    world: World
    faults: FaultInjector
    log: RequestLog

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out on a slow fault has gone away: that is the fault working, not an error.
        kind = sys.exc_info()[0]
        if kind is not None and issubclass(kind, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    _pending: dict[str, Any] | None = None
    _responded = False
    _head = False
    server_version = "dbtgate-emulator"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log is the record
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add ~40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a bad request line, a huge header, an unknown method) in the API's envelope."""
        # http.server calls this only before it has answered the request at hand.
        command = getattr(self, "command", None)
        if code == HTTPStatus.NOT_IMPLEMENTED and command:
            self._handle(command)   # an unknown method on an API path: a 405 with Allow, like any wrong method
            return
        self.close_connection = True
        reason = message or HTTPStatus(code).phrase
        body = json.dumps(envelope(code, None, reason, explain)).encode()
        self._responded = True
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if command != "HEAD" and code >= 200 and code not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            self.wfile.write(body)

    # ---- the pipeline -------------------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        self._responded, self._head, self._pending = False, method == "HEAD", None
        try:
            self._serve(method)
        except Exception as error:  # any bug or odd input: answer 500 and keep serving
            self._crashed(error)

    def _crashed(self, error: Exception) -> None:
        if isinstance(error, OSError) and self._responded:
            self.close_connection = True     # the client went away mid-answer (a trickle it gave up on)
            self._commit_log(None)
            return
        text = "".join(traceback.format_exception(error))
        self.server.log.crash(text)
        sys.stderr.write(f"dbtgate emulator: a request failed inside the emulator (answered 500):\n{text}")
        self.close_connection = True
        if self._responded:
            self._commit_log(None)
            return
        try:
            self._send_json(500, envelope(500, None, "Internal Server Error", type(error).__name__))
        except OSError:
            self._commit_log(None)

    def _serve(self, method: str) -> None:
        world = self.server.world
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        if path.startswith("/_emulator/") or RUN_PAGE.match(path):
            # Unread, a body would be taken for the next request on this connection; a refused one closes it.
            with contextlib.suppress(ApiError):
                self._read_body()
            self._control(path)
            return
        endpoint, params, allow = self._route(method, path)
        body: Any = None
        body_error: ApiError | None = None
        try:
            body = self._parse_body(self._read_body())
        except ApiError as error:
            body_error = error
        auth_header = self.headers.get("Authorization", "")
        scheme, _, token = auth_header.partition(" ")
        run_id = _int_or_none(params.get("run"))
        job_id = _int_or_none(params.get("job"))
        if job_id is None and run_id is not None:
            job_id = world.run_job_id(run_id)
        entry: dict[str, Any] = {
            "method": method, "path": path, "endpoint": endpoint, "query": query, "body": _loggable(body),
            "auth_scheme": scheme or None, "run_id": run_id, "job_id": job_id, "fault": None,
            "at": world.elapsed(),
        }
        self.server.log.arrive(endpoint)
        self._pending = entry
        if body_error is not None:
            self._send_reply(self._error_reply(body_error), None)
            return
        fault = None
        if endpoint not in ("unknown", "wrong_method", "options") and method != "HEAD":
            fault = self.server.faults.choose(RequestFacts(endpoint, run_id, job_id, world.elapsed()))
        if fault is not None:
            entry["fault"] = fault.kind
        self._respond_api(method, endpoint, params, allow, query, body, scheme, token, fault)
        self._commit_log(None)  # no response was sent (a dropped connection): log it now

    def _commit_log(self, status: int | None) -> None:
        """Record the request before its response leaves, so a client that reads the log after a response
        always finds the request in it."""
        entry, self._pending = self._pending, None
        if entry is None:
            return
        entry["status"] = status
        created = entry.pop("created_run", None)
        if created is not None:
            entry["run_id"] = created
        self.server.log.add(LoggedRequest(**entry))

    def _respond_api(self, method: str, endpoint: str, params: dict[str, str], allow: str,
                     query: dict[str, list[str]], body: Any, scheme: str, token: str, fault: FaultSpec | None) -> None:
        kind = fault.kind if fault is not None else None
        # Faults that replace the whole answer, before dbt Cloud does anything.
        if fault is not None and kind == "drop_connection":
            self.close_connection = True
            return
        if fault is not None and kind == "http_error":
            self._send_fault_status(fault)
            return
        if kind == "malformed_json":
            self._send_bytes(200, [b'{"status": {"code": 200, "is_success": tr'], "application/json")
            return
        if fault is not None and kind == "slow":
            time.sleep(fault.delay)
        if kind == "ignore_filters" and fault is not None:
            dropped = {"both": ("status", "status__in", "job_definition_id"), "status": ("status", "status__in"),
                       "job": ("job_definition_id",)}[fault.mode]
            query = {name: values for name, values in query.items() if name not in dropped}
        try:
            self._check_access(endpoint, method, allow, scheme, token, params)
            if kind == "not_found_new_run":
                raise ApiError(404, NOT_FOUND, "Run not found.")
            if endpoint == "options":
                reply = Reply(200, {"name": "dbt Cloud API v2", "renders": ["application/json"],
                                    "parses": ["application/json", "application/x-www-form-urlencoded",
                                               "multipart/form-data"]}, enveloped=False, headers={"Allow": allow})
            else:
                reply = self._dispatch(endpoint, params, query, body)
        except ApiError as error:
            reply = self._error_reply(error)
        if fault is not None:
            self._distort(reply, fault, endpoint, token, _int_or_none(params.get("run")))
        if kind == "lose_trigger_response" and reply.code == 200:
            self.close_connection = True
            return
        if fault is not None and kind == "delay_trigger_response":
            time.sleep(fault.delay)
        self._send_reply(reply, fault)

    def _check_access(self, endpoint: str, method: str, allow: str, scheme: str, token: str,
                      params: dict[str, str]) -> None:
        if endpoint == "unknown":
            raise ApiError(404, NOT_FOUND, f"No route for {self.path[:200]}")
        if endpoint == "wrong_method":
            raise ApiError(405, f'Method "{method[:20]}" not allowed.', None, headers={"Allow": allow})
        if scheme not in ("Token", "Bearer") or token != self.server.world.scenario.token:
            raise ApiError(401, "Invalid token.", None)
        if endpoint != "list_accounts" and _int_or_none(params.get("account")) != self.server.world.scenario.account_id:
            raise ApiError(404, NOT_FOUND,
                           f"Account {params.get('account', '')[:40]} not found or not accessible with this token.")

    @staticmethod
    def _error_reply(error: ApiError) -> Reply:
        return Reply(error.code, envelope(error.code, error.data, error.user_message, error.developer_message),
                     headers=error.headers)

    def _dispatch(self, endpoint: str, params: dict[str, str], query: dict[str, list[str]], body: Any) -> Reply:
        world = self.server.world
        if endpoint in ("list_accounts", "get_account"):
            account = world.account_json()
            if endpoint == "get_account":
                return Reply(200, envelope(200, account))
            # The accounts this token can see: the emulated one.
            return Reply(200, envelope(200, [account], extra=_extra({}, "id", 1, 1)))
        if endpoint == "get_step":
            step_id = _int_or_none(params.get("step"))
            found_step = world.step_json(step_id, parse_include_related(query.get("include_related", []))) \
                if step_id is not None else None
            if found_step is None:
                raise ApiError(404, NOT_FOUND, f"Step {params.get('step', '')[:40]} not found.")
            return Reply(200, envelope(200, found_step))
        if endpoint == "get_job_artifact":
            job = world.scenario.job(_int_or_none(params.get("job")) or -1)
            if job is None:
                raise ApiError(404, NOT_FOUND, f"Job {params.get('job', '')[:40]} not found.")
            found = world.job_artifact(job.id, params["path"])
            if found is None:
                raise ApiError(404, NOT_FOUND, f"No artifact {params['path'][:200]} in a successful run of job "
                                               f"{job.id}.")
            return Reply(200, found, enveloped=False)
        if endpoint in ("trigger", "rerun", "get_job"):
            job = world.scenario.job(_int_or_none(params.get("job")) or -1)
            if job is None:
                raise ApiError(404, NOT_FOUND, f"Job {params.get('job', '')[:40]} not found.")
            if endpoint == "get_job":
                return Reply(200, envelope(200, world.job_json(job)))
            run = world.trigger(job, validate_trigger_body(body)) if endpoint == "trigger" else world.rerun(job)
            self._created(run)
            return Reply(200, envelope(200, run))
        if endpoint == "list_jobs":
            return self._list_jobs(query)
        if endpoint == "list_runs":
            return self._list_runs(query, parse_include_related(query.get("include_related", [])))
        run_id = _int_or_none(params.get("run"))
        if run_id is None or not world.has_run(run_id):
            raise ApiError(404, NOT_FOUND, f"Run {params.get('run', '')[:40]} not found.")
        if endpoint == "get_run":
            include = parse_include_related(query.get("include_related", []))
            return Reply(200, envelope(200, world.run_json(run_id, include)))
        if endpoint == "cancel":
            return Reply(200, envelope(200, world.cancel(run_id)))
        if endpoint in ("retry", "retry_details"):
            try:
                if endpoint == "retry_details":
                    return Reply(200, envelope(200, world.retry_details(run_id)))
                run = world.retry_run(run_id)
            except RetryRefused as refused:
                # The spec documents only the 200; dbt Cloud refuses like any other invalid request, with the
                # reason code that the run's retry_not_supported_reason carries.
                raise ApiError(400, f"Run {run_id} cannot be retried: {refused.reason}.", "",
                               {"retry_not_supported_reason": [refused.reason]}) from refused
            self._created(run)
            return Reply(200, envelope(200, run))
        step = _int_or_none(query["step"][0]) if query.get("step") else None
        if endpoint == "list_artifacts":
            return Reply(200, envelope(200, world.artifact_paths(run_id, step)))
        artifact = world.artifact(run_id, params["path"], step)
        if artifact is None:
            raise ApiError(404, NOT_FOUND, f"No artifact {params['path'][:200]} for run {run_id}.")
        return Reply(200, artifact, enveloped=False)

    def _created(self, run: dict[str, Any]) -> None:
        if self._pending is not None:
            self._pending["created_run"] = run["id"]

    def _list_jobs(self, query: dict[str, list[str]]) -> Reply:
        params = Params("list_jobs", query)
        project_id, environment_id = params.integer("project_id"), params.integer("environment_id")
        name = params.one("name__icontains")
        limit, offset = params.page()
        order_by = params.one("order_by") or "id"
        if order_by.lstrip("-") not in ("id", "name", "created_at", "updated_at", "project_id", "environment_id"):
            raise invalid({"order_by": f"{order_by!r} is not a field jobs can be ordered by."})
        state = params.one("state") or "active"
        if state not in ("active", "1", "deleted", "2", "all"):
            raise invalid({"state": f"{state!r} is not valid under any of the given schemas"})
        project_in = parse_int_list(query["project_id__in"], "project_id__in") if "project_id__in" in query else None
        versions = frozenset(list_values("dbt_version__in", query["dbt_version__in"])) \
            if "dbt_version__in" in query else None
        more = JobFilters(pk=params.integer("pk"), project_id__in=frozenset(project_in) if project_in is not None
                          else None, dbt_version__in=versions, is_fusion_ready=params.boolean("is_fusion_ready"),
                          is_system=bool(params.boolean("is_system")),
                          triggers_schedule=params.boolean("triggers_schedule"))
        params.related(("environment", "custom_environment_variables", "most_recent_run",
                        "most_recent_completed_run", "fusion_readiness"))
        jobs, total = self.server.world.list_jobs(project_id=project_id, environment_id=environment_id,
                                                  name_contains=name, limit=limit, offset=offset, order_by=order_by,
                                                  filters=more)
        if state in ("deleted", "2"):       # the emulated account has no deleted jobs
            jobs, total = [], 0
        filters: dict[str, Any] = {"account_id": self.server.world.scenario.account_id, "limit": limit,
                                   "offset": offset, "state": state}
        filters.update({key: value for key, value in (("project_id", project_id), ("environment_id", environment_id),
                                                      ("name__icontains", name), ("pk", more.pk),
                                                      ("is_fusion_ready", more.is_fusion_ready),
                                                      ("triggers_schedule", more.triggers_schedule))
                        if value is not None})
        if "is_system" in query:
            filters["is_system"] = more.is_system
        if project_in is not None:
            filters["project_id__in"] = sorted(project_in)
        if versions is not None:
            filters["dbt_version__in"] = sorted(versions)
        return Reply(200, envelope(200, jobs, extra=_extra(filters, order_by, len(jobs), total)))

    def _list_runs(self, query: dict[str, list[str]], include: frozenset[str]) -> Reply:
        params = Params("list_runs", query)
        job_id = params.integer("job_definition_id")
        statuses = parse_int_list(query["status__in"]) if "status__in" in query else None
        status = params.integer("status")
        if status is not None:
            statuses = (statuses or set()) | {status}
        limit, offset = params.page()
        order_by = params.one("order_by") or "id"
        if order_by.lstrip("-") not in ("id", "created_at", "finished_at"):
            raise invalid({"order_by": f"Cannot order by {order_by!r}: use id, created_at or finished_at."})
        pk_in = parse_int_list(query["pk__in"], "pk__in") if "pk__in" in query else None
        project_in = parse_int_list(query["project_id__in"], "project_id__in") if "project_id__in" in query else None
        versions = frozenset(list_values("dbt_version__in", query["dbt_version__in"])) \
            if "dbt_version__in" in query else None
        state = params.one("state") or "all"
        if state not in ("active", "1", "deleted", "2", "all"):
            raise invalid({"state": f"{state!r} is not valid under any of the given schemas"})
        params.related(("trigger", "job", "audit", "debug_logs", "run_steps", "environment", "repository",
                        "run_retries", "used_repo_cache", "repo_cache_restore"))
        filters = RunFilters(pk=params.integer("pk"), pk__in=frozenset(pk_in) if pk_in is not None else None,
                             id__gt=params.integer("id__gt"), project_id=params.integer("project_id"),
                             environment_id=params.integer("environment_id"),
                             created_at__range=params.time_range("created_at__range"),
                             finished_at__range=params.time_range("finished_at__range"),
                             project_id__in=frozenset(project_in) if project_in is not None else None,
                             dbt_version=params.one("dbt_version"), dbt_version__in=versions,
                             deferring_run_id=params.integer("deferring_run_id"),
                             has_docs_generated=params.boolean("has_docs_generated"),
                             has_sources_generated=params.boolean("has_sources_generated"),
                             deleted_only=state in ("deleted", "2"))
        runs, total = self.server.world.list_runs(job_id=job_id, statuses=statuses, order_by=order_by, limit=limit,
                                                  offset=offset, include=include, filters=filters)
        echo: dict[str, Any] = {"account_id": self.server.world.scenario.account_id, "limit": limit,
                                "offset": offset, "state": state}
        if job_id is not None:
            echo["job_definition_id"] = job_id
        if statuses is not None:
            echo["status__in"] = sorted(statuses)
        for name in ("pk", "id__gt", "project_id", "environment_id", "dbt_version", "deferring_run_id",
                     "has_docs_generated", "has_sources_generated"):
            if getattr(filters, name) is not None:
                echo[name] = getattr(filters, name)
        if pk_in is not None:
            echo["pk__in"] = sorted(pk_in)
        if project_in is not None:
            echo["project_id__in"] = sorted(project_in)
        if versions is not None:
            echo["dbt_version__in"] = sorted(versions)
        for name in ("created_at__range", "finished_at__range"):
            bounds = getattr(filters, name)
            if bounds is not None:
                echo[name] = [_timestamp_text(end) for end in bounds]
        return Reply(200, envelope(200, runs, extra=_extra(echo, order_by, len(runs), total)))

    # ---- content faults: the answer says something a careful client must not believe ------------------------
    def _distort(self, reply: Reply, fault: FaultSpec, endpoint: str, token: str, asked_run: int | None) -> None:
        payload = reply.payload
        if fault.kind == "hostile_text":
            text = fault.payload.replace("{token}", token)
            hostile(payload, frozenset(fault.fields or HOSTILE_FIELDS), text, reply.enveloped)
            return
        if not reply.enveloped or not isinstance(payload, dict) or reply.code != 200:
            return
        if fault.kind == "envelope_false":
            payload["status"]["is_success"] = False
            return
        data = payload.get("data")
        if not isinstance(data, dict):
            return
        if fault.kind == "unknown_status":
            data.update(status=fault.code, status_humanized="Unknown", in_progress=False, is_complete=False)
        elif fault.kind == "trigger_null_data":
            if fault.mode == "null":
                payload["data"] = None
            else:
                data["id"] = str(data["id"])
        elif fault.kind == "foreign_run" or (fault.kind == "foreign_rerun" and fault.mode in ("other_id", "other_job")):
            if fault.mode == "other_job":
                data["job_definition_id"] = data["job_id"] = int(data["job_definition_id"]) + 1000
            else:
                data["id"] = self._other_run_id({int(data["id"])})
        elif fault.kind == "foreign_rerun":
            if fault.mode == "not_a_retry":
                data["retrying_run_id"] = None
            else:
                retried = data.get("retrying_run_id") or asked_run
                data["retrying_run_id"] = self._other_run_id({int(data["id"]), *([retried] if retried else [])})

    def _other_run_id(self, exclude: set[int]) -> int:
        """Another run of the account (the newest one that is not excluded), or an id no run has."""
        others = [run_id for run_id in self.server.world.run_ids() if run_id not in exclude]
        return others[-1] if others else max(exclude) + 1000

    # ---- delivery -----------------------------------------------------------------------------------------
    def _send_reply(self, reply: Reply, fault: FaultSpec | None) -> None:
        data = reply.payload.encode() if isinstance(reply.payload, str) else json.dumps(reply.payload).encode()
        content_type = "text/plain" if isinstance(reply.payload, str) else "application/json"
        headers = dict(reply.headers)
        chunks: Iterable[bytes] = [data]
        length = len(data)
        if fault is not None and fault.kind == "huge_body":
            chunks, length = padded(data, fault.size, fault.mode), max(fault.size, len(data))
        elif fault is not None and fault.kind == "gzip_bomb":
            bomb = gzip_bomb(data, fault.size)
            headers["Content-Encoding"] = "gzip"
            chunks, length = [bomb], len(bomb)
        elif self._accepts_gzip() and (fault is None or fault.kind != "trickle"):
            # Asked for (requests always asks): the body gzip-compressed, as dbt Cloud's gateway sends it.
            data = gzip.compress(data, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
            chunks, length = [data], len(data)
        headers.setdefault("Vary", "Accept-Encoding")
        trickle = fault.delay if fault is not None and fault.kind == "trickle" else None
        self._send_bytes(reply.code, chunks, content_type, headers, length, trickle)

    def _accepts_gzip(self) -> bool:
        """Accept-Encoding names gzip (or *) without q=0."""
        for item in self.headers.get("Accept-Encoding", "").split(","):
            name, _, params = item.strip().partition(";")
            if name.strip().lower() not in ("gzip", "x-gzip", "*"):
                continue
            quality = params.strip().lower()
            if quality.startswith("q="):
                try:
                    return float(quality[2:]) > 0
                except ValueError:
                    return False
            return True
        return False

    def _send_bytes(self, code: int, chunks: Iterable[bytes], content_type: str,
                    headers: dict[str, str] | None = None, length: int | None = None,
                    trickle: float | None = None) -> None:
        chunks = list(chunks) if length is None else chunks
        self._commit_log(code)
        self._responded = True
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length if length is not None else sum(map(len, chunks))))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")   # e.g. after an unread body: the client must not reuse it
        self.end_headers()
        if self._head:
            return
        for chunk in chunks:
            if trickle is None:
                self.wfile.write(chunk)
                continue
            # One byte at a time, each its own segment (TCP_NODELAY): no read ever waits `delay` twice.
            for index in range(len(chunk)):
                self.wfile.write(chunk[index:index + 1])
                time.sleep(trickle)

    def _send_json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(code, [json.dumps(payload).encode()], "application/json", headers)

    def _send_fault_status(self, fault: FaultSpec) -> None:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        if fault.status == 401:
            self._send_json(401, envelope(401, None, "Invalid token.", None), headers)
        elif fault.body == "html":
            page = HTML_502.format(code=fault.status).replace("Bad Gateway", _reason(fault.status))
            self._send_bytes(fault.status, [page.encode()], "text/html", headers)
        elif fault.body == "empty":
            self._send_bytes(fault.status, [b""], "text/plain", headers)
        else:
            self._send_json(fault.status, envelope(fault.status, None, _reason(fault.status), None), headers)

    # ---- helpers ------------------------------------------------------------------------------------------
    def _route(self, method: str, path: str) -> tuple[str, dict[str, str], str]:
        for pattern, methods in ROUTES:
            match = pattern.match(path)
            if match:
                allowed = [*methods, *(["HEAD"] if "GET" in methods else []), "OPTIONS"]
                allow = ", ".join(allowed)
                if method == "OPTIONS":
                    return "options", match.groupdict(), allow
                name = methods.get("GET" if method == "HEAD" else method)
                if name is None:
                    return "wrong_method", match.groupdict(), allow
                return name, match.groupdict(), allow
        return "unknown", {}, ""

    def _read_body(self) -> bytes:
        lengths = self.headers.get_all("Content-Length") or []
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            return self._read_chunked()
        if not lengths:
            return b""
        # Two different lengths, or one that is not a number, leave the body's end unknown: refuse and close.
        if len(set(lengths)) != 1 or not lengths[0].strip().isdigit():
            self.close_connection = True
            raise ApiError(400, INVALID, "", {"Content-Length": ["Must be one non-negative integer."]})
        length = int(lengths[0])
        if length > MAX_BODY:
            self.close_connection = True     # the body stays unread: this connection cannot carry another request
            raise ApiError(413, "Request body too large.", f"The limit is {MAX_BODY} bytes.")
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            size_line = self.rfile.readline(100).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                self.close_connection = True
                raise ApiError(400, INVALID, "", {"Transfer-Encoding": ["Malformed chunked body."]}) from None
            if size == 0:
                while self.rfile.readline(1000).strip():   # trailers
                    pass
                return bytes(data)
            if len(data) + size > MAX_BODY:
                self.close_connection = True
                raise ApiError(413, "Request body too large.", f"The limit is {MAX_BODY} bytes.")
            data += self.rfile.read(size)
            self.rfile.readline(10)

    def _parse_body(self, raw: bytes) -> Any:
        if not raw:
            return None
        content_type = self.headers.get("Content-Type", "")
        if "multipart/form-data" in content_type:
            return _parse_multipart(content_type, raw)
        text = raw.decode("utf-8", "replace")
        if "application/x-www-form-urlencoded" in content_type:
            return FormBody(parse_qs(text, keep_blank_values=True))
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            return Unparseable(f"JSON parse error - {str(error)[:200]}")

    def _control(self, path: str) -> None:
        world = self.server.world
        page = RUN_PAGE.match(path)
        if page:
            run_id = int(page["run"])
            if not world.has_run(run_id):
                self._send_bytes(404, [b"<h1>Run not found</h1>"], "text/html")
                return
            run = world.run_json(run_id, frozenset({"run_steps", "job"}))
            steps = "".join(f"<li>{html.escape(s['name'])}: {s['status_humanized']} ({s['duration']})</li>"
                            for s in run["run_steps"])
            body = (f"<html><head><title>Run #{run_id}</title></head><body><h1>{html.escape(run['job']['name'])}"
                    f" — run #{run_id}: {run['status_humanized']}</h1><p>{html.escape(run['status_message'] or '')}"
                    f"</p><ul>{steps}</ul><p>Served by the dbtgate emulator.</p></body></html>")
            self._send_bytes(200, [body.encode()], "text/html")
        elif path.rstrip("/") == "/_emulator/requests":
            log = self.server.log
            entries = [e.__dict__ for e in log.all()]
            self._send_json(200, {"requests": entries, "total": log.total, "dropped": log.dropped,
                                  "capacity": log.capacity})
        elif path.rstrip("/") == "/_emulator/health":
            self._send_json(200, {"ok": True, "runs": world.run_ids()})
        else:
            self._send_json(404, envelope(404, None, NOT_FOUND, None))


class Params:
    """Query parameters of a list endpoint, each checked as dbt Cloud checks it: a 400 naming the parameter."""

    def __init__(self, endpoint: str, query: dict[str, list[str]]) -> None:
        self.endpoint, self.query = endpoint, query

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        if not values or not values[-1]:
            return None
        if len(values[-1]) > MAX_PARAM:
            raise invalid({name: f"Ensure this value has at most {MAX_PARAM} characters."})
        return values[-1]

    def integer(self, name: str) -> int | None:
        text = self.one(name)
        if text is None:
            return None
        if not re.fullmatch(r"-?\d{1,18}", text.strip()):
            raise invalid({name: f"{text[:100]!r} is not valid under any of the given schemas"})
        return int(text)

    def boolean(self, name: str) -> bool | None:
        """A boolean filter as DRF reads one ("true"/"false", "1"/"0", ...); anything else is a 400."""
        text = self.one(name)
        if text is None:
            return None
        word = text.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise invalid({name: f"{text[:100]!r} is not valid under any of the given schemas"})

    def related(self, allowed: tuple[str, ...]) -> frozenset[str]:
        """include_related with only the values the spec lists for this endpoint: an unknown one is a 400."""
        names = parse_include_related(self.query.get("include_related", []))
        unknown = sorted(names - set(allowed))
        if unknown:
            raise invalid({"include_related": f"{unknown[0][:100]!r} is not one of {', '.join(allowed)}"})
        return names

    def page(self) -> tuple[int, int]:
        limit, offset = self.integer("limit"), self.integer("offset")
        limit = 100 if limit is None else limit
        offset = 0 if offset is None else offset
        if not 1 <= limit <= 100:
            raise invalid({"limit": "Ensure this value is between 1 and 100."})
        if offset < 0:
            raise invalid({"offset": "Ensure this value is greater than or equal to 0."})
        return limit, offset

    def time_range(self, name: str) -> tuple[datetime | None, datetime | None] | None:
        """A `__range` filter: two date-times (repeated keys, a comma pair or a JSON list), either end open with
        null or nothing; a naive date-time means UTC."""
        values = self.query.get(name)
        if not values:
            return None
        if len(values) == 1:
            text = values[0].strip()
            if len(text) > MAX_PARAM:
                raise invalid({name: f"Ensure this value has at most {MAX_PARAM} characters."})
            try:
                parsed = json.loads(text) if text.startswith("[") else text.split(",")
            except (ValueError, RecursionError):
                parsed = text.strip("[]").split(",")
            items = parsed if isinstance(parsed, list) else [parsed]
        else:
            items = list(values)
        ends: list[datetime | None] = []
        for item in items:
            word = str(item).strip().strip("'\"") if item is not None else ""
            if word.lower() in ("", "null", "none"):
                ends.append(None)
                continue
            try:
                moment = datetime.fromisoformat(word.replace("Z", "+00:00"))
            except ValueError:
                raise invalid({name: f"{word[:100]!r} is not valid under any of the given schemas"}) from None
            ends.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        if len(ends) != 2:
            raise invalid({name: "Expected two date-times: [from, to]."})
        return ends[0], ends[1]


def validate_trigger_body(body: Any) -> dict[str, Any]:
    """The trigger body checked as dbt Cloud checks it: a 400 with `{field: [message]}` in data for anything it
    would refuse. Returns only the fields dbt Cloud knows (anything else is ignored, as there)."""
    if isinstance(body, Unparseable):
        raise invalid({"non_field_errors": [str(body)]})
    form = isinstance(body, FormBody)
    body = {} if body is None else body     # no body at all: the fields are missing, as DRF sees it
    if not isinstance(body, dict):
        raise invalid({"non_field_errors": [f"Invalid data. Expected a dictionary, but got {type(body).__name__}."]})
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}

    def value_of(name: str) -> Any:
        value = body.get(name)
        if form and isinstance(value, list):
            return value if name == "steps_override" else (value[-1] if value else None)
        return value

    cause = value_of("cause")
    if cause is None:
        errors["cause"] = ["This field is required."]
    elif not isinstance(cause, str):
        errors["cause"] = ["Not a valid string."]
    elif not cause.strip():
        errors["cause"] = ["This field may not be blank."]
    elif len(cause) > STR_MAX:
        errors["cause"] = [f"Ensure this field has no more than {STR_MAX} characters."]
    elif "\x00" in cause:
        errors["cause"] = ["Null characters are not allowed."]
    else:
        clean["cause"] = cause
    for name, minimum in INT_FIELDS.items():
        value = value_of(name)
        if value is None or (form and value == ""):
            continue
        if form and isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            errors[name] = ["A valid integer is required."]
        elif value < minimum:
            errors[name] = [f"Ensure this value is greater than or equal to {minimum}."]
        elif value > INT_MAX:
            errors[name] = [f"Ensure this value is less than or equal to {INT_MAX}."]
        else:
            clean[name] = value
    for name in STR_FIELDS:
        value = value_of(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            errors[name] = ["Not a valid string." if not isinstance(value, str) else "This field may not be blank."]
        elif len(value) > STR_MAX:
            errors[name] = [f"Ensure this field has no more than {STR_MAX} characters."]
        elif "\x00" in value:
            errors[name] = ["Null characters are not allowed."]
        else:
            clean[name] = value
    docs = value_of("generate_docs_override")
    if form and isinstance(docs, str):
        docs = True if docs.strip().lower() in TRUE_WORDS else False if docs.strip().lower() in FALSE_WORDS else docs
    if docs is not None and not isinstance(docs, bool):
        errors["generate_docs_override"] = ["Must be a valid boolean."]
    elif docs is not None:
        clean["generate_docs_override"] = docs
    steps = value_of("steps_override")
    if steps is not None:
        if not isinstance(steps, list) or not all(isinstance(s, str) and s.strip() for s in steps):
            errors["steps_override"] = ["Expected a list of non-empty strings."]
        elif len(steps) > STEPS_MAX or any(len(s) > 4096 or "\x00" in s for s in steps):
            errors["steps_override"] = [f"Ensure this field has no more than {STEPS_MAX} commands of at most "
                                        "4096 characters, without null characters."]
        else:
            clean["steps_override"] = list(steps)
    if errors:
        raise invalid(errors)
    return clean


def hostile(payload: Any, fields: frozenset[str], text: str, enveloped: bool) -> None:
    """Append `text` to the chosen text fields of an answer, wherever they occur: status messages, runs (with
    their trigger, job and steps), jobs, retry details, and run_results.json node messages."""

    def add(obj: Any, key: str, name: str) -> None:
        if name in fields and isinstance(obj, dict) and key in obj and not isinstance(obj[key], dict | list):
            obj[key] = f"{obj[key] if obj[key] is not None else ''}{text}"

    data = payload
    if enveloped and isinstance(payload, dict):
        add(payload.get("status"), "user_message", "user_message")
        add(payload.get("status"), "developer_message", "developer_message")
        data = payload.get("data")
    for item in data if isinstance(data, list) else [data]:
        if not isinstance(item, dict):
            continue
        if "job_definition_id" in item and "status" in item:           # a run
            for key, name in (("status_humanized", "status_humanized"), ("status_message", "status_message"),
                              ("href", "href"), ("retry_not_supported_reason", "retry_reason"),
                              ("git_branch", "git_branch")):
                add(item, key, name)
            add(item.get("trigger"), "cause", "trigger_cause")
            add(item.get("trigger"), "cause_humanized", "trigger_cause")
            add(item.get("job"), "name", "job_name")
            for step in item.get("run_steps") or []:
                add(step, "name", "step_name")
                add(step, "status_humanized", "status_humanized")
                add(step, "logs", "step_logs")
                if isinstance(step, dict) and step.get("debug_logs") is not None:
                    add(step, "debug_logs", "step_logs")
        elif "execute_steps" in item:                                    # a job
            add(item, "name", "job_name")
        elif isinstance(item.get("results"), list):                     # run_results.json
            for result in item["results"]:
                add(result, "message", "node_message")
        elif "failed_step" in item:                                      # retry details
            add(item, "failed_step", "step_name")
            if "step_name" in fields and isinstance(item.get("skipped_steps"), list):
                item["skipped_steps"] = [f"{step}{text}" for step in item["skipped_steps"]]


def padded(data: bytes, size: int, mode: str) -> Iterator[bytes]:
    """`size` bytes, streamed: the real JSON object with a giant string member (still valid JSON), or junk."""
    if mode == "junk":
        pattern = b"\x00\xff<junk>" * (CHUNK // 8)
        sent = 0
        while sent < size:
            piece = pattern[: min(CHUNK, size - sent)]
            sent += len(piece)
            yield piece
        return
    if data.startswith(b"{") and data.endswith(b"}"):
        head, tail = data[:-1] + b', "padding": "', b'"}'
    else:
        head, tail = data, b""     # not an object (a text artifact): trailing spaces
    fill = max(0, size - len(head) - len(tail))
    yield head
    while fill > 0:
        step = min(CHUNK, fill)
        fill -= step
        yield (b"x" if tail else b" ") * step
    yield tail


def gzip_bomb(data: bytes, size: int) -> bytes:
    """A gzip body that inflates to the real answer followed by `size` bytes of JSON whitespace (still valid JSON):
    two gzip members, the second one cached because compressing a gigabyte takes seconds."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush() + _gzip_spaces(size)


@functools.lru_cache(maxsize=4)
def _gzip_spaces(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = []
    block = b" " * (1024 * 1024)
    left = size
    while left > 0:
        parts.append(compressor.compress(block[: min(len(block), left)]))
        left -= len(block)
    parts.append(compressor.flush())
    return b"".join(parts)


def _parse_multipart(content_type: str, raw: bytes) -> FormBody:
    """multipart/form-data (which the spec lists for the trigger) as form fields; uploaded files are ignored."""
    message: Message = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + raw)
    form = FormBody()
    if not message.is_multipart():
        raise ApiError(400, INVALID, "", {"non_field_errors": ["Multipart form parse error - Invalid boundary."]})
    for part in message.get_payload():
        if not isinstance(part, Message) or part.get_filename():
            continue
        name = part.get_param("name", header="content-disposition")
        value = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(value, bytes):
            form.setdefault(name, []).append(value.decode("utf-8", "replace"))
    return form


def _loggable(body: Any) -> Any:
    if isinstance(body, FormBody):
        return {key: values[-1] if len(values) == 1 else list(values) for key, values in body.items()}
    if isinstance(body, Unparseable):
        return {"__unparseable__": str(body)}
    return body


def _timestamp_text(moment: datetime | str | None) -> str | None:
    return moment.isoformat(sep=" ") if isinstance(moment, datetime) else moment


def _extra(filters: dict[str, Any], order_by: str, count: int, total: int) -> dict[str, Any]:
    return {"filters": filters, "order_by": order_by, "pagination": {"count": count, "total_count": total}}


def _reason(code: int) -> str:
    return {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Temporarily Unavailable", 504: "Gateway Time-out", 401: "Invalid token."}.get(code, "Error")


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and len(str(value)) <= 18 else None
    except (TypeError, ValueError):
        return None
