"""``Expr``: the thin user-facing wrapper around a lazy attribution expression."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .operators import Attribution

if TYPE_CHECKING:
    import networkx
    import xarray


class Expr:
    """A lazy attribution: nothing runs until :meth:`compute` (or :func:`algebra.compute`)."""

    def __init__(self, node: Attribution):
        self.node = node

    def __repr__(self) -> str:
        from .planner import describe

        return f"Expr({describe(self.node)})"

    def compute(self) -> xarray.DataArray:
        """Run the expression and return its labelled result.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.saliency(1).compute().shape
        (2, 4)
        """
        from .compute import compute

        (result,) = compute(self)
        return result

    def explain(self) -> str:
        """The plan: the forward and backward passes that :meth:`compute` will run.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval(), name="lin").on(torch.rand(2, 4))
        >>> print(q.saliency("pred").explain())
        plan: 1 expression on 1 batch of inputs
        model 'lin' on inputs [2, 4]
          forward  inputs                    batch 2  (with gradients)
            backward saliency(target='pred', abs=True) wrt input: 1 target x 2 rows
        total: 1 forward (2 rows), 1 backward
        """
        from .compute import explain

        return explain(self)

    def graph(self) -> networkx.DiGraph:
        """The expression as a ``networkx.DiGraph``, edges from inputs to consumers.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
        >>> g = ia.model(net).on(torch.rand(2, 4)).layer("1").saliency(0).graph()
        >>> [d["op"] for _, d in g.nodes(data=True)]
        ['source', 'layer', 'attribution']
        """
        from .graph import to_networkx

        return to_networkx(self.node)
