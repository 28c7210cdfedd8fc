"""Colorization models; see :mod:`colorbench.models.registry` for how families are registered and looked up."""
