"""``ia.compute`` and ``ia.explain``: execute (or show) several expressions together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import xarray as xr

from . import planner
from .describe import describe_expr
from .evaluate import evaluate, leaves, result_name
from .explain import Cut, JobSizes, explain_text
from .expr import Expr
from .kernels.checks import check_unchanged, state_token
from .kernels.edits import materialize_job, stand_in
from .kernels.execute import execute
from .kernels.frame import Frame
from .kernels.guard import device_of
from .kernels.sizing import budget_of, group_rows, known_classes, sizing
from .nodes import Node, Ref
from .operators import Attribution, source_of
from .results import to_frame, to_xarray
from .session import Session, memo_key
from .session import session as current_session


def _nodes(exprs: tuple[Any, ...]) -> tuple[list[Node], Mapping[Any, Any] | None]:
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


def _check_data(nodes: list[Node]) -> None:
    # Tokens record each tensor's in-place version: data changed since then is not what
    # the expression describes, and computing it would be silently wrong.
    for root in nodes:
        for node in root.walk():
            named = [(f.name, getattr(node, f.name)) for f in fields(node)]
            for argument, value in named + list(getattr(node, "params", ())):
                if isinstance(value, Ref) and hasattr(value.value, "_version"):  # tensors
                    check_unchanged(value.value, value.token, argument)


def _states(nodes: list[Node]) -> dict[int, str]:
    models = (source_of(n.view).wrapped_model.module for n in leaves(nodes))
    modules = {id(m): m for m in models}
    return {key: state_token(m) for key, m in modules.items()}


def _memoized(nodes: list[Node], memo: Session, states: dict[int, str]) -> dict[str, xr.DataArray]:
    found = {node.token: memo.get(memo_key(node, states)) for node in nodes}
    return {token: array for token, array in found.items() if array is not None}


def _check_optimize(optimize: Any) -> bool:
    if not isinstance(optimize, bool):
        raise TypeError(f"optimize: expected True or False; got {optimize!r}")
    return optimize


def compute(
    *exprs: Any, optimize: bool = True, session: Session | None = None
) -> tuple[xr.DataArray, ...] | dict[Any, xr.DataArray]:
    """Execute expressions together and return their labelled results.

    The optimizer merges identical sub-expressions, shares forward passes and fuses
    backward passes across all the expressions; results already in the session's memo
    are reused. Results mirror the arguments: a tuple for positional expressions, a dict
    with the same keys for one dict (results of different shapes cannot share one
    ``xarray.Dataset``; call ``xarray.Dataset(result)`` when they align).

    Parameters
    ----------
    *exprs : Expr, or one dict of name -> Expr
    optimize : bool, default True
        ``False`` runs every expression on its own, one backward per target, unchunked,
        without reading or filling the session's memo (the baseline that optimized runs
        are compared with).
    session : Session, optional
        The memo to use (default: :func:`algebra.session`).

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
    optimize = _check_optimize(optimize)
    if session is not None and not isinstance(session, Session):
        raise TypeError(f"session: expected an ia.Session; got {type(session).__name__}")
    # Unoptimized runs neither read nor fill the memo: they are the baseline to compare with.
    memo = (session if session is not None else current_session()) if optimize else Session(0)
    by_token = {n.token: n for n in nodes}
    _check_data(list(by_token.values()))
    states = _states(nodes)
    results = _memoized(list(by_token.values()), memo, states)
    missing = [node for token, node in by_token.items() if token not in results]
    memo.hits += len(results)
    memo.misses += len(missing)
    frames: dict[str, Frame] = {}
    made: dict[str, Any] = {}  # edits made once per computation, whatever reads them
    for entry in planner.plan(leaves(missing), planner.flags(optimize)):
        out = execute(materialize_job(entry.job, made))
        for result in entry.job.results:
            node = entry.nodes[result.key]
            frames[result.key] = to_frame(node, out.tasks[result.key], out.logits)
    cache: dict[str, Frame] = {}
    for node in missing:
        array = to_xarray(evaluate(node, frames, cache), result_name(node))
        results[node.token] = array
        memo.put(memo_key(node, states), array, node)
    if mapping is not None:
        return {key: results[n.token] for key, n in zip(mapping, nodes, strict=True)}
    return tuple(results[n.token] for n in nodes)


def explain(*exprs: Any, optimized: bool = True) -> str:
    """The plan that :func:`compute` would run for the same arguments, stage by stage.

    Shows the expressions as written (logical), after merging (simplified), grouped by
    the points the model is evaluated at (physical), the passes after fusion with their
    batch sizes, and the chunks under the memory budget. Expressions already in the
    session's memo are left out, as ``compute`` would skip them. Runs nothing.

    Parameters
    ----------
    *exprs : Expr, or one dict of name -> Expr
    optimized : bool, default True
        ``False`` shows the plan of ``compute(..., optimize=False)``.

    Returns
    -------
    str

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> print(ia.explain(q.saliency(0), q.input_x_gradient(0)).splitlines()[-1])
    total: 1 forward (2 rows), 1 backward
    """
    nodes, _ = _nodes(exprs)
    rules = planner.flags(_check_optimize(optimized))
    memoized: dict[str, Any] = {}
    if optimized:  # what the session's memo already holds does not run again
        memoized = _memoized(nodes, current_session(), _states(nodes))
        nodes = [n for n in nodes if n.token not in memoized]
        if not nodes:
            return "plan: every expression is in the session's memo; nothing runs"
    planned = planner.plan(leaves(nodes), rules)
    sizes, shared = [], []
    for entry in planned:
        job = stand_in(entry.job)  # plans need shapes, not the edits' values
        device = device_of(job.module, default=job.inputs.device)
        cut, measured = sizing(job)
        cuts = [Cut(c.per_chunk, c.chunks, c.targets_per_backward) for c in cut]
        sizes.append(JobSizes(budget_of(job, device), cuts, measured, known_classes(job)))
        shared.append([group_rows(g, job.inputs) == 1 for g in job.groups])
    text = explain_text(leaves(nodes), planned, sizes, rules, shared)
    steps = [describe_expr(n) for n in nodes if not isinstance(n, Attribution)]
    if steps:
        text += "\nthen, on the device: " + str(len(steps)) + " derived expression"
        text += "s" * (len(steps) != 1) + "\n" + "\n".join(f"  {step}" for step in steps)
    if memoized:
        head, rest = text.split("\n", 1)
        count = len(memoized)
        skipped = f"memo: {count} more expression{'s' if count != 1 else ''} already computed"
        text = f"{head}\n{skipped} in this session (not run)\n{rest}"
    return text
