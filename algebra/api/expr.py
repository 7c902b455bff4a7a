"""``Expr``: the thin user-facing wrapper around a lazy attribution expression.

Relational verbs (``where``, ``sel``, ``isel``, ``mean``, ``sum``, ``abs``, ``normalize``,
``topk_features``, ``groupby``) and ``join`` chain like pandas or xarray methods; each adds
a node to the same graph, and all run together on the model's device at compute time. The
evaluation metrics come from :mod:`algebra.api.evaluation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ir.columns import as_predicate
from ..ir.format import describe_expr
from ..ir.graph import to_networkx
from ..ir.joins import Join
from ..ir.node import Node
from ..ir.relational import (
    Abs,
    GroupReduce,
    Normalize,
    Reduce,
    Select,
    Square,
    TopKFeatures,
    Variance,
    Where,
    as_dims,
    as_indexers,
)
from ..lang.unparse import to_query
from ..runtime.session import Session, compute, explain
from .bindings import bound, plain_names
from .evaluation import MetricMethods

if TYPE_CHECKING:
    import networkx
    import xarray


class Expr(MetricMethods):
    """A lazy attribution: nothing runs until :meth:`compute` (or :func:`algebra.compute`).

    Besides the verbs, the evaluation metrics of its map (``deletion``, ``insertion``,
    ``infidelity``, ``sensitivity_max``, ``faithfulness_correlation``) chain here too.
    """

    def __init__(self, node: Node):
        self.node = node

    def __repr__(self) -> str:
        return f"Expr({describe_expr(self.node)})"

    def join(self, other: Expr, how: str = "mean") -> Expr:
        """Join: combine with another attribution of the same shape, elementwise.

        Two inputs through one model, or one input through two models. ``mean`` is the
        i-Algebra definition (what matters to both); ``min`` keeps what is strong in both;
        ``product`` what both agree on, sign included.

        Parameters
        ----------
        other : Expr
        how : {"mean", "min", "product"}, default "mean"

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> m = ia.model(torch.nn.Linear(4, 3).eval())
        >>> a, b = m.on(torch.rand(2, 4)).saliency(0), m.on(torch.rand(2, 4)).saliency(0)
        >>> j, ra, rb = ia.compute(a.join(b), a, b)
        >>> bool(((ra + rb) / 2 == j).all())
        True
        """
        if not isinstance(other, Expr):
            raise TypeError(f"other: expected an expression; got {type(other).__name__}")
        return Expr(Join(self.node, other.node, how))

    def where(self, predicate: Any) -> Expr:
        """Keep the samples for which ``predicate`` holds (see :meth:`Query.where`).

        After a join or anti-join, the columns are the left side's.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4), ids=list("abcde"))
        >>> q.saliency(0).where(ia.col.id.isin(["b", "d"])).compute().sample.values.tolist()
        ['b', 'd']
        """
        return Expr(Where(self.node, as_predicate(predicate)))

    def sel(self, **indexers: Any) -> Expr:
        """Select by coordinate label, as ``xarray.DataArray.sel`` (e.g. ``sample=...``).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4), ids=list("abcde"))
        >>> q.saliency("all").sel(sample="c", target=[0, 2]).compute().sizes
        Frozen({'target': 2, 'feature': 4})
        """
        return Expr(Select(self.node, as_indexers(indexers, "sel"), by_label=True))

    def isel(self, **indexers: Any) -> Expr:
        """Select by position, as ``xarray.DataArray.isel`` (ints, slices or lists).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4))
        >>> q.saliency(0).isel(sample=slice(1, 3), feature=[0, 3]).compute().shape
        (2, 2)
        """
        return Expr(Select(self.node, as_indexers(indexers, "isel"), by_label=False))

    def mean(self, dim: str | list[str] | None = None) -> Expr:
        """Mean over ``dim`` (a name or list; ``None``: every dim).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4))
        >>> q.saliency(0).mean("sample").compute().dims
        ('feature',)
        """
        return Expr(Reduce(self.node, as_dims(dim), "mean"))

    def sum(self, dim: str | list[str] | None = None) -> Expr:
        """Sum over ``dim`` (a name or list; ``None``: every dim).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4))
        >>> q.saliency(0).sum("feature").compute().dims
        ('sample',)
        """
        return Expr(Reduce(self.node, as_dims(dim), "sum"))

    def var(self, dim: str | list[str] | None = None) -> Expr:
        """Population variance over ``dim`` (a name or list; ``None``: every dim), as
        ``xarray.DataArray.var``: ``E[a^2] - E[a]^2``. VarGrad is ``.var("noise")``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4))
        >>> q.noise(4, seed=0).saliency(0, abs=False).var("noise").compute().dims
        ('sample', 'feature')
        """
        return Expr(Variance(self.node, as_dims(dim)))

    def square(self) -> Expr:
        """The elementwise square. SmoothGrad² is ``.square().mean("noise")``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4))
        >>> r = q.input_x_gradient(0)
        >>> bool((r.square().compute() == r.compute() ** 2).all())
        True
        """
        return Expr(Square(self.node))

    def abs(self) -> Expr:
        """The absolute value.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4))
        >>> bool((q.input_x_gradient(0).abs().compute() >= 0).all())
        True
        """
        return Expr(Abs(self.node))

    def normalize(self, how: str = "max", dim: str | list[str] | None = None) -> Expr:
        """Rescale each map over ``dim`` (default: the attribution's own feature dims).

        ``max`` divides by the largest absolute value (to [-1, 1]); ``sum`` by the sum of
        absolute values; ``zscore`` subtracts the mean and divides by the standard deviation.
        All-zero maps stay zero.

        Parameters
        ----------
        how : {"max", "sum", "zscore"}, default "max"
        dim : str or list of str, optional

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4))
        >>> r = q.saliency(0).normalize("max").compute()
        >>> r.max("feature").values.round(6).tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0]
        """
        return Expr(Normalize(self.node, how, as_dims(dim)))

    def topk_features(self, k: int, dim: str | list[str] | None = None, by: str = "abs") -> Expr:
        """Keep each map's ``k`` most important features and set the rest to zero.

        Parameters
        ----------
        k : int
        dim : str or list of str, optional
            The dims ranked together (default: the attribution's own feature dims).
        by : {"abs", "value"}, default "abs"
            Rank by magnitude, or by signed value (the most positive evidence).

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(5, 4))
        >>> r = q.saliency(0).topk_features(2).compute()
        >>> (r != 0).sum("feature").values.tolist()
        [2, 2, 2, 2, 2]
        """
        return Expr(TopKFeatures(self.node, k, as_dims(dim), by))

    def groupby(self, key: str) -> GroupBy:
        """Group samples by a per-sample coordinate (``label``, ``pred``, ``class``, ...).

        Then reduce with ``.mean()`` or ``.sum()``: the group dim ``key`` replaces
        ``sample``, as with ``xarray.DataArray.groupby(key).mean()``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4), labels=[0, 1, 0, 1, 2, 2])
        >>> q.saliency("label").groupby("label").mean().compute().sizes
        Frozen({'label': 3, 'feature': 4})
        """
        if not isinstance(key, str):
            raise TypeError(f"key: expected a coordinate name (str); got {key!r}")
        return GroupBy(self, key)

    def to_query(self, names: dict[str, Any] | None = None) -> str:
        """The expression as query-language text, when it has one.

        Models and inputs are named from ``names`` (name -> model, module, query or
        tensor), else ``f``, ``g``, ... and ``x``, ``x2``, ...; :meth:`bindings` gives the
        matching bindings, so ``ia.query(e.to_query(), **e.bindings())`` rebuilds ``e``.
        Raises ``ValueError`` for expressions the language cannot express (edited inputs,
        reductions, ...).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
        >>> e = ia.model(net).on(torch.rand(2, 4)).layer("1").saliency("pred")
        >>> e.to_query()
        'select 1 from f(x) using saliency(abs=true) target pred'
        """
        return to_query(self.node, plain_names(names))[0]

    def bindings(self, names: dict[str, Any] | None = None) -> dict[str, Any]:
        """The bindings that go with :meth:`to_query`'s text (name -> Model or Query).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> e = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4)).saliency(0)
        >>> ia.query(e.to_query(), **e.bindings()).node == e.node
        True
        """
        return bound(to_query(self.node, plain_names(names))[1])

    def compute(
        self,
        optimize: bool = True,
        session: Session | None = None,
        client: Any = None,
        scheduler: str | None = None,
        progress: bool = False,
    ) -> xarray.DataArray:
        """Run the expression and return its labelled result (see :func:`algebra.compute`,
        which takes the same keywords: ``client`` or ``scheduler`` run it on dask).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.saliency(1).compute().shape
        (2, 4)
        >>> r = q.saliency(1).compute(scheduler="threads")
        >>> r.shape, type(r.data).__name__
        ((2, 4), 'Array')
        """
        (result,) = compute(
            self,
            optimize=optimize,
            session=session,
            client=client,
            scheduler=scheduler,
            progress=progress,
        )
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
        return to_networkx(self.node)


class GroupBy:
    """Samples grouped by a per-sample coordinate; reduce with :meth:`mean` or :meth:`sum`."""

    def __init__(self, expr: Expr, key: str):
        self.expr = expr
        self.key = key

    def __repr__(self) -> str:
        return f"GroupBy({self.key!r})"

    def mean(self) -> Expr:
        """The mean of each group.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(4, 4), labels=[0, 1, 0, 1])
        >>> q.saliency(0).groupby("label").mean().compute().label.values.tolist()
        [0, 1]
        """
        return Expr(GroupReduce(self.expr.node, self.key, "mean"))

    def sum(self) -> Expr:
        """The sum of each group.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(4, 4), labels=[0, 1, 0, 1])
        >>> q.saliency(0).groupby("label").sum().compute().sizes["label"]
        2
        """
        return Expr(GroupReduce(self.expr.node, self.key, "sum"))
