"""dbtgate: trigger a dbt Cloud job, wait for its run, and let a pipeline continue only if it succeeded.

As a library: `dbtgate.run_job(...)`, `dbtgate.wait_for_run(...)`, `dbtgate.latest_run(...)` (see dbtgate/api.py).
The names are imported on first use, so `import dbtgate` (for `__version__`, say) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dbtgate.api import RunFailed, RunResult, cancel_run, latest_run, run_job, wait_for_run
    from dbtgate.errors import ConfigError

__all__ = ["ConfigError", "RunFailed", "RunResult", "__version__", "cancel_run", "latest_run", "run_job",
           "wait_for_run"]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from dbtgate import api

        return getattr(api, name)
    raise AttributeError(f"module 'dbtgate' has no attribute {name!r}")
