"""``Expr.to_query``: an expression printed back as query text, where the language has one.

The expression becomes a syntax tree (:mod:`algebra.lang.syntax`) whose canonical text, bound
to the returned names, rebuilds an equal expression. Every parameter is printed, defaults
included, so the text does not depend on ``ia.options.identity``. Names and bindings are
what the nodes hold (modules, tensors, model infos, sources); the API wraps them.
"""

from __future__ import annotations

import re
from typing import Any

from ..ir import columns as cols
from ..ir.attribution import Attribution
from ..ir.format import describe_step
from ..ir.joins import AntiJoin, Disagreement, Join
from ..ir.metrics import Metric
from ..ir.model import ModelInfo
from ..ir.neurons import CounterfactualNeurons, mistakes_predicate_class
from ..ir.node import Node, Ref, dispatch_table, entries
from ..ir.players import PlayerSpecs
from ..ir.relational import VERBS, Where
from ..ir.targets import Target
from ..ir.views import Edit, Layer, Noise, Source, Window, rebased, source_of
from . import syntax
from .syntax import KEYWORDS


class NoQueryForm(ValueError):
    """The expression uses an operation the query language cannot express."""


def to_query(node: Node, names: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The query text of ``node`` and the bindings that rebuild it.

    Parameters
    ----------
    node : Node
    names : dict, optional
        Names to use: name -> module or tensor of inputs.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> m = ia.model(torch.nn.Linear(4, 3).eval())
    >>> x, x2 = m.on(torch.rand(2, 4)), m.on(torch.rand(2, 4))
    >>> text, bound = to_query(x.saliency(0).join(x2.saliency(0)).node)
    >>> text
    'select * from f(x) join (select * from f(x2) using saliency(abs=true) target 0) using saliency(abs=true) target 0'
    >>> sorted(bound)
    ['f', 'x', 'x2']
    """
    namer = _Namer(names or {})
    tree = _select(node, namer)
    return tree.to_text(), namer.bindings()


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*'*")


class _Namer:
    def __init__(self, given: dict[str, Any]):
        for name in given:
            if not isinstance(name, str) or not _NAME.fullmatch(name) or name.lower() in KEYWORDS:
                raise ValueError(
                    f"names: {name!r} cannot name a model or inputs in a query (letters, digits "
                    "and _, optionally ending in primes; not a keyword)"
                )
        self.given = given
        self.models: dict[str, tuple[str, Any]] = {}
        self.inputs: dict[str, tuple[str, Any]] = {}

    def _given(self, *candidates: Any) -> str | None:
        for name, value in self.given.items():
            if any(value is c for c in candidates if c is not None):
                return name
        return None

    def _taken(self) -> set[str]:
        used = {n for n, _ in [*self.models.values(), *self.inputs.values()]}
        return used | set(self.given)

    def model(self, info: ModelInfo) -> syntax.Name:
        if info.token not in self.models:
            name = self._given(info.torch_module) or _fresh("fghpqr", self._taken())
            self.models[info.token] = (name, info)
        return syntax.Name(self.models[info.token][0])

    def data(self, source: Source) -> syntax.Name:
        labels = source.labels and source.labels.token
        key = "|".join([source.inputs.token, str(labels), str(source.ids), *source.dims])
        if key not in self.inputs:
            name = self._given(source.inputs.value) or _numbered("x", self._taken())
            self.inputs[key] = (name, source)
        return syntax.Name(self.inputs[key][0])

    def bindings(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: model for name, model in self.models.values()}
        for name, source in self.inputs.values():
            out[name] = source
        return out


def _fresh(letters: str, taken: set[str]) -> str:
    for letter in letters:
        if letter not in taken:
            return letter
    return _numbered("f", taken)


def _numbered(stem: str, taken: set[str]) -> str:
    if stem not in taken:
        return stem
    i = 2
    while f"{stem}{i}" in taken:
        i += 1
    return f"{stem}{i}"


def _refuse(what: str) -> NoQueryForm:
    return NoQueryForm(f"to_query: {what} has no form in the query language; build it in Python")


def _view(view: Node, namer: _Namer, model: ModelInfo | None = None) -> dict[str, Any]:
    parts: dict[str, Any] = {"layer": None, "windows": ()}
    while not isinstance(view, Source):
        _view_part(view, parts)
        view = view.children[0]
    return {**parts, "model": namer.model(model or view.model), "inputs": namer.data(view)}


_view_part = dispatch_table("unparse_view", role="view")


@_view_part.register
def _(view: Window, parts: dict[str, Any]) -> None:
    parts["windows"] = (syntax.Window(*view.window), *parts["windows"])


@_view_part.register
def _(view: Layer, parts: dict[str, Any]) -> None:
    parts["layer"] = syntax.Name(view.name)


@_view_part.register
def _(view: Edit, parts: dict[str, Any]) -> None:
    raise _refuse(f"an edited input ({view.kind})")


@_view_part.register
def _(view: Noise, parts: dict[str, Any]) -> None:
    raise _refuse(f"noise on the inputs ({view.describe()})")


@_view_part.register
def _(view: Source, parts: dict[str, Any]) -> None:  # the loop stops at the source
    return None


def _literal(value: Any, what: str) -> Any:
    if isinstance(value, (Ref, Node)):
        raise _refuse(f"a tensor or query parameter ({what})")
    if isinstance(value, PlayerSpecs):
        return syntax.Call(value.kind, value.args)
    return value


def _method(node: Attribution, skip: tuple[str, ...] = ()) -> syntax.Method:
    # ``None`` is every such parameter's default (players, seeds): left out, it comes back.
    params = tuple(
        (key, _literal(value, key))
        for key, value in node.params
        if key not in skip and value is not None
    )
    return syntax.Method(syntax.Name(node.method), params)


def _target(target: Target) -> syntax.TargetClause:
    if target.kind in ("pred", "label", "all"):
        return syntax.TargetClause(target.kind)
    if target.kind == "topk":
        return syntax.TargetClause("top", target.value)  # type: ignore[arg-type]
    if target.kind == "index":
        return syntax.TargetClause("index", target.value)  # type: ignore[arg-type]
    raise _refuse(f"the target {target.describe()}")


_select = dispatch_table("unparse")


@_select.register
def _(node: Where, namer: _Namer) -> syntax.Select:
    inner = _select(node.child, namer)
    if inner.predicate is not None:
        raise _refuse("a second where on one query")
    return syntax.Select(**{**_fields(inner), "predicate": _predicate(node.predicate)})


@_select.register
def _(node: Attribution, namer: _Namer) -> syntax.Select:
    return syntax.Select(
        **_view(node.view, namer), method=_method(node), target=_target(node.target)
    )


@_select.register
def _(node: Join, namer: _Namer) -> syntax.Select:
    left = _select(node.left, namer)
    if left.predicate is not None:
        raise _refuse("a where before a join (the query's where filters after its joins)")
    right = _select(node.right, namer)
    joins = (*left.joins, syntax.Join(node.how, right))
    return syntax.Select(**{**_fields(left), "joins": joins})


@_select.register
def _(node: AntiJoin, namer: _Namer) -> syntax.Select:
    a, b = node.left, node.right
    left_view = _view(a.view, namer)
    right = syntax.Select(**_view(b.view, namer))
    return syntax.Select(
        **left_view,
        joins=(syntax.Join("anti", right),),
        method=_method(a, skip=("baseline",)),
        target=_target(a.target),
    )


@_select.register
def _(node: Disagreement, namer: _Namer) -> syntax.Select:
    part = node.part
    source = source_of(part.view)
    right_source = Source(
        node.right_model, source.inputs, source.labels, source.shape, source.dims, source.ids
    )
    left_view = _view(part.view, namer, node.left_model)
    right = syntax.Select(**_view(rebased(part.view, right_source), namer))
    return syntax.Select(
        **left_view,
        joins=(syntax.Join("anti", right),),
        method=_method(part),
        target=_target(part.target),
    )


@_select.register
def _(node: CounterfactualNeurons, namer: _Namer) -> syntax.Select:
    view = _view(node.view, namer)
    params = [(key, value) for key, value in node.params if key not in ("layer", "head")]
    if node.head is not None:  # the language has no None: the default is left out
        params.append(("head", node.head))
    method = syntax.Method(syntax.Name(node.op), tuple(params))
    # `where mistakes of K` names the class; otherwise the target does.
    named = mistakes_predicate_class(node.where) == node.cls
    return syntax.Select(
        **{**view, "layer": None if node.layer is None else syntax.Name(node.layer)},
        method=method,
        target=None if named else syntax.TargetClause("index", node.cls),
        predicate=None if node.where is None else _predicate(node.where),
        neurons=True,
    )


@entries(_select, (verb for verb in VERBS if verb is not Where))
def _(node: Node, namer: _Namer) -> syntax.Select:
    raise _refuse(f"{describe_step(node)}")


@_select.register
def _(node: Metric, namer: _Namer) -> syntax.Select:
    raise _refuse(f"the metric {node.kind}")


def _fields(select: syntax.Select) -> dict[str, Any]:
    return {
        "layer": select.layer,
        "model": select.model,
        "inputs": select.inputs,
        "joins": select.joins,
        "method": select.method,
        "target": select.target,
        "windows": select.windows,
        "predicate": select.predicate,
        "neurons": select.neurons,
    }


def _predicate(p: cols.Predicate) -> Any:
    mistakes = mistakes_predicate_class(p)
    if mistakes is not None:  # what q.mistakes(K) builds
        return syntax.Mistakes(mistakes)
    if p.kind == "col":
        return syntax.Column(p.args[0])
    if p.kind == "not":
        return syntax.Not(_predicate(p.args[0]))
    if p.kind == "and":
        return syntax.And(_predicate(p.args[0]), _predicate(p.args[1]))
    if p.kind == "or":
        return syntax.Or(_predicate(p.args[0]), _predicate(p.args[1]))
    if p.kind == "in":
        column, values = p.args
        return syntax.Compare(syntax.Column(column.name), "in", tuple(values))
    op, column, value = p.args
    right = syntax.Column(value.name) if isinstance(value, cols.Column) else value
    return syntax.Compare(syntax.Column(column.name), op, right)
