"""The page's built-in default: the demo's models and data sets (``ialgebra serve`` with no
files). The one module of the web package that knows the demo; the models are trained on
first use and cached (see ``ialgebra demo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..demo import data as dd
from ..demo.context import Context
from .catalog import Catalog, DataSet

MODELS = ("cnn", "mlp", "backdoored", "spurious")
#: NeuroInspect's setting in the demo: the spurious-mark CNN, its pooled last block, class 8.
NEURO = {"model": "spurious", "layer": "block4", "cls": 8, "audit": "audit",
         "train": "spurious_train", "val": "audit", "test": "spurious_test"}  # fmt: skip


def demo_catalog(
    quick: bool = False, cache: Path | None = None, models: Sequence[str] = MODELS
) -> Catalog:
    """The demo's models (trained, or loaded from the cache) and data sets.

    Data sets: ``digits`` (the clean test split), ``triggered`` (the same with the
    backdoor's trigger), ``audit`` (the spurious-mark task's unbiased audit split, where
    NeuroInspect looks for mistakes), ``spurious_train`` and ``spurious_test``.

    Parameters
    ----------
    quick : bool
        The demo's tiny sizes (``ialgebra demo --quick``), for tests.
    cache : pathlib.Path, optional
        Where trained models are kept (default ``IALGEBRA_CACHE`` or ``~/.cache/ialgebra``).
    models : sequence of str
        Which of :data:`MODELS` to serve.

    Returns
    -------
    Catalog

    Examples
    --------
    Building it trains the models not yet cached (seconds in quick mode, a few minutes
    otherwise); ``tests/web`` build the quick one once per test session.

    >>> demo_catalog(models=["resnet"])
    Traceback (most recent call last):
    ValueError: models: unknown demo models ['resnet']; expected some of ['cnn', 'mlp', 'backdoored', 'spurious']
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"models: unknown demo models {unknown}; expected some of {list(MODELS)}")
    ctx = Context(quick=quick, cache=cache)
    data = demo_data(ctx)
    build = {"cnn": lambda: ctx.cnn, "mlp": lambda: ctx.mlp,
             "backdoored": lambda: ctx.backdoored, "spurious": lambda: ctx.spurious_cnn}  # fmt: skip
    served = {name: build[name]() for name in models}
    neuro = NEURO if "spurious" in served else {}
    return Catalog(served, data, dict(neuro))


def demo_data(ctx: Context | None = None) -> dict[str, DataSet]:
    """The demo's data sets by name (built from scikit-learn's digits; no model trained).

    Examples
    --------
    >>> sorted(demo_data())
    ['audit', 'digits', 'spurious_test', 'spurious_train', 'triggered']
    """
    ctx = ctx or Context()
    clean, backdoor, spurious = ctx.clean, ctx.backdoor, ctx.spurious
    names = {g: dd.group_name(g) for g in range(20)}
    data = {
        "digits": DataSet("digits", clean.x_test, clean.y_test, "the clean test split"),
        "triggered": DataSet("triggered", backdoor.x_test_triggered, backdoor.y_test,
                             "the test split with the backdoor's trigger (true labels)"),
        "audit": DataSet("audit", spurious.x_audit, spurious.y_audit,
                         "spurious task, audit split (the mark at random)",
                         spurious.groups_audit, names),
        "spurious_train": DataSet("spurious_train", spurious.x_train, spurious.y_train,
                                  f"spurious task, training split (a mark beside {spurious.cls})"),
        "spurious_test": DataSet("spurious_test", spurious.x_test, spurious.y_test,
                                 "spurious task, test split (the mark at random)",
                                 spurious.groups_test, names),
    }  # fmt: skip
    return data
