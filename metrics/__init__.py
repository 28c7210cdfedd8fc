"""Colorization metrics: batched torch functions and the registry table (:mod:`colorbench.metrics.registry`)."""
