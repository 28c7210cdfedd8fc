"""Typed reads of the values in JSON files and per-image records (run.json, ``records.jsonl``, the metadata of a
checkpoint, a study's rows): their types are known only when they are read, so each read here checks the type
it returns, where ``float(record["psnr"])`` on a ``Mapping[str, object]`` would only hope.

A plain number or string is checked first, as cheaply as float() itself; anything else that float() or int()
accepts (a NumPy scalar, a 0-d tensor) passes the slower protocol check after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import SupportsFloat, SupportsIndex, SupportsInt


def number(value: object) -> float:
    """``float(value)`` of a number or of a numeric string (``"nan"`` included); TypeError for anything else."""
    if isinstance(value, (float, int, str, SupportsFloat, SupportsIndex)):  # plain types first: the common case
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")


def integer(value: object) -> int:
    """``int(value)`` of a number or of an integer string; TypeError for anything else."""
    if isinstance(value, (int, float, str, SupportsInt, SupportsIndex)):
        return int(value)
    raise TypeError(f"expected an integer, got {type(value).__name__} {value!r}")


def section(record: Mapping[str, object], key: str) -> Mapping[str, object]:
    """``record[key]`` when it is an object, empty when it is missing, null or empty (``record.get(key) or {}``);
    TypeError when it is something else."""
    value = record.get(key)
    if not value:
        return {}
    if isinstance(value, Mapping):
        return value
    raise TypeError(f"{key!r} is {type(value).__name__} {value!r}, not an object")
