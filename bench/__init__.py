"""colorbench: a reference harness for image colorization research (runner, data, CLI, experiments)."""

__version__ = "0.1.0"
