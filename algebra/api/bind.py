"""``ia.query``: a parsed query bound to models and inputs becomes a lazy expression.

The expression is exactly the one chained Python would build: ``select l3 from f(x)
where [0, 4, 0, 4] using saliency target label`` is
``ia.model(f).on(x).layer("l3").window(0, 4, 0, 4).saliency("label")``. Sub-queries inherit
the outer query's ``using`` and ``target`` unless they give their own; without either, the
method is ``ia.options.identity`` and the target ``pred``. A ``where`` predicate filters
the samples of the whole result (after its joins).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

from ..config import options
from ..errors import did_you_mean
from ..ir import columns as cols
from ..ir.model import ModelInfo
from ..ir.neurons import check_class_index, mistakes_predicate
from ..ir.players import grid, patches
from ..ir.targets import topk
from ..ir.views import Source, base_of, source_of
from ..lang import syntax
from ..lang.errors import QueryError
from ..lang.parse import parse_query
from .dataset_expr import DatasetExpr
from .expr import Expr
from .methods import check_params, method_of
from .model import Model
from .model import model as wrap_model
from .query import Query, with_source

T = TypeVar("T")
#: The options of a selected layer: ``select relu[call=1] from ...``.
LAYER_OPTIONS = ("call", "output", "input")
#: What ``using counterfactual_neurons(...)`` takes (the class is the target, the layer
#: the one after ``neurons of``).
NEURON_PARAMS = ("top", "max_steps", "lr", "l1", "l2", "head")


def query(text: str, **bindings: Any) -> Expr | DatasetExpr:
    """Parse a declarative query and bind its names: a lazy expression, nothing runs.

    Parameters
    ----------
    text : str
        The query (see ``docs/query-language.md``).
    **bindings
        Models (``ia.Model`` or ``torch.nn.Module``) and inputs (a tensor or NumPy array,
        a tuple ``(inputs, labels)``, or a query ``model.on(inputs, labels=..., ids=...)``
        whose inputs, labels, ids and dims are used). Names with a prime are passed as
        ``**{"x'": other}``.

    Returns
    -------
    Expr
        Or a :class:`~algebra.api.dataset_expr.DatasetExpr` for ``select neurons`` (see
        ``docs/neuroinspect.md``).

    Raises
    ------
    QuerySyntaxError
        The text does not follow the grammar.
    QueryError
        An unknown binding, layer, method or parameter (with close matches), or a clause
        that does not apply; the message points at the query text.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    >>> x = torch.rand(2, 4)
    >>> e = ia.query("select 1 from f(x) using saliency target label", f=net, x=(x, [0, 2]))
    >>> e.node == ia.model(net).on(x, labels=[0, 2]).layer("1").saliency("label").node
    True
    >>> ia.query("select * from f(x2)", f=net, x=x)
    Traceback (most recent call last):
    algebra.lang.errors.QueryError: query: unknown inputs 'x2'; the inputs bound are 'x'. Did you mean 'x'? at line 1, column 17
      select * from f(x2)
                      ^
    """
    tree = parse_query(text)
    binder = _Binder(text, bindings)
    return binder.neurons(tree) if tree.neurons else binder.select(tree, None, None)


class _Binder:
    def __init__(self, text: str, bindings: dict[str, Any]):
        self.text = text
        self.bindings = bindings
        self.models: dict[str, Model] = {}

    def fail(self, where: Any, reason: str) -> QueryError:
        return QueryError.at(self.text, max(where.line, 1), max(where.column, 1), reason)

    def guarded(self, where: Any, build: Callable[[], T]) -> T:
        """Run ``build``; its ValueError/TypeError becomes a QueryError pointing at ``where``."""
        try:
            return build()
        except QueryError:
            raise
        except (ValueError, TypeError, KeyError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            raise self.fail(where, str(message)) from None

    def _lookup(self, name: syntax.Name, kind: str, accepts: Callable[[Any], bool]) -> Any:
        if name.text not in self.bindings:
            bound = [k for k, v in self.bindings.items() if accepts(v)]
            shown = ", ".join(map(repr, bound)) or "none"
            prime = (
                f"; pass names with a prime as **{{{name.text!r}: ...}}" if "'" in name.text else ""
            )
            raise self.fail(
                name,
                f"unknown {kind} {name.text!r}; the {kind} bound are {shown}."
                + did_you_mean(name.text, bound)
                + prime,
            )
        value = self.bindings[name.text]
        if not accepts(value):
            raise self.fail(
                name, f"{name.text!r} is bound to a {type(value).__name__}, not to {kind}"
            )
        return value

    def model(self, name: syntax.Name) -> Model:
        if name.text not in self.models:
            value = self._lookup(name, "models", _is_model)
            self.models[name.text] = value if isinstance(value, Model) else wrap_model(value)
        return self.models[name.text]

    def view(self, select: syntax.Select) -> Query:
        model = self.model(select.model)
        value = self._lookup(select.inputs, "inputs", lambda v: not _is_model(v))
        if isinstance(value, Query):
            data = source_of(value.node)
            source = Source(model.info, data.inputs, data.labels, data.shape, data.dims, data.ids)
            q = Query(with_source(base_of(value.node), source))
        elif isinstance(value, tuple) and len(value) == 2:
            q = self.guarded(select.inputs, lambda: model.on(value[0], labels=value[1]))
        else:
            q = self.guarded(select.inputs, lambda: model.on(value))
        if select.layer is not None:
            options = self.layer_options(select)
            q = self.guarded(select.layer, lambda: q.layer(select.layer.text, **options))  # type: ignore[union-attr]
        for w in select.windows:
            q = self.guarded(w, lambda w=w, q=q: q.window(w.r0, w.r1, w.c0, w.c1))
        return q

    def layer_options(self, select: syntax.Select) -> dict[str, Any]:
        """The options of the selected layer, their names checked (close matches)."""
        for name, _ in select.layer_options:
            if name not in LAYER_OPTIONS:
                raise self.fail(
                    select.layer,
                    f"unknown layer option {name!r}; a layer takes "
                    f"{', '.join(LAYER_OPTIONS)}." + did_you_mean(name, LAYER_OPTIONS),
                )
        return dict(select.layer_options)

    def select(
        self,
        select: syntax.Select,
        method: syntax.Method | None,
        target: syntax.TargetClause | None,
    ) -> Expr:
        method = select.method or method
        target = select.target or target
        q = self.view(select)
        name, params = self.method(method)
        spec = self.target(target, q)
        joins = list(select.joins)
        where_method: Any = method.name if method is not None else select
        if joins and joins[0].how == "anti":
            expr = self.antijoin(q, joins.pop(0), method, target, spec, name, params)
        else:
            bound = self.guarded(where_method, lambda: method_of(q, name))
            self.guarded(where_method, lambda: check_params(name, bound, params))
            at_target = target if target is not None and target.line else where_method
            expr = self.guarded(at_target, lambda: bound(spec, **params))
        for join in joins:
            if join.how == "anti":
                raise self.fail(join, "a left join (anti-join) must be the first join of a query")
            right = self.select(join.query, method, target)
            expr = self.guarded(
                join, lambda right=right, join=join, expr=expr: expr.join(right, join.how)
            )
        if select.predicate is not None:
            info = self.model(select.model).info
            at = _mistakes_at(select)
            predicate = self.guarded(at, lambda: predicate_of(select.predicate, info))
            expr = expr.where(predicate)
        return expr

    def neurons(self, select: syntax.Select) -> DatasetExpr:
        """``select neurons [of <layer>] from f(x) [using counterfactual_neurons(...)]
        [target <class>] [where ...]``: ``q.where(...).counterfactual_neurons(...)``."""
        if select.joins:
            raise self.fail(select.joins[0], "select neurons takes no joins")
        if select.windows:
            raise self.fail(
                select.windows[0],
                "counterfactual neurons change pooled features; a window does not apply",
            )
        method = select.method
        if method is not None and method.name.text != "counterfactual_neurons":
            raise self.fail(
                method.name,
                f"select neurons is computed by counterfactual_neurons; got using "
                f"{method.name.text!r}",
            )
        q = self.view(select)
        cls = self.neuron_class(select)
        if select.predicate is not None:
            info = self.model(select.model).info
            at = _mistakes_at(select)
            predicate = self.guarded(at, lambda: predicate_of(select.predicate, info))
            q = q.where(predicate)
        params = dict(method.params) if method is not None else {}
        for key in params:
            if key not in NEURON_PARAMS:
                raise self.fail(
                    method.name,  # type: ignore[union-attr]
                    f"counterfactual_neurons: unknown parameter {key!r}; it takes "
                    f"{', '.join(NEURON_PARAMS)}." + did_you_mean(key, NEURON_PARAMS),
                )
        at = method.name if method is not None else (select.target or select)
        return self.guarded(at, lambda: q.counterfactual_neurons(cls, **params))

    def neuron_class(self, select: syntax.Select) -> Any:
        target = select.target
        if target is not None and target.kind != "index":
            raise self.fail(
                target,
                "select neurons explains the mistakes of one class: write target <class index>",
            )
        if target is not None:
            return target.value
        named = [m for m in _terms(select.predicate) if isinstance(m, syntax.Mistakes)]
        named = [m for m in named if m.cls is not None]
        if not named:
            raise self.fail(
                select,
                "select neurons needs the class whose mistakes it explains: add "
                "'where mistakes of <class>' or 'target <class>'",
            )
        return named[0].cls

    def antijoin(
        self,
        left: Query,
        join: syntax.Join,
        method: syntax.Method | None,
        target: syntax.TargetClause | None,
        spec: Any,
        name: str,
        params: dict[str, Any],
    ) -> Expr:
        sub = join.query
        if sub.joins or sub.predicate is not None:
            raise self.fail(
                join,
                "a left-joined sub-query is one model on one batch of inputs: no joins or "
                "sample filters inside it (filter the outer query)",
            )
        if (sub.method is not None and sub.method != method) or (
            sub.target is not None and sub.target != target
        ):
            raise self.fail(
                join, "both sides of a left join use the outer query's method and target"
            )
        right = self.view(sub)
        params = dict(params)
        if "method" in params:  # IG's rule: antijoin's own ``method`` names the method
            params["integration"] = params.pop("method")
        return self.guarded(join, lambda: left.antijoin(right, spec, name, **params))

    def method(self, method: syntax.Method | None) -> tuple[str, dict[str, Any]]:
        if method is None:
            return options.identity, {}
        params = {}
        for key, value in method.params:
            if isinstance(value, syntax.Call):  # players: grid(rows, cols), patches(size)
                call = _PLAYERS[value.name]
                value = self.guarded(method.name, lambda c=call, v=value: _call(c, v))
            params[key] = value
        return method.name.text, params

    def target(self, target: syntax.TargetClause | None, q: Query) -> Any:
        if target is None or target.kind == "pred":
            return "pred"
        if target.kind == "top":
            return topk(target.value)
        if target.kind == "index":
            return target.value
        return target.kind


_PLAYERS = {"grid": grid, "patches": patches}


def _call(function: Callable[..., Any], call: syntax.Call) -> Any:
    try:
        return function(*call.args)
    except TypeError:
        raise TypeError(
            f"groups: {call.name}(...) takes "
            f"{'rows, cols' if call.name == 'grid' else 'size'}; got {call.to_text()}"
        ) from None


def _is_model(value: Any) -> bool:
    return isinstance(value, (Model, torch.nn.Module))


def _mistakes_at(select: syntax.Select) -> Any:
    """Where a predicate's errors point: its first ``mistakes of '<name>'``, else the query
    (only class names can fail to bind)."""
    stack = [select.predicate]
    while stack:
        node = stack.pop()
        if isinstance(node, syntax.Mistakes) and isinstance(node.cls, str):
            return node
        if isinstance(node, (syntax.And, syntax.Or)):
            stack += [node.right, node.left]
        elif isinstance(node, syntax.Not):
            stack.append(node.operand)
    return select


def _terms(node: Any) -> list[Any]:
    """The terms of a top-level conjunction (the predicate itself when it is not one)."""
    if isinstance(node, syntax.And):
        return [*_terms(node.left), *_terms(node.right)]
    return [] if node is None else [node]


def predicate_of(node: Any, model: ModelInfo | None = None) -> cols.Predicate:
    """A column predicate from a parsed ``where`` predicate; ``model`` turns the class
    names of ``mistakes of '<name>'`` into indices.

    Examples
    --------
    >>> from algebra.lang.parse import parse_query
    >>> predicate_of(parse_query("select * from f(x) where pred != label").predicate)
    Predicate(pred != label)
    >>> predicate_of(parse_query("select * from f(x) where mistakes of 2").predicate)
    Predicate(label = 2 and pred != label)
    """
    if isinstance(node, syntax.Mistakes):
        if node.cls is None:
            return mistakes_predicate()
        if model is None:
            if isinstance(node.cls, str):
                raise ValueError("cls: a class name needs the model's class names")
            return mistakes_predicate(node.cls)
        return mistakes_predicate(check_class_index(node.cls, model))
    if isinstance(node, syntax.Column):
        return cols.as_predicate(cols.Column(node.name))
    if isinstance(node, syntax.Not):
        return ~predicate_of(node.operand, model)
    if isinstance(node, syntax.And):
        return predicate_of(node.left, model) & predicate_of(node.right, model)
    if isinstance(node, syntax.Or):
        return predicate_of(node.left, model) | predicate_of(node.right, model)
    column = cols.Column(node.column.name)
    if node.op == "in":
        return column.isin(list(node.value))
    value = cols.Column(node.value.name) if isinstance(node.value, syntax.Column) else node.value
    return column._compare(node.op, value)
