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
from .options import options, set_options
from .query import Query
from .session import Session, session
from .targets import Target, classes, topk

__version__ = "0.1.0"

__all__ = [
    "Expr",
    "Model",
    "Query",
    "Session",
    "Target",
    "classes",
    "compute",
    "explain",
    "model",
    "options",
    "session",
    "set_options",
    "topk",
]
