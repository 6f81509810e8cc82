"""The emulator's HTTP face: routing, auth, envelopes, validation, fault delivery and the request log."""

from __future__ import annotations

import ast
import html
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from dbtgate.emulator.faults import FaultInjector, RequestFacts
from dbtgate.emulator.scenario import FaultSpec
from dbtgate.emulator.world import World

API = r"^/api/v2/accounts/(?P<account>[^/]+)"
ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(API + r"/jobs/(?P<job>[^/]+)/run/?$"), {"POST": "trigger"}),
    (re.compile(API + r"/jobs/(?P<job>[^/]+)/rerun/?$"), {"POST": "rerun"}),
    (re.compile(API + r"/jobs/(?P<job>[^/]+)/?$"), {"GET": "get_job"}),
    (re.compile(API + r"/jobs/?$"), {"GET": "list_jobs"}),
    (re.compile(API + r"/runs/?$"), {"GET": "list_runs"}),
    (re.compile(API + r"/runs/(?P<run>[^/]+)/cancel/?$"), {"POST": "cancel"}),
    (re.compile(API + r"/runs/(?P<run>[^/]+)/artifacts/?$"), {"GET": "list_artifacts"}),
    (re.compile(API + r"/runs/(?P<run>[^/]+)/artifacts/(?P<path>.+)$"), {"GET": "get_artifact"}),
    (re.compile(API + r"/runs/(?P<run>[^/]+)/?$"), {"GET": "get_run"}),
]
RUN_PAGE = re.compile(r"^/deploy/(?P<account>\d+)/projects/\d+/runs/(?P<run>\d+)/?$")

INT_FIELDS = ("github_pull_request_id", "gitlab_merge_request_id", "azure_pull_request_id",
              "non_native_pull_request_id", "threads_override", "timeout_seconds_override")
STR_FIELDS = ("git_sha", "git_branch", "schema_override", "dbt_version_override", "target_name_override")
INVALID = "The request was invalid. Please double check the provided data and try again."
HTML_502 = ("<html>\r\n<head><title>{code} Bad Gateway</title></head>\r\n<body>\r\n<center><h1>{code} Bad Gateway"
            "</h1></center>\r\n</body>\r\n</html>\r\n")


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


@dataclass
class RequestLog:
    entries: list[LoggedRequest] = field(default_factory=list)
    # Endpoints of requests as they arrive, before any answer: a slow fault's request shows here at once.
    arrivals: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: LoggedRequest) -> None:
        with self.lock:
            self.entries.append(entry)

    def arrived(self, endpoint: str) -> int:
        with self.lock:
            return self.arrivals.count(endpoint)

    def all(self) -> list[LoggedRequest]:
        with self.lock:
            return list(self.entries)

    def of(self, endpoint: str) -> list[LoggedRequest]:
        return [entry for entry in self.all() if entry.endpoint == endpoint]

    def cancels(self) -> list[int]:
        return [e.run_id for e in self.of("cancel") if e.run_id is not None]

    def polls(self, run_id: int) -> int:
        return sum(1 for e in self.of("get_run") if e.run_id == run_id)


def parse_include_related(values: list[str]) -> frozenset[str]:
    """`include_related` as real clients send it: repeated keys, a comma list, a JSON list or a Python list."""
    names: set[str] = set()
    for value in values:
        text = value.strip()
        items: list[Any]
        if text.startswith("["):
            try:
                items = list(json.loads(text))
            except ValueError:
                try:
                    items = list(ast.literal_eval(text))
                except (ValueError, SyntaxError):
                    items = text.strip("[]").split(",")
        else:
            items = text.split(",")
        names.update(str(item).strip().strip("'\"").strip() for item in items)
    names.discard("")
    return frozenset(names)


def parse_int_list(values: list[str]) -> set[int] | None:
    numbers: set[int] = set()
    for value in values:
        for part in value.strip().strip("[]()").split(","):
            part = part.strip()
            if part:
                numbers.add(int(part))
    return numbers


