"""Heavy outside clients (the Airflow provider, dagster-dbt): installed only by `./dev outside`, in .venv-outside.

Airflow reads AIRFLOW_HOME when it is first imported and writes its config there: point it at a temporary
directory before any test module imports it, and only where Airflow is installed at all."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile

INSTALL = "./dev outside installs it in .venv-outside"

if importlib.util.find_spec("airflow") is not None:
    _home = tempfile.mkdtemp(prefix="dbtgate-airflow-home-")
    os.environ["AIRFLOW_HOME"] = _home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
