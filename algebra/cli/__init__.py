"""The command line (``ialgebra query|explain``, :mod:`algebra.cli.main`), safe loading of
models and tensors from files (:mod:`algebra.cli.loading`) and the demo
(:mod:`algebra.cli.demo`)."""
