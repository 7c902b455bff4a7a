"""ialgebra: interactive, composable interpretability of PyTorch models.

Build lazy attribution expressions with chained calls, then compute them together into
labelled ``xarray`` results::

    import algebra as ia
    q = ia.model(net, classes=names).on(images, labels=labels)
    sal = q.saliency("pred").compute()
"""

from . import plot as plot  # registers the ``.ia`` accessor on xarray results
from .bind import query
from .columns import col
from .compute import compute, explain
from .expr import Expr
from .model import Model, model
from .options import options, set_options
from .query_errors import QueryError, QuerySyntaxError
from .session import Session, session
from .targets import Target, classes, topk
from .view import Query

__version__ = "0.1.0"

__all__ = [
    "Expr",
    "Model",
    "Query",
    "QueryError",
    "QuerySyntaxError",
    "Session",
    "Target",
    "classes",
    "col",
    "compute",
    "explain",
    "model",
    "options",
    "query",
    "session",
    "set_options",
    "topk",
]
