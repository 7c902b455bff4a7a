"""One attribution per attributed input: what a method returns on several inputs.

An attribution of several inputs is one node (one request: the inputs share every
forward and backward); each input's share is an :class:`~algebra.ir.inputs.InputPart`
over it, an ordinary :class:`~algebra.api.expr.Expr` with that input's own dims. A method
returns them as Captum returns its attributions: a tuple for a tuple of inputs
(:class:`AttributionTuple`), a dict by input name for a dict (:class:`AttributionDict`),
and a single ``Expr`` for one tensor (token ids, or one input with ``forward_kwargs``).
Both containers compute all their parts together and map the relational verbs over them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xarray as xr

from ..ir.inputs import InputPart, layout_of
from ..ir.node import Node
from ..ir.views import layer_of
from ..runtime.session import compute, explain
from .expr import Expr


class _Parts:
    """What both containers share: computing the parts together, and the verbs."""

    def _exprs(self) -> list[Expr]:
        raise NotImplementedError

    def _rebuilt(self, exprs: list[Expr]) -> Any:
        raise NotImplementedError

    def _results(self, arrays: tuple[xr.DataArray, ...]) -> Any:
        raise NotImplementedError

    def compute(self, optimize: bool = True, session: Any = None) -> Any:
        """Every input's attribution, computed together (one plan: their forwards and
        backwards are shared): a tuple or a dict of ``DataArray``, as the inputs were given.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> class Two(torch.nn.Module):
        ...     def forward(self, a, b):
        ...         return a @ torch.ones(3, 2) + b @ torch.ones(4, 2)
        >>> q = ia.model(Two().eval()).on((torch.rand(2, 3), torch.rand(2, 4)))
        >>> a, b = q.saliency(0).compute()
        >>> a.dims, b.sizes["feature"], a.attrs["input"]
        (('sample', 'feature'), 4, 'a')
        """
        return self._results(compute(*self._exprs(), optimize=optimize, session=session))

    def explain(self, optimized: bool = True) -> str:
        """The plan of :meth:`compute`: every input's share comes from the same passes.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> class Two(torch.nn.Module):
        ...     def forward(self, a, b):
        ...         return a @ torch.ones(3, 2) + b @ torch.ones(4, 2)
        >>> q = ia.model(Two().eval()).on((torch.rand(2, 3), torch.rand(2, 4)))
        >>> with ia.Session():
        ...     plan = q.input_x_gradient("all").explain()
        >>> print(next(line for line in plan.splitlines() if line.startswith("total")))
        total: 1 forward (2 rows), 1 backward
        """
        return explain(*self._exprs(), optimized=optimized)

    def map(self, fn: Callable[[Expr], Any]) -> Any:
        """``fn`` applied to every input's expression (e.g. a chain of verbs).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> class Two(torch.nn.Module):
        ...     def forward(self, a, b):
        ...         return a @ torch.ones(3, 2) + b @ torch.ones(4, 2)
        >>> q = ia.model(Two().eval()).on((torch.rand(2, 3), torch.rand(2, 4)))
        >>> [r.dims for r in q.saliency(0).map(lambda e: e.abs().sum("feature")).compute()]
        [('sample',), ('sample',)]
        """
        return self._rebuilt([fn(e) for e in self._exprs()])


def _mapped(verb: str) -> Callable[..., Any]:
    def method(self: _Parts, *args: Any, **kwargs: Any) -> Any:
        return self._rebuilt([getattr(e, verb)(*args, **kwargs) for e in self._exprs()])

    method.__name__ = method.__qualname__ = verb
    method.__doc__ = f"""``Expr.{verb}`` applied to every input's attribution.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> class Two(torch.nn.Module):
        ...     def forward(self, a, b):
        ...         return a @ torch.ones(3, 2) + b @ torch.ones(4, 2)
        >>> q = ia.model(Two().eval()).on((torch.rand(2, 3), torch.rand(2, 4)))
        >>> type(q.saliency(0).{verb}{_EXAMPLES[verb]}).__name__
        'AttributionTuple'
        """
    return method


_EXAMPLES = {
    "where": "(ia.col.pred == 0)",
    "sel": "(sample=0)",
    "isel": "(sample=0)",
    "mean": '("sample")',
    "sum": '("feature")',
    "var": '("sample")',
    "square": "()",
    "abs": "()",
    "normalize": "()",
    "topk_features": "(1)",
}
for _verb in _EXAMPLES:
    setattr(_Parts, _verb, _mapped(_verb))


class AttributionTuple(tuple, _Parts):
    """The attributions of a tuple of inputs: one :class:`Expr` per attributed input, in
    the inputs' order (as Captum's tuple of attributions), each with its own dims.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a @ torch.ones(3, 2) + b @ torch.ones(4, 2)
    >>> q = ia.model(Two().eval()).on((torch.rand(2, 3), torch.rand(2, 4)))
    >>> ig = q.integrated_gradients(0, steps=8)
    >>> len(ig), ig[1]
    (2, Expr(integrated_gradients(target=0, steps=8, method='gausslegendre', baseline=0.0).input('b')))
    """

    def _exprs(self) -> list[Expr]:
        return list(self)

    def _rebuilt(self, exprs: list[Expr]) -> AttributionTuple:
        return AttributionTuple(exprs)

    def _results(self, arrays: tuple[xr.DataArray, ...]) -> tuple[xr.DataArray, ...]:
        return tuple(arrays)


class AttributionDict(dict, _Parts):
    """The attributions of a dict of inputs: one :class:`Expr` per attributed input, by name.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a @ torch.ones(3, 2) + b @ torch.ones(4, 2)
    >>> q = ia.model(Two().eval()).on({"a": torch.rand(2, 3), "b": torch.rand(2, 4)}, attribute="b")
    >>> r = q.saliency(0).compute()
    >>> list(r), r["b"].dims
    (['b'], ('sample', 'feature'))
    """

    def _exprs(self) -> list[Expr]:
        return list(self.values())

    def _rebuilt(self, exprs: list[Expr]) -> AttributionDict:
        return AttributionDict(zip(self, exprs, strict=True))

    def _results(self, arrays: tuple[xr.DataArray, ...]) -> dict[str, xr.DataArray]:
        return dict(zip(self, arrays, strict=True))


def by_input(node: Node, filtered: Callable[[Node], Expr]) -> Any:
    """An attribution as the user gets it: one ``Expr`` (one input tensor, or a layer), or
    one per attributed input (a tuple or a dict, as the inputs were given). ``filtered``
    applies the query's sample filters to each.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Embedding(9, 4), torch.nn.Flatten(),
    ...                           torch.nn.Linear(12, 2))
    >>> q = ia.model(net.eval()).on(torch.tensor([[1, 2, 3], [4, 5, 6]]))
    >>> q.feature_ablation(0, baseline=ia.tokens(0)).compute().dims
    ('sample', 'token')
    """
    layout = layout_of(node)
    if layout is None or layer_of(node) is not None:
        return filtered(node)
    parts = {name: filtered(InputPart(node, name)) for name in layout.names}
    if layout.kind == "single":
        return next(iter(parts.values()))
    if layout.kind == "dict":
        return AttributionDict(parts)
    return AttributionTuple(parts.values())
