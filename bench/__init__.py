"""colorbench: a reference harness for image colorization research (runner, data, CLI, experiments).

The Python API is :func:`colorbench.score` and :func:`colorbench.list_metrics` (colorbench.api); they are loaded on
first use, so that importing a part of the package (``colorbench.core``, say) does not load the metric networks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["__version__", "list_metrics", "score"]

if TYPE_CHECKING:
    from colorbench.api import list_metrics, score


def __getattr__(name: str) -> object:
    """``score`` and ``list_metrics`` from colorbench.api, imported when first asked for (PEP 562)."""
    if name in ("score", "list_metrics"):
        from colorbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'colorbench' has no attribute {name!r}")