class ApiError(Exception):
    def __init__(self, code: int, user_message: str, developer_message: str | None = None) -> None:
        super().__init__(user_message)
        self.code, self.user_message, self.developer_message = code, user_message, developer_message


def envelope(code: int, data: Any, user_message: str = "Success!", developer_message: str | None = "",
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": {"code": code, "is_success": 200 <= code < 300, "user_message": user_message,
                                       "developer_message": developer_message}, "data": data}
    if extra is not None:
        body["extra"] = extra
    return body


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
    server_version = "dbtgate-emulator"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log is the record
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK add ~40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # ---- the pipeline -------------------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        world = self.server.world
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        raw_body = self._read_body()
        body = self._parse_body(raw_body)
        auth_header = self.headers.get("Authorization", "")
        scheme, _, token = auth_header.partition(" ")
        endpoint, params = self._route(method, path)
        run_id = _int_or_none(params.get("run"))
        job_id = _int_or_none(params.get("job"))
        if job_id is None and run_id is not None:
            job_id = world.run_job_id(run_id)
        entry: dict[str, Any] = {
            "method": method, "path": path, "endpoint": endpoint, "query": query, "body": body,
            "auth_scheme": scheme or None, "run_id": run_id, "job_id": job_id, "fault": None,
            "at": world.elapsed(),
        }
        if path.startswith("/_emulator/") or RUN_PAGE.match(path):
            self._control(path)
            return
        with self.server.log.lock:
            self.server.log.arrivals.append(endpoint)
        fault = None
        if endpoint not in ("unknown", "wrong_method"):
            fault = self.server.faults.choose(RequestFacts(endpoint, run_id, job_id, world.elapsed()))
        if fault is not None:
            entry["fault"] = fault.kind
        self._pending = entry
        self._respond_api(method, endpoint, params, query, body, scheme, token, fault, entry)
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

    def _respond_api(self, method: str, endpoint: str, params: dict[str, str], query: dict[str, list[str]],
                     body: Any, scheme: str, token: str, fault: FaultSpec | None,
                     entry: dict[str, Any]) -> int | None:
        if fault is not None and fault.kind in ("http_error", "malformed_json", "drop_connection", "slow"):
            if fault.kind == "drop_connection":
                self.close_connection = True
                return None
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "malformed_json":
                self._send_raw(200, b'{"status": {"code": 200, "is_success": tr', "application/json")
                return 200
            else:
                return self._send_fault_status(fault)
        try:
            if endpoint == "unknown":
                raise ApiError(404, "The requested resource was not found.", f"No route for {self.path}")
            if endpoint == "wrong_method":
                raise ApiError(405, f'Method "{method}" not allowed.', None)
            if scheme not in ("Token", "Bearer") or token != self.server.world.scenario.token:
                raise ApiError(401, "Invalid token.", None)
            if _int_or_none(params.get("account")) != self.server.world.scenario.account_id:
                raise ApiError(404, "The requested resource was not found.",
                               f"Account {params.get('account')} not found or not accessible with this token.")
            if fault is not None and fault.kind == "not_found_new_run":
                raise ApiError(404, "The requested resource was not found.", "Run not found.")
            code, payload, extra = self._dispatch(endpoint, params, query, body, fault, entry)
        except ApiError as error:
            self._send_json(error.code, envelope(error.code, None, error.user_message, error.developer_message))
            return error.code
        if isinstance(payload, str):
            self._send_raw(code, payload.encode(), "text/plain")
            return code
        if endpoint == "get_artifact":
            self._send_json(code, payload)
            return code
        if fault is not None and fault.kind == "lose_trigger_response":
            self.close_connection = True
            return None
        if fault is not None and fault.kind == "delay_trigger_response":
            time.sleep(fault.delay)
        self._send_json(code, envelope(code, payload, extra=extra))
        return code

    def _dispatch(self, endpoint: str, params: dict[str, str], query: dict[str, list[str]], body: Any,
                  fault: FaultSpec | None, entry: dict[str, Any]) -> tuple[int, Any, dict[str, Any] | None]:
        world = self.server.world
        include = parse_include_related(query.get("include_related", []))
        if endpoint in ("trigger", "rerun", "get_job"):
            job = world.scenario.job(_int_or_none(params.get("job")) or -1)
            if job is None:
                raise ApiError(404, "The requested resource was not found.", f"Job {params.get('job')} not found.")
            if endpoint == "get_job":
                return 200, world.job_json(job), None
            run = world.trigger(job, validate_trigger_body(body)) if endpoint == "trigger" else world.rerun(job)
            entry["created_run"] = run["id"]
            return 200, run, None
        if endpoint == "list_jobs":
            jobs = [world.job_json(job) for job in world.scenario.jobs]
            return 200, jobs, _extra({}, "id", len(jobs), len(jobs))
        if endpoint == "list_runs":
            return self._list_runs(query, include)
        run_id = _int_or_none(params.get("run"))
        if run_id is None or not world.has_run(run_id):
            raise ApiError(404, "The requested resource was not found.", f"Run {params.get('run')} not found.")
        if endpoint == "get_run":
            run = world.run_json(run_id, include)
            if fault is not None and fault.kind == "unknown_status":
                run.update(status=fault.code, status_humanized="Unknown", in_progress=False, is_complete=False)
            return 200, run, None
        if endpoint == "cancel":
            return 200, world.cancel(run_id), None
        step = _int_or_none(query["step"][0]) if query.get("step") else None
        if endpoint == "list_artifacts":
            return 200, world.artifact_paths(run_id, step), None
        artifact = world.artifact(run_id, params["path"], step)
        if artifact is None:
            raise ApiError(404, "The requested resource was not found.",
                           f"No artifact {params['path']} for run {run_id}.")
        return 200, artifact, None

    def _list_runs(self, query: dict[str, list[str]], include: frozenset[str]
                   ) -> tuple[int, Any, dict[str, Any] | None]:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None
        try:
            job_text = one("job_definition_id")
            job_id = int(job_text) if job_text else None
            statuses = parse_int_list(query["status__in"]) if "status__in" in query else None
            if one("status"):
                statuses = (statuses or set()) | {int(one("status") or 0)}
            limit = int(one("limit") or 100)
            offset = int(one("offset") or 0)
        except ValueError as error:
            raise ApiError(400, INVALID, f"Invalid filter: {error}") from error
        if not 1 <= limit <= 100:
            raise ApiError(400, INVALID, "limit must be between 1 and 100.")
        if offset < 0:
            raise ApiError(400, INVALID, "offset must be zero or more.")
        order_by = one("order_by") or "id"
        if order_by.lstrip("-") not in ("id", "created_at", "finished_at"):
            raise ApiError(400, INVALID, f"Cannot order by {order_by!r}: use id, created_at or finished_at.")
        runs, total = self.server.world.list_runs(job_id=job_id, statuses=statuses, order_by=order_by,
                                                  limit=limit, offset=offset, include=include)
        filters: dict[str, Any] = {"account_id": self.server.world.scenario.account_id, "limit": limit,
                                   "offset": offset}
        if job_id is not None:
            filters["job_definition_id"] = job_id
        if statuses is not None:
            filters["status__in"] = sorted(statuses)
        return 200, runs, _extra(filters, order_by, len(runs), total)

    # ---- helpers ------------------------------------------------------------------------------------------
    def _route(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        for pattern, methods in ROUTES:
            match = pattern.match(path)
            if match:
                if method not in methods:
                    return "wrong_method", match.groupdict()
                return methods[method], match.groupdict()
        return "unknown", {}

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _parse_body(self, raw: bytes) -> Any:
        if not raw:
            return None
        content_type = self.headers.get("Content-Type", "")
        text = raw.decode("utf-8", "replace")
        if "application/x-www-form-urlencoded" in content_type:
            return {key: values[-1] for key, values in parse_qs(text).items()}
        try:
            return json.loads(text)
        except ValueError:
            return {"__unparseable__": text[:200]}

    def _send_fault_status(self, fault: FaultSpec) -> int:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        if fault.status == 401:
            self._send_json(401, envelope(401, None, "Invalid token.", None), headers)
        elif fault.body == "html":
            page = HTML_502.format(code=fault.status).replace("Bad Gateway", _reason(fault.status))
            self._send_raw(fault.status, page.encode(), "text/html", headers)
        elif fault.body == "empty":
            self._send_raw(fault.status, b"", "text/plain", headers)
        else:
            self._send_json(fault.status, envelope(fault.status, None, _reason(fault.status), None), headers)
        return fault.status

    def _send_json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(code, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(self, code: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._commit_log(code)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _control(self, path: str) -> None:
        world = self.server.world
        page = RUN_PAGE.match(path)
        if page:
            run_id = int(page["run"])
            if not world.has_run(run_id):
                self._send_raw(404, b"<h1>Run not found</h1>", "text/html")
                return
            run = world.run_json(run_id, frozenset({"run_steps", "job"}))
            steps = "".join(f"<li>{html.escape(s['name'])}: {s['status_humanized']} ({s['duration']})</li>"
                            for s in run["run_steps"])
            body = (f"<html><head><title>Run #{run_id}</title></head><body><h1>{html.escape(run['job']['name'])}"
                    f" — run #{run_id}: {run['status_humanized']}</h1><p>{html.escape(run['status_message'] or '')}"
                    f"</p><ul>{steps}</ul><p>Served by the dbtgate emulator.</p></body></html>")
            self._send_raw(200, body.encode(), "text/html")
        elif path.rstrip("/") == "/_emulator/requests":
            entries = [e.__dict__ for e in self.server.log.all()]
            self._send_json(200, {"requests": entries})
        elif path.rstrip("/") == "/_emulator/health":
            self._send_json(200, {"ok": True, "runs": world.run_ids()})
        else:
            self._send_json(404, envelope(404, None, "The requested resource was not found.", None))


def validate_trigger_body(body: Any) -> dict[str, Any]:
    """The trigger body checked as dbt Cloud checks it: 400 with the field's name for anything it would refuse."""
    if not isinstance(body, dict) or "__unparseable__" in body:
        raise ApiError(400, INVALID, "The request body must be a JSON object.")
    problems: list[str] = []
    cause = body.get("cause")
    if not isinstance(cause, str) or not cause.strip():
        problems.append("cause: This field is required and may not be blank.")
    elif len(cause) > 255:
        problems.append("cause: Ensure this field has no more than 255 characters.")
    for name in INT_FIELDS:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"{name}: A valid integer is required.")
    for name in STR_FIELDS:
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            problems.append(f"{name}: Not a valid non-empty string.")
    docs = body.get("generate_docs_override")
    if docs is not None and not isinstance(docs, bool):
        problems.append("generate_docs_override: Must be a valid boolean.")
    steps = body.get("steps_override")
    if steps is not None and (not isinstance(steps, list) or not all(isinstance(s, str) and s for s in steps)):
        problems.append("steps_override: Expected a list of non-empty strings.")
    if problems:
        raise ApiError(400, INVALID, " ".join(problems))
    return body


def _extra(filters: dict[str, Any], order_by: str, count: int, total: int) -> dict[str, Any]:
    return {"filters": filters, "order_by": order_by, "pagination": {"count": count, "total_count": total}}


def _reason(code: int) -> str:
    return {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Temporarily Unavailable", 504: "Gateway Time-out", 401: "Invalid token."}.get(code, "Error")


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
