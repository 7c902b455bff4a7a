"""Between the API and the query language: names the user gives and bindings handed back.

:mod:`algebra.lang` works on what the nodes hold (model infos, sources, tensors, modules);
the API's objects (``Model``, ``Query``) are unwrapped before and wrapped again after.
``Model`` and ``Query`` are built on ``Expr``, so this module cannot import them: each
registers its own wrapping in :func:`wrap`, a dispatch table on what the nodes hold.
"""

from __future__ import annotations

import functools
from typing import Any

from ..ir.model import ModelInfo
from ..ir.node import Node
from ..ir.views import source_of


@functools.singledispatch
def wrap(value: Any) -> Any:
    """The API object for what a node holds (registered by ``Model`` and ``Query``).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> m = ia.model(torch.nn.Linear(4, 3))
    >>> isinstance(wrap(m.info), ia.Model), wrap(3)
    (True, 3)
    """
    return value


def plain_names(names: dict[str, Any] | None) -> dict[str, Any] | None:
    """The names a user passes to ``to_query``, as what the nodes hold: a model becomes its
    module, a query the tensor of inputs it reads.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Linear(4, 3)
    >>> plain_names({"f": ia.model(net)})["f"] is net
    True
    """
    if names is None:
        return None
    out: dict[str, Any] = {}
    for name, value in names.items():
        if isinstance(getattr(value, "info", None), ModelInfo):  # a Model
            value = value.info.torch_module
        elif isinstance(getattr(value, "node", None), Node) and value.node.role == "view":
            value = source_of(value.node).inputs.value  # a Query
        out[name] = value
    return out


def bound(bindings: dict[str, Any]) -> dict[str, Any]:
    """Bindings from the query language as API objects (model infos become ``Model``,
    sources become ``Query``).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> m = ia.model(torch.nn.Linear(4, 3))
    >>> q = m.on(torch.rand(2, 4))
    >>> out = bound({"f": m.info, "x": q.node})
    >>> isinstance(out["f"], ia.Model), out["x"].node == q.node
    (True, True)
    """
    return {name: wrap(value) for name, value in bindings.items()}
