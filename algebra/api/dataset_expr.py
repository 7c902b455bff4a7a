"""``DatasetExpr``: a lazy expression whose result is a whole ``xarray.Dataset``.

Counterfactual neurons give several arrays over different dims (votes per neuron, changes
per mistake), so their expression computes to a ``Dataset``. It is computed, explained,
memoized and printed as query text like any :class:`~algebra.api.expr.Expr`; the
relational verbs do not apply to it (select from the computed ``Dataset`` instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ir.format import describe_expr
from ..ir.graph import to_networkx
from ..ir.node import Node
from ..lang.unparse import to_query
from ..runtime.session import Session, compute, explain
from .bindings import bound, plain_names

if TYPE_CHECKING:
    import networkx
    import xarray


class DatasetExpr:
    """A lazy expression computed into an ``xarray.Dataset``; nothing runs until
    :meth:`compute` (or :func:`algebra.compute`, with other expressions)."""

    def __init__(self, node: Node):
        self.node = node

    def __repr__(self) -> str:
        return f"DatasetExpr({describe_expr(self.node)})"

    def compute(self, optimize: bool = True, session: Session | None = None) -> xarray.Dataset:
        """Run the expression and return its ``Dataset`` (see :func:`algebra.compute`).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> torch.manual_seed(0) is not None
        True
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
        >>> q = ia.model(net).on(torch.randn(30, 4), labels=[1] * 30)
        >>> ds = q.counterfactual_neurons(1, top=2).compute()
        >>> ds.votes.dims, ds.attrs["method"]
        (('neuron', 'kind'), 'counterfactual_neurons')
        """
        (result,) = compute(self, optimize=optimize, session=session)
        return result

    def explain(self, optimized: bool = True) -> str:
        """The steps :meth:`compute` will take (the forward, the mistakes, the batched
        optimisation and the votes); runs nothing.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval(), name="lin").on(torch.rand(2, 4), labels=[0, 1])
        >>> print(q.counterfactual_neurons(1, top=2).explain().splitlines()[0])
        plan: 1 counterfactual neuron expression
        """
        return explain(self, optimized=optimized)

    def to_query(self, names: dict[str, Any] | None = None) -> str:
        """The expression as query-language text (see :meth:`Expr.to_query`).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4), labels=[0, 1])
        >>> q.mistakes(1).counterfactual_neurons(1).to_query()
        'select neurons from f(x) using counterfactual_neurons(top=5, max_steps=500, lr=0.01, l1=0.1, l2=0.01) where mistakes of 1'
        """
        return to_query(self.node, plain_names(names))[0]

    def bindings(self, names: dict[str, Any] | None = None) -> dict[str, Any]:
        """The bindings that go with :meth:`to_query`'s text (name -> Model or Query).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4), labels=[0, 1])
        >>> e = q.counterfactual_neurons(1, top=2)
        >>> ia.query(e.to_query(), **e.bindings()).node == e.node
        True
        """
        return bound(to_query(self.node, plain_names(names))[1])

    def graph(self) -> networkx.DiGraph:
        """The expression as a ``networkx.DiGraph``, edges from inputs to consumers.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4), labels=[0, 1])
        >>> [d["op"] for _, d in q.counterfactual_neurons(1).graph().nodes(data=True)]
        ['source', 'counterfactual_neurons']
        """
        return to_networkx(self.node)
