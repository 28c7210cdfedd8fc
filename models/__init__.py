"""Colorization models; see :mod:`models.registry` for how families are registered and looked up."""
