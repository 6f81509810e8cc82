"""Where a gate result goes: step outputs, the job summary, annotations and the failing step's log."""
