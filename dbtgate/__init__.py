"""dbtgate: trigger a dbt Cloud job, wait for its run, and let a pipeline continue only if it succeeded."""

__version__ = "0.1.0"
