"""ialgebra: interactive, composable interpretability of PyTorch models.

Build lazy attribution expressions with chained calls, then compute them together into
labelled ``xarray`` results::

    import algebra as ia
    q = ia.model(net, classes=names).on(images, labels=labels)
    sal = q.saliency("pred").compute()

The packages follow a query's flow: ``api`` (what users call) builds ``ir`` nodes, the
``optimizer`` plans them into kernel jobs, the ``runtime`` runs them on ``kernels`` and
``results`` labels them as xarray; ``lang`` is the query language, ``cli`` the command line.
"""

from .api import attacks, guides
from .api.bind import query
from .api.dataset_expr import DatasetExpr
from .api.expr import Expr
from .api.mitigation import Mitigation
from .api.model import Model, model
from .api.query import Query
from .config import options, set_options
from .ir.columns import col
from .ir.players import grid, patches
from .ir.targets import Target, classes, topk, unit, units
from .lang.errors import QueryError, QuerySyntaxError
from .results import dataset_plot as dataset_plot  # ``.ia`` on NeuroInspect Datasets
from .results import plot as plot  # registers the ``.ia`` accessor on xarray results
from .results.stack import stack
from .runtime.session import Session, compute, explain, session

__version__ = "0.1.0"

__all__ = [
    "DatasetExpr",
    "Expr",
    "Mitigation",
    "Model",
    "Query",
    "QueryError",
    "QuerySyntaxError",
    "Session",
    "Target",
    "attacks",
    "classes",
    "col",
    "compute",
    "explain",
    "grid",
    "guides",
    "model",
    "options",
    "patches",
    "query",
    "session",
    "set_options",
    "stack",
    "topk",
    "unit",
    "units",
]
