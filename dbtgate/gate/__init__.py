"""The gate: which job, which run (trigger, reuse, adopt, latest), wait, retry, decide, and every way it ends."""
