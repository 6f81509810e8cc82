"""Watching a run to its end: the poll schedule, the estimate of the end, dbt's log, and the progress lines."""
