"""``Query``: the chainable, lazy view of a model on inputs, and its attribution methods.

A query is a view: a model on a batch of inputs (possibly edited: patched, replaced or
mapped), optionally at a layer and inside a window, optionally filtered to some samples.
Attribution methods turn it into an :class:`~algebra.api.expr.Expr`.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..config import options
from ..ir.attribution import Attribution
from ..ir.columns import Predicate, as_predicate
from ..ir.inputs import check_method, layout_of
from ..ir.joins import AntiJoin, Disagreement
from ..ir.node import Node
from ..ir.relational import Where
from ..ir.targets import Target
from ..ir.views import (
    Edit,
    Source,
    Window,
    base_of,
    layer_of,
    rebased,
    source_of,
    window_of,
)
from ..ir.windows import check_window
from .attribution_nodes import attribution_node
from .attributions import by_input
from .bindings import wrap
from .cams import CamMethods
from .difference import difference_of
from .expr import Expr
from .generation import GenerationMethods
from .gradients import GradientMethods
from .layer_methods import LayerMethods
from .layer_options import selected_layer_node
from .methods import check_params, method_of, renamed
from .neurons import NeuronMethods
from .noise import NoiseMethods
from .perturbation import PerturbationMethods
from .propagation import PropagationMethods
from .what_if import WhatIfMethods


class Query(
    GradientMethods,
    PropagationMethods,
    CamMethods,
    LayerMethods,
    NoiseMethods,
    PerturbationMethods,
    NeuronMethods,
    WhatIfMethods,
    GenerationMethods,
):
    """What to explain: a model on a batch of inputs, optionally at a layer or window.

    Built by :meth:`Model.on`; every method returns a new object and runs nothing.
    """

    def __init__(
        self, node: Node, filters: tuple[Predicate, ...] = (), generation: Target | None = None
    ):
        self.node = node
        self.filters = filters
        self.generation = generation  # the tokens of q.generated(steps): target "generated"

    def __repr__(self) -> str:
        source = source_of(self.node)
        where = f"layer {layer_of(self.node)!r}" if layer_of(self.node) else "inputs"
        window = window_of(self.node)
        extra = f" window {list(window)}" if window else ""
        edited = " (edited)" if isinstance(base_of(self.node), Edit) else ""
        filters = "".join(f" where {p.to_query()}" for p in self.filters)
        layout = source.model.inputs
        shape = list(source.shape) if layout is None else layout.describe(source.n)
        return f"Query({source.model.name} on {where} {shape}{edited}{extra}{filters})"

    def _with(self, node: Node) -> Query:
        return Query(node, self.filters, self.generation)

    def layer(
        self,
        name: str,
        *,
        call: int | str | None = None,
        output: int | str | None = None,
        input: bool = False,
    ) -> Query:
        """Select a layer: attribute its output activation instead of the input.

        Parameters
        ----------
        name : str
            The layer's name in ``module.named_modules()``.
        call : int or "all", optional
            For a module called more than once in a forward: which call (from 0; negative
            counts from the end), or every call (``"all"``: a ``call`` dim).
        output : int or str, optional
            For a layer returning a tuple (or dict): the element (or key) attributed.
        input : bool, default False
            Attribute the layer's (first positional) input instead of its output.

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
        >>> q = ia.model(net).on(torch.rand(2, 4))
        >>> q.layer("1")
        Query(Sequential on layer '1' [2, 4])
        >>> q.layer("2", input=True)
        Query(Sequential on layer '2[input]' [2, 4])
        >>> q.layer("l1")
        Traceback (most recent call last):
        ValueError: layer: the model has no layer 'l1'. Did you mean '1'? Layers are named as in model.named_modules(); see Model.layer_names.
        """
        return self._with(selected_layer_node(self.node, name, call, output, input))

    def window(self, r0: int, r1: int, c0: int, c1: int) -> Query:
        """Projection: attribute only rows ``r0:r1`` and columns ``c0:c1`` of the grid.

        The grid is the input's last two dims, or the selected layer's (select the layer
        first). Outside the window, features are held at their values as context and get
        attribution zero; path methods integrate only inside it, so the attributions of a
        completeness-satisfying method sum to ``f(x) - f(x with the window at the baseline)``.
        Windows nest: a window of a window must lie inside it (a drill-down).

        Parameters
        ----------
        r0, r1, c0, c1 : int
            Rows ``r0:r1`` and columns ``c0:c1`` (Python slices: ``r1``, ``c1`` excluded).

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Flatten(),
        ...                           torch.nn.Linear(2 * 8 * 8, 3)).eval()
        >>> q = ia.model(net).on(torch.rand(2, 1, 8, 8))
        >>> r = q.window(2, 6, 0, 4).saliency(0).compute()
        >>> bool((r.isel(y=slice(0, 2)) == 0).all()), bool((r.isel(x=slice(4, 8)) == 0).all())
        (True, True)
        >>> q.window(2, 6, 0, 4).window(0, 3, 0, 2)
        Traceback (most recent call last):
        ValueError: window: [0, 3, 0, 2] does not lie inside its parent window [2, 6, 0, 4]; a drill-down narrows the window
        """
        return self._with(Window(self.node, check_window((r0, r1, c0, c1))))

    def where(self, predicate: Any) -> Query:
        """Keep only the samples for which ``predicate`` holds (e.g. misclassified ones).

        The predicate reads per-sample columns: ``ia.col.pred``, ``ia.col.label``,
        ``ia.col.correct``, ``ia.col.score`` (softmax probability of the prediction) and
        ``ia.col.id``; combine conditions with ``&``, ``|`` and ``~``.

        Parameters
        ----------
        predicate : Predicate or ia.col.correct

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(6, 4), labels=[0, 1, 2, 0, 1, 2])
        >>> r = q.where(ia.col.pred != ia.col.label).saliency("pred").compute()
        >>> bool((r.pred != r.label).all())
        True
        """
        return Query(self.node, (*self.filters, as_predicate(predicate)), self.generation)

    def _attribution(self, method: str, target: Any, params: tuple[tuple[str, Any], ...]) -> Expr:
        check_method(self.node, method)  # what several inputs or token ids cannot take
        # Targets checked on the model (units, positions); one attribution per call of a
        # layer; one Expr, or one per attributed input (a tuple or a dict, as given).
        node = attribution_node(self.node, method, target, params, self.generation)
        return by_input(node, self._filtered)

    def _filtered(self, node: Node) -> Expr:
        for predicate in self.filters:
            node = Where(node, predicate)
        return Expr(node)

    def identity(self, target: Any, method: str | None = None, **params: Any) -> Expr:
        """The base interpretation: ``method`` (default ``ia.options.identity``) of ``target``.

        Parameters
        ----------
        target : int, sequence of int, "pred", "label", "all", ia.topk(k), ia.classes([...]) or callable
        method : str, optional
            An attribution method's name: ``shapley`` (the default identity),
            ``kernel_shap``, ``lime``, ``occlusion``, ``feature_ablation``,
            ``feature_permutation``, ``saliency``, ``input_x_gradient``,
            ``integrated_gradients`` or ``grad_cam``.
        **params
            The method's own parameters (e.g. ``samples=50``). Integrated gradients' rule,
            its ``method`` argument, is passed as ``integration=`` here.

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> q.identity("pred").node.method
        'shapley'
        >>> q.identity("pred", "saliency", abs=False).node == q.saliency("pred", abs=False).node
        True
        >>> q.identity(0, "saliency", step=3)
        Traceback (most recent call last):
        TypeError: saliency: unknown parameter 'step'; it takes abs.
        """
        name = options.identity if method is None else method
        bound = method_of(self, name)
        params = renamed(params)
        check_params(name, bound, params)
        return bound(target, **params)

    def antijoin(self, other: Query, target: Any, method: str | None = None, **params: Any) -> Expr:
        """Anti-join: the features that discriminate two inputs, or two models.

        For two inputs ``x, x'`` through one model, the pair ``(phi(x; x'), phi(x'; x))``:
        each input attributed with the other as its baseline, along a ``side`` dim (``left``,
        ``right``); ``method`` must take a baseline (``shapley``, ``integrated_gradients``,
        ...). For one input
        through two models ``f, g``, the attribution of their disagreement ``f_c - g_c``;
        ``pred`` is then the left model's prediction.

        Parameters
        ----------
        other : Query
            The right side: other inputs through the same model, or the same inputs through
            another model.
        target : target spec
            As for any attribution method.
        method : str, optional
            Default ``ia.options.identity``.
        **params
            The method's parameters (integrated gradients' rule as ``integration=``).

        Returns
        -------
        Expr

        Examples
        --------
        >>> import torch, algebra as ia
        >>> m = ia.model(torch.nn.Linear(4, 3).eval())
        >>> x, x2 = m.on(torch.rand(2, 4)), m.on(torch.rand(2, 4))
        >>> r = x.antijoin(x2, "pred", samples=4, seed=0).compute()  # Shapley, the identity
        >>> r.dims, r.side.values.tolist()
        (('side', 'sample', 'feature'), ['left', 'right'])
        """
        if not isinstance(other, Query):
            raise TypeError(f"other: expected a Query; got {type(other).__name__}")
        if layout_of(self.node) is not None or layout_of(other.node) is not None:
            raise ValueError(
                "other: anti-joins of queries on several inputs, token ids or forward_kwargs "
                "are not supported yet"
            )
        left, right = source_of(self.node), source_of(other.node)
        same_model = left.model == right.model
        same_inputs = base_of(self.node) == rebased_base(other.node, left)
        if same_model and base_of(self.node) == base_of(other.node):
            raise ValueError("other: both sides are the same model on the same inputs")
        name = options.identity if method is None else method
        params = renamed(params)
        if not same_model:
            if not same_inputs:
                raise ValueError(
                    "other: an anti-join compares two inputs through one model, or one input "
                    "through two models; these differ in both"
                )
            return self._disagreement(other, target, name, params)
        if left.shape != right.shape:
            raise ValueError(
                f"other: the inputs have shapes {list(left.shape)} and {list(right.shape)}; "
                "an anti-join pairs inputs of the same shape"
            )
        if window_of(self.node) != window_of(other.node):
            raise ValueError("other: the two sides must use the same window")
        if layer_of(self.node) != layer_of(other.node):
            raise ValueError(
                f"other: the two sides select different layers ({layer_of(self.node)!r} and "
                f"{layer_of(other.node)!r})"
            )
        bound = method_of(self, name)
        check_params(name, bound, params)
        if "baseline" not in inspect.signature(bound).parameters:
            raise ValueError(
                f"method: {name!r} takes no baseline; an anti-join of two inputs attributes each "
                "with the other as baseline: use a method with one ('shapley', "
                "'integrated_gradients', 'kernel_shap', 'lime', 'occlusion' or 'feature_ablation')"
            )
        if "baseline" in params:
            raise TypeError("baseline: an anti-join sets each side's baseline to the other input")
        a = bound(target, baseline=Query(base_of(other.node)), **params).node
        b = method_of(Query(other.node), name)(
            target, baseline=Query(base_of(self.node)), **params
        ).node
        if not (isinstance(a, Attribution) and isinstance(b, Attribution)):
            raise ValueError(
                "other: an anti-join attributes one tensor on each side; select one call of "
                "the layer (call=k), not call='all'"
            )
        return self._filtered(AntiJoin(a, b))

    def _disagreement(self, other: Query, target: Any, name: str, params: dict[str, Any]) -> Expr:
        if layer_of(self.node) is not None or layer_of(other.node) is not None:
            raise ValueError(
                "other: an anti-join of two models attributes their disagreement at the "
                "input; layers of two different models cannot be compared"
            )
        if window_of(self.node) != window_of(other.node):
            raise ValueError("other: the two sides must use the same window")
        left, right = source_of(self.node), source_of(other.node)
        model = difference_of(left.model, right.model)
        source = Source(model, left.inputs, left.labels, left.shape, left.dims, left.ids)
        view = rebased(self.node, with_source(base_of(self.node), source))
        bound = method_of(Query(view), name)
        check_params(name, bound, params)
        part = bound(target, **params).node
        assert isinstance(part, Attribution)
        return self._filtered(Disagreement(part, left.model, right.model))


def rebased_base(view: Node, source: Source) -> Node:
    """``view``'s base with its source's model swapped for ``source``'s (to compare inputs).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> x = torch.rand(2, 4)
    >>> f, g = ia.model(torch.nn.Linear(4, 3)), ia.model(torch.nn.Linear(4, 3))
    >>> a = f.on(x).node
    >>> rebased_base(g.on(x).node, a) == a
    True
    """
    return with_source(base_of(view), source, own_data=False)


def with_source(base: Node, source: Source, own_data: bool = True) -> Node:
    """``base`` (a source and its edits) rebuilt over ``source``'s model.

    Labels and ids stay ``base``'s own, or are taken from ``source`` when not ``own_data``
    (to compare two sides' inputs whatever their labels).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> x = torch.rand(2, 4)
    >>> f, g = ia.model(torch.nn.Linear(4, 3)), ia.model(torch.nn.Linear(4, 3))
    >>> with_source(f.on(x).node, g.on(x).node) == g.on(x).node
    True
    """
    if isinstance(base, Edit):
        inner = with_source(base.view, source, own_data)
        return Edit(inner, base.kind, base.window, base.value)
    assert isinstance(base, Source)
    labels, ids = (base.labels, base.ids) if own_data else (source.labels, source.ids)
    return Source(source.model, base.inputs, labels, base.shape, base.dims, ids)


@wrap.register
def _(source: Source) -> Query:
    return Query(source)
