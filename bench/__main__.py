"""``python -m bench``: the colorbench command line."""

from bench.cli import main

raise SystemExit(main())
