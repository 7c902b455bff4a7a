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

    def compute(self, optimize: bool = True) -> xarray.DataArray:
        """Run the expression and return its labelled result (see :func:`algebra.compute`).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.saliency(1).compute().shape
        (2, 4)
        """
        from .compute import compute

        (result,) = compute(self, optimize=optimize)
        return result

    def explain(self, optimized: bool = True) -> str:
        """The plan, stage by stage: the passes that :meth:`compute` will run.

        Parameters
        ----------
        optimized : bool, default True
            ``False`` shows the plan of ``compute(optimize=False)``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval(), name="lin").on(torch.rand(2, 4))
        >>> print(q.saliency("pred").explain())
        plan: 1 expression on 1 batch of inputs
        logical: 1 expression
          saliency(target='pred', abs=True)
        simplified: 1 unique expression, 1 gradient request
        physical: model 'lin' on inputs [2, 4]: 1 point set
          inputs (2 rows): pred wrt input
        fused:
          forward inputs (2 rows; with gradients)
            1 backward: 1 target wrt input
        chunked: every pass fits the memory budget in one chunk
        total: 1 forward (2 rows), 1 backward
        """
        from .compute import explain

        return explain(self, optimized=optimized)

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
