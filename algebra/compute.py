"""``ia.compute`` and ``ia.explain``: execute (or show) several expressions together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import xarray as xr

from . import planner
from .expr import Expr
from .kernels.checks import check_unchanged
from .kernels.execute import execute
from .nodes import Ref
from .operators import Attribution
from .results import to_dataarray


def _nodes(exprs: tuple[Any, ...]) -> tuple[list[Attribution], Mapping[Any, Any] | None]:
    if len(exprs) == 1 and isinstance(exprs[0], Mapping):
        mapping = exprs[0]
        items = list(mapping.values())
    else:
        mapping, items = None, list(exprs)
    for i, item in enumerate(items):
        if not isinstance(item, Expr):
            where = f"key {list(mapping)[i]!r}" if mapping is not None else f"argument {i}"
            raise TypeError(
                f"exprs: {where} is a {type(item).__name__}, expected an expression such as "
                "q.saliency(...); pass several as ia.compute(a, b) or ia.compute({'a': a})"
            )
    if not items and mapping is None:
        raise TypeError("exprs: expected at least one expression")
    return [item.node for item in items], mapping


def _check_data(nodes: list[Attribution]) -> None:
    # Tokens record each tensor's in-place version: data changed since then is not what
    # the expression describes, and computing it would be silently wrong.
    for root in nodes:
        for node in root.walk():
            named = [(f.name, getattr(node, f.name)) for f in fields(node)]
            for argument, value in named + list(getattr(node, "params", ())):
                if isinstance(value, Ref):
                    check_unchanged(value.value, value.token, argument)


def compute(*exprs: Any) -> tuple[xr.DataArray, ...] | dict[Any, xr.DataArray]:
    """Execute expressions together and return their labelled results.

    Identical sub-expressions are computed once. Results mirror the arguments: a tuple
    for positional expressions, a dict with the same keys for one dict (results of
    different shapes cannot share one ``xarray.Dataset``; call ``xarray.Dataset(result)``
    when they align).

    Parameters
    ----------
    *exprs : Expr, or one dict of name -> Expr

    Returns
    -------
    tuple of xarray.DataArray, or dict of xarray.DataArray

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> sal, ixg = ia.compute(q.saliency("pred"), q.input_x_gradient("pred"))
    >>> ia.compute({"s": q.saliency("all")})["s"].sizes["target"]
    3
    """
    nodes, mapping = _nodes(exprs)
    by_token = {n.token: n for n in nodes}
    _check_data(list(by_token.values()))
    results: dict[str, xr.DataArray] = {}
    for _, job in planner.plan(list(by_token.values())):
        out = execute(job)
        for task in job.tasks:
            results[task.key] = to_dataarray(by_token[task.key], out.tasks[task.key], out.logits)
    if mapping is not None:
        return {key: results[n.token] for key, n in zip(mapping, nodes, strict=True)}
    return tuple(results[n.token] for n in nodes)


def explain(*exprs: Any) -> str:
    """The plan that :func:`compute` would run for the same arguments, as text.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> print(ia.explain(q.saliency(0), q.saliency(0)).splitlines()[0])
    plan: 1 expression on 1 batch of inputs
    """
    nodes, _ = _nodes(exprs)
    return planner.explain(nodes)
