"""ialgebra: interactive, composable interpretability of PyTorch models.

Build lazy attribution expressions with chained calls, then compute them together into
labelled ``xarray`` results::

    import algebra as ia
    q = ia.model(net, classes=names).on(images, labels=labels)
    sal = q.saliency("pred").compute()
"""

from .compute import compute, explain
from .expr import Expr
from .model import Model, model
from .query import Query
from .targets import Target, classes, topk

__version__ = "0.1.0"

__all__ = [
    "Expr",
    "Model",
    "Query",
    "Target",
    "classes",
    "compute",
    "explain",
    "model",
    "topk",
]
