"""Stage 1, simplify: each unique attribution lowered to one request and one output.

Equal sub-expressions have equal tokens and are lowered once. With ``simplify`` on, two
attributions of the same target, layer and points share one request (saliency and
input-x-gradient of a target share a gradient); with it off, each has its own. A
perturbation method becomes a :class:`~algebra.kernels.plan.Perturbation` (a design and a
target) on a point set of perturbed copies, keyed by its baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..config import OptimizerOptions
from ..ir.attribution import Attribution, method
from ..ir.node import Node, Ref
from ..ir.targets import Target
from ..ir.views import Edit, Source, inputs_node, layer_of, window_of
from ..kernels.design_specs import DesignSpec, PlayerSpec
from ..kernels.plan import Edited, Output, PathSpec, Perturbation, Points, Request, TargetSpec


@dataclass(frozen=True)
class Lowered:
    """One unique attribution as the kernels compute it.

    ``job`` identifies the model and (possibly edited) inputs it runs on; ``capture``
    lists layers whose activations its points must keep; ``path_layer`` is the layer a
    path (or a stream of copies) runs through, whose activations at the inputs and at the
    baseline are the path's ends (the copies' values and fill). ``extra`` lists other point
    sets the output reads, each with its request (or ``None``) and the layers it must
    capture. A method that reads no gradient (a layer's activation) has no ``request``.
    """

    node: Attribution
    job: str
    points: Points
    request: Request | Perturbation | None
    output: Output
    capture: tuple[str, ...] = ()
    path_layer: str | None = None
    extra: tuple[tuple[Points, Request | None, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Simplified:
    """The simplify stage's output: the unique attributions, lowered."""

    items: tuple[Lowered, ...]

    @property
    def requests(self) -> int:
        """The number of distinct gradient requests."""
        found = set()
        for item in self.items:
            parts = [(item.points, item.request)] + [(p, r) for p, r, _ in item.extra]
            found |= {
                (item.job, p.key, r.key)
                for p, r in parts
                if r is not None and not isinstance(r, Perturbation)
            }
        return len(found)

    @property
    def designs(self) -> int:
        """The number of distinct perturbation designs (each read for any number of targets)."""
        return len(
            {
                (i.job, i.points.key, i.request.design.key)
                for i in self.items
                if isinstance(i.request, Perturbation)
            }
        )


def inputs_of(base: Node) -> object:
    """What a base view feeds the model: the source's tensor, or an :class:`Edited` spec.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Conv2d(1, 1, 1).eval()).on(torch.rand(2, 1, 4, 4))
    >>> spec = inputs_of(q.patch((0, 2, 0, 2), 1.0).node)
    >>> spec.kind, spec.window, spec.value
    ('patch', (0, 2, 0, 2), 1.0)
    """
    if isinstance(base, Source):
        return base.inputs.value
    assert isinstance(base, Edit)
    value = base.value
    if isinstance(value, Node):
        value = inputs_of(value)
    elif isinstance(value, Ref):
        value = value.value
    return Edited(inputs_of(base.view), base.kind, base.window, value, base.token)  # type: ignore[arg-type]


def simplify(nodes: list[Attribution], rules: OptimizerOptions) -> Simplified:
    """Lower each unique attribution to a request on a point set and an output.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer.rules import flags
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> nodes = [q.saliency(0).node, q.input_x_gradient(0).node, q.saliency(0).node]
    >>> s = simplify(nodes, flags())
    >>> len(s.items), s.requests, simplify(nodes, flags(optimize=False)).requests
    (2, 1, 2)
    """
    unique = {n.token: n for n in nodes}.values()
    return Simplified(tuple(_lower(node, rules) for node in unique))


# Methods lowered by their own function (algebra.optimizer.lowering registers them).
LOWERINGS: dict[str, Callable[[Attribution, OptimizerOptions], Lowered]] = {}


def _lower(node: Attribution, rules: OptimizerOptions) -> Lowered:
    if node.method in LOWERINGS:
        return LOWERINGS[node.method](node, rules)
    spec = method(node.method)
    if spec.perturbs:
        return _lower_copies(node, rules)
    layer = layer_of(node.view)
    points = _points(node, rules)
    key = f"{points.key}|{node.target.token}|{layer}" if rules.simplify else f"{node.token}|grad"
    opts = node.options
    output = Output(
        node.token,
        key,
        spec.output,  # type: ignore[arg-type]
        layer,
        absolute=bool(opts.get("abs", False)),
        relu=bool(opts.get("relu", False)),
        upsample=bool(opts.get("upsample", False)),
        window=window_of(node.view),
    )
    capture = (layer,) if layer is not None and spec.output in ("times_input", "grad_cam") else ()
    return Lowered(
        node,
        inputs_node(node.view).token,  # one job per model and (possibly edited, noisy) inputs
        points,
        Request(key, _target(node), layer),
        output,
        capture,
        layer if layer is not None and spec.path else None,
    )


def _points(node: Attribution, rules: OptimizerOptions) -> Points:
    if not method(node.method).path:
        return Points("inputs", owner="" if rules.share_forward else node.token)
    opts = node.options
    baseline = dict(node.params)["baseline"]
    if isinstance(baseline, Node):
        start, baseline_key = inputs_of(baseline), baseline.token
    else:
        start = opts["baseline"]
        baseline_key = baseline.token if isinstance(baseline, Ref) else repr(baseline)
    path = PathSpec(opts["steps"], opts["method"], start, baseline_key, window_of(node.view))
    owner = "" if rules.share_paths else node.token
    return Points("path", path, layer_of(node.view), owner=owner)


def _target(node: Attribution) -> TargetSpec:
    return target_spec(node.target)


def target_spec(target: Target) -> TargetSpec:
    """The kernels' spec of a target: references unwrapped (a callable, a unit's callable).

    Examples
    --------
    >>> import algebra as ia
    >>> target_spec(ia.topk(2)), target_spec(ia.unit("b3", 1)).value
    (TargetSpec(kind='topk', value=2), ('b3', 1, 1))
    """
    value = target.value
    if isinstance(value, Ref):
        value = value.value
    elif target.kind in ("unit", "units"):
        layer, which, count = value  # type: ignore[misc]
        value = (layer, which.value if isinstance(which, Ref) else which, count)
    elif target.kind == "generated":  # the tokens chosen, [N, steps]
        value = (value[0].value, *value[1:])  # type: ignore[index]
    return TargetSpec(target.kind, value)  # type: ignore[arg-type]


def _baseline(node: Attribution) -> tuple[object, str]:
    """A baseline's value (a number, a tensor or edited inputs) and its key."""
    baseline = dict(node.params).get("baseline", 0.0)  # a permutation fills from the batch
    if isinstance(baseline, Node):
        return inputs_of(baseline), baseline.token
    if isinstance(baseline, Ref):
        return baseline.value, baseline.token
    return baseline, repr(baseline)


def player_spec(groups: object, window: tuple[int, int, int, int] | None) -> PlayerSpec:
    """The plain-data players of a ``groups`` parameter (``None``, a spec or a mask's ``Ref``).

    Examples
    --------
    >>> import algebra as ia
    >>> player_spec(ia.grid(2, 4), (0, 4, 0, 8)).key
    'grid(2, 4)|window(0, 4, 0, 8)'
    """
    if groups is None:
        return PlayerSpec("default", window=window)
    if isinstance(groups, Ref):
        return PlayerSpec("mask", mask=groups.value, mask_key=groups.token, window=window)
    return PlayerSpec(groups.kind, groups.args, window=window)  # type: ignore[attr-defined]


def _lower_copies(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """A perturbation method: a design read for one target, on its baseline's copies."""
    opts = node.options
    layer = layer_of(node.view)
    start, key = _baseline(node)
    owner = "" if rules.share_forward else node.token
    points = Points("copies", PathSpec(1, "copies", start, key), layer, owner=owner)
    design = DesignSpec(
        node.method,
        player_spec(dict(node.params).get("groups"), window_of(node.view)),
        samples=opts.get("samples"),
        seed=opts.get("seed"),
        antithetic=bool(opts.get("antithetic", False)),
        kernel_width=opts.get("kernel_width"),
        size=opts.get("size"),
        stride=opts.get("stride"),
    )
    target = _target(node)
    if rules.simplify:
        request_key = f"{points.key}|{design.key}|{node.target.token}"
    else:
        request_key = f"{node.token}|copies"
    output = Output(node.token, request_key, "perturbation", layer, window=window_of(node.view))
    return Lowered(
        node,
        inputs_node(node.view).token,
        points,
        Perturbation(request_key, design, target),
        output,
        path_layer=layer,
    )
