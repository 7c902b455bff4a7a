"""``python -m algebra``: the ``ialgebra`` command line."""

from .cli.main import main

raise SystemExit(main())
