"""Sessions, and the two entry points that use them: ``ia.compute`` and ``ia.explain``.

A session is a memo (:class:`~algebra.runtime.memo.Memo`) with hit counts; ``compute``
reads and fills the current one, so re-asking or refining a query pays only for what is
new.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

import xarray as xr

from ..ir.node import Node
from ..optimizer import flags
from .compute import memoized, prepare, run
from .distributed import check_executor, on_dask
from .explain import plan_text
from .memo import Memo
from .partition import has_lazy, in_memory, sources_of, stand_ins

_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar("session", default=None)


class Session(Memo):
    """A memo of computed results keyed by expression structure and model state.

    Results are kept least-recently-used first out, up to ``max_bytes``. A result is
    reused only while the model's parameters and buffers are unchanged (their identity,
    version counters and sums are part of the key) and the inputs are unchanged (their
    version counters are part of the expression). Memoized results are shared with the
    memo, as with ``functools.cache``: ``.copy()`` one before modifying it in place.

    Parameters
    ----------
    max_bytes : int, optional
        Memory bound of the memo (default ``ia.options.session_bytes``); 0 keeps nothing.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> s = ia.Session()
    >>> a = s.compute(q.saliency(0)); b = s.compute(q.saliency(0))
    >>> s.hits, s.misses, len(s)
    (1, 1, 1)
    """

    def __init__(self, max_bytes: int | None = None):
        super().__init__(max_bytes)
        self.hits = 0
        self.misses = 0
        self._tokens: list[contextvars.Token] = []

    def __repr__(self) -> str:
        return (
            f"Session({len(self)} results, {self.nbytes} of {self.max_bytes} bytes, "
            f"{self.hits} hits, {self.misses} misses)"
        )

    def __enter__(self) -> Session:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())

    def compute(
        self, *exprs: Any, optimize: bool = True
    ) -> tuple[xr.DataArray, ...] | dict[Any, xr.DataArray]:
        """:func:`algebra.compute` with this session's memo.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> ia.Session().compute(q.saliency(0), q.saliency(1))[1].dims
        ('sample', 'feature')
        """
        return compute(*exprs, optimize=optimize, session=self)


_default = Session()


def session() -> Session:
    """The session ``ia.compute`` uses: the innermost ``with Session():``, else the default.

    Returns
    -------
    Session

    Examples
    --------
    >>> import algebra as ia
    >>> with ia.Session() as s:
    ...     ia.session() is s
    True
    >>> ia.session() is s
    False
    """
    active = _current.get()
    return _default if active is None else active


def _nodes(exprs: tuple[Any, ...]) -> tuple[list[Node], Mapping[Any, Any] | None]:
    # Expressions are whatever carries a computed node (``Expr`` objects, built by the API).
    if len(exprs) == 1 and isinstance(exprs[0], Mapping):
        mapping = exprs[0]
        items = list(mapping.values())
    else:
        mapping, items = None, list(exprs)
    for i, item in enumerate(items):
        node = getattr(item, "node", None)
        if not isinstance(node, Node) or node.role == "view":
            where = f"key {list(mapping)[i]!r}" if mapping is not None else f"argument {i}"
            several = isinstance(item, (tuple, Mapping)) and item  # one per input: unpack it
            hint = " (one per input: pass ia.compute(*a), or a.compute())" if several else ""
            raise TypeError(
                f"exprs: {where} is a {type(item).__name__}{hint}, expected an expression such "
                "as q.saliency(...); pass several as ia.compute(a, b) or ia.compute({'a': a})"
            )
    if not items and mapping is None:
        raise TypeError("exprs: expected at least one expression")
    return [item.node for item in items], mapping


def _check_optimize(optimize: Any) -> bool:
    if not isinstance(optimize, bool):
        raise TypeError(f"optimize: expected True or False; got {optimize!r}")
    return optimize


def compute(
    *exprs: Any,
    optimize: bool = True,
    session: Session | None = None,
    client: Any = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> tuple[xr.DataArray, ...] | dict[Any, xr.DataArray]:
    """Execute expressions together and return their labelled results.

    The optimizer merges identical sub-expressions, shares forward passes and fuses
    backward passes across all the expressions; results already in the session's memo
    are reused. Results mirror the arguments: a tuple for positional expressions, a dict
    with the same keys for one dict (results of different shapes cannot share one
    ``xarray.Dataset``; call ``xarray.Dataset(result)`` when they align).

    With ``client`` or ``scheduler``, dask runs the computation chunk by chunk (see
    ``docs/scale-out.md``): results are backed by dask arrays and computed lazily, except
    ``groupby`` reductions (their groups are data), which run at once.

    Parameters
    ----------
    *exprs : Expr, or one dict of name -> Expr
    optimize : bool, default True
        ``False`` runs every expression on its own, one backward per target, unchunked,
        without reading or filling the session's memo (the baseline that optimized runs
        are compared with).
    session : Session, optional
        The memo to use (default: :func:`algebra.runtime.session`). Not with dask, whose
        results are lazy.
    client : dask.distributed.Client, optional
        Run on this cluster: the models are sent to each worker once, each chunk of
        samples is one task.
    scheduler : {"threads", "processes", "synchronous"}, optional
        Run on one of dask's local schedulers, without a cluster.
    progress : bool, default False
        Run everything now under dask's progress bar; the results stay dask-backed
        (persisted on the cluster with a client).

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
    >>> (lazy,) = ia.compute(q.saliency("pred"), scheduler="synchronous")
    >>> type(lazy.data).__name__, bool((lazy == sal).all())
    ('Array', True)
    """
    nodes, mapping = _nodes(exprs)
    optimize = _check_optimize(optimize)
    if session is not None and not isinstance(session, Session):
        raise TypeError(f"session: expected an ia.Session; got {type(session).__name__}")
    check_executor(client, scheduler, progress)
    by_token = {n.token: n for n in nodes}
    if client is not None or scheduler is not None:
        if session is not None:
            raise ValueError(
                "session: results computed with dask are lazy and not memoized; "
                "pass session= without client= or scheduler="
            )
        results = on_dask(list(by_token.values()), flags(optimize), client, scheduler, progress)
    else:
        results = _in_process(by_token, optimize, session)
    if mapping is not None:
        return {key: results[n.token] for key, n in zip(mapping, nodes, strict=True)}
    return tuple(results[n.token] for n in nodes)


def _in_process(
    by_token: dict[str, Node], optimize: bool, session: Session | None
) -> dict[str, xr.DataArray]:
    # Unoptimized runs neither read nor fill the memo: they are the baseline to compare
    # with. Nor do runs on lazy inputs (a Dataset or dask array, read whole here): what a
    # Dataset returns is not part of its token.
    wanted = list(by_token.values())
    read_whole = has_lazy(sources_of(wanted))
    use_memo = optimize and not read_whole
    memo = (session if session is not None else _session()) if use_memo else Session(0)
    if read_whole:
        whole = in_memory(wanted)
        by_token = {token: whole[token] for token in by_token}
    computation = prepare(list(by_token.values()))
    found = memoized(computation, memo)
    results = {token: found[node.token] for token, node in by_token.items() if node.token in found}
    missing = {token: node for token, node in by_token.items() if token not in results}
    with memo.lock:
        memo.hits += len(results)
        memo.misses += len(missing)
    if missing:
        made = run(computation, list(missing.values()), flags(optimize))
        for token, node in missing.items():
            results[token] = made[node.token]
            memo.put(computation.keys[node.token], made[node.token], node)
    return results


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
    rules = flags(_check_optimize(optimized))
    lazy = has_lazy(sources_of(nodes))
    if lazy:  # a Dataset or dask array: plans need its shape only, not its samples
        shaped = stand_ins(nodes)
        nodes = [shaped[n.token] for n in nodes]
    by_token = {n.token: n for n in nodes}
    computation = prepare(list(by_token.values()), check=False)
    memoized_here: dict[str, Any] = {}
    if optimized and not lazy:  # what the session's memo already holds does not run again
        memoized_here = memoized(computation, _session())
        nodes = [n for n in by_token.values() if n.token not in memoized_here]
        if not nodes:
            return "plan: every expression is in the session's memo; nothing runs"
    text = plan_text(computation.graph.leaves_of(nodes), nodes, rules)
    if memoized_here:
        head, rest = text.split("\n", 1)
        count = len(memoized_here)
        skipped = f"memo: {count} more expression{'s' if count != 1 else ''} already computed"
        text = f"{head}\n{skipped} in this session (not run)\n{rest}"
    return text


_session = session  # the parameter named ``session`` shadows the function inside compute()
