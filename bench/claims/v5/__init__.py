"""Rule set version 5 (issue 21; bench/claims/versions/5.toml): ``c2@5`` in .c2 (C2 with arms from L alone and a
gated judge) and ``c1@5``, ``c5@5``, ``c6-premise@5``, ``c7@5`` in .restated. Importing the package registers
every rule function of the version (bench/claims/registry.py imports ``colorbench.claims.v<k>``)."""

from colorbench.claims.v5 import c2, restated

__all__ = ["c2", "restated"]
