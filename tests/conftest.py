from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dbtgate.clock import Clock, VirtualClock
from dbtgate.emulator import Emulator, parse_scenario

# Reference data copied into the checkout (tests/fixtures/README.md): no test reads outside it.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = FIXTURES / "reference"
TOKEN = "s3cr3t-Token-value-0123456789abcdef"

BASE_JOBS: list[dict[str, Any]] = [
    {"id": 1, "name": "Production build", "outcome": "success", "run_seconds": 60},
    {"id": 2, "name": "Nightly build", "outcome": "error", "run_seconds": 60},
    {"id": 3, "name": "Flaky then fixed", "outcomes": ["error", "success"], "run_seconds": 30,
     "failures": [{"node": "orders", "status": "error"}]},
    {"id": 4, "name": "Long backfill", "run_seconds": 3600},
    {"id": 5, "name": "Parse only", "execute_steps": ["dbt parse"], "artifacts": False, "run_seconds": 10},
    {"id": 6, "name": "Cancelled elsewhere", "outcome": "cancelled", "run_seconds": 60},
    {"id": 7, "name": "Warnings", "run_seconds": 30,
     "warnings": [{"node": "unique_customers_customer_id", "message": "Got 2 results, configured to warn if != 0"}]},
]


def scenario(faults: list[dict[str, Any]] | None = None, jobs: list[dict[str, Any]] | None = None,
             time_scale: float = 1.0, **extra: Any) -> Any:
    return parse_scenario({"account_id": 1, "token": TOKEN, "time_scale": time_scale,
                           "jobs": jobs if jobs is not None else BASE_JOBS, "faults": faults or [], **extra})


EmulatorFactory = Callable[..., Emulator]


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    started: list[Emulator] = []

    def make(faults: list[dict[str, Any]] | None = None, jobs: list[dict[str, Any]] | None = None,
             time_scale: float = 1.0, clock: Clock | None = None, tls: bool = False, **extra: Any) -> Emulator:
        emulator = Emulator(scenario(faults, jobs, time_scale, **extra), clock=clock, tls=tls)
        started.append(emulator.start())
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> Emulator:
    return emulator_factory()


class Api:
    """The emulator's API as a test calls it: authenticated GETs and POSTs, a trigger, a run."""

    def __init__(self, emulator: Emulator, scheme: str = "Token") -> None:
        self.emulator = emulator
        self.base = f"{emulator.url}/api/v2/accounts/1"
        self.headers = {"Authorization": f"{scheme} {TOKEN}"}

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.base}/{path}", params=params or None, headers=self.headers, timeout=5)

    def post(self, path: str, body: Any = None) -> requests.Response:
        return requests.post(f"{self.base}/{path}", json=body, headers=self.headers, timeout=5)

    def trigger(self, job_id: int = 1, **body: Any) -> dict[str, Any]:
        response = self.post(f"jobs/{job_id}/run/", {"cause": "test", **body})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def run(self, run_id: int, include: str | None = None) -> dict[str, Any]:
        params = {"include_related": include} if include else {}
        response = self.get(f"runs/{run_id}/", **params)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def api(emulator_factory: EmulatorFactory, clock: VirtualClock) -> Api:
    return Api(emulator_factory(clock=clock))
