"""Heavy outside clients (the Airflow provider, dagster-dbt): installed only by `./dev outside`, in .venv-outside.

Airflow reads AIRFLOW_HOME when it is first imported and writes its config there: point it at a temporary
directory before any test module imports it, and only where Airflow is installed at all."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from typing import Any

import pytest

from tests.conftest import BASE_JOBS, EmulatorFactory

INSTALL = "./dev outside installs it in .venv-outside"
ENDLESS = {"id": 8, "name": "Endless backfill", "run_seconds": 10**9}   # the run that gets cancelled

if importlib.util.find_spec("airflow") is not None:
    _home = tempfile.mkdtemp(prefix="dbtgate-airflow-home-")
    os.environ["AIRFLOW_HOME"] = _home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    atexit.register(shutil.rmtree, _home, ignore_errors=True)


@pytest.fixture
def tls_emulator(emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator over HTTPS, trusted by requests, with the usual jobs and one that never ends (to cancel)."""
    emulator = emulator_factory(tls=True, time_scale=600, jobs=[*BASE_JOBS, ENDLESS])
    assert emulator.ca_file is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.ca_file))
    return emulator
