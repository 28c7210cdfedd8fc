"""Measurement scripts beside the harness, each runnable as ``python -m bench.experiments.<name>``."""
