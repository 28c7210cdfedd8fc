"""Test-only model families, registered through ``COLORBENCH_MODEL_FAMILIES`` (models/registry.py)."""
