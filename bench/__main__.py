"""``python -m bench``: the colorbench command line."""

from colorbench.cli.main import main

raise SystemExit(main())
