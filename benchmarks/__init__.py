"""Benchmarks: numbers live here, produced by commands and written to benchmarks/results/, never asserted in tests."""
