"""The built-in demo (``ialgebra demo``, ``make demo``): both papers' case studies on
scikit-learn's digits, end to end, with a static report.

- :mod:`algebra.demo.data`: the digits tasks (clean, backdoored, spurious mark);
- :mod:`algebra.demo.nets`: the networks and their training;
- :mod:`algebra.demo.models`: trained models cached under a hash of their recipe;
- :mod:`algebra.demo.context`: the sizes of a run and the data and models its studies share;
- :mod:`algebra.demo.studies`: the four studies, each written with the public API;
- :mod:`algebra.demo.metrics`, :mod:`algebra.demo.figures`, :mod:`algebra.demo.report`:
  the numbers, the plots and the HTML report;
- :mod:`algebra.demo.run`: runs the studies and writes the report (what the CLI calls).

Nothing in the engine imports this package; it uses the library as a user would.
"""
