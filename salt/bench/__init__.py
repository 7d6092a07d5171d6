"""Benchmarks run as `python -m salt.bench.<name>`; each prints a small table to record."""
