"""``python -m algebra``: the ``ialgebra`` command line."""

from .cli import main

raise SystemExit(main())
