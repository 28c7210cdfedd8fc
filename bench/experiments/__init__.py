"""Measurement scripts beside the harness, each runnable as ``python -m colorbench.experiments.<name>``."""
