"""The optimizer: attribution nodes become kernel jobs, through named, switchable stages.

logical (the expressions as written) -> simplified (common sub-expressions merged; one
gradient request per target, layer and point set, so saliency and input-x-gradient of a
target share a gradient) -> physical (requests grouped by model, inputs and the points the
model is evaluated at) -> fused (one forward per point set, one batched backward over all
its targets and layers) -> chunked (sized at run time by the kernels, under
``ia.options.memory_budget``). Each rule has a flag in ``ia.options.optimizer``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .kernels.plan import (
    Edited,
    ExecConfig,
    Group,
    Job,
    Output,
    PathSpec,
    Points,
    Request,
    TargetSpec,
)
from .methods import method as lookup_method
from .nodes import Node, Ref
from .operators import Attribution, Edit, Source, base_of, layer_of, source_of, window_of
from .options import OptimizerOptions, options

NO_OPTIMIZATION = OptimizerOptions(
    simplify=False, share_forward=False, fuse_targets=False, share_paths=False, chunk=False
)


def describe(node: Attribution, with_layer: bool = True) -> str:
    """One line for an attribution node, as the user would have written it.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> describe(q.integrated_gradients(ia.topk(2), steps=8).node)
    "integrated_gradients(target=topk(2), steps=8, method='gausslegendre', baseline=0.0)"
    """
    params = [f"target={node.target.describe()}"]
    for key, value in node.params:
        params.append(f"{key}={shown(value)}")
    layer = layer_of(node.view) if with_layer else None
    at = f" at layer {layer!r}" if layer else ""
    window = window_of(node.view)
    at += f" in window {list(window)}" if window else ""
    at += " on edited inputs" if isinstance(base_of(node.view), Edit) else ""
    return f"{node.method}({', '.join(params)}){at}"


def shown(value: object) -> str:
    """A parameter value as plans and attributes show it (tensors by shape).

    Examples
    --------
    >>> shown(0.5), shown("gausslegendre")
    ('0.5', "'gausslegendre'")
    """
    if isinstance(value, Ref) and hasattr(value.value, "shape"):
        return f"tensor{list(value.value.shape)}"
    if isinstance(value, Node):  # another query's inputs
        return f"inputs{list(source_of(value).shape)}"
    return repr(value)


def flags(optimize: bool = True) -> OptimizerOptions:
    """The optimizer rules in force: ``ia.options.optimizer``, or none when not ``optimize``.

    Examples
    --------
    >>> flags(optimize=False).fuse_targets, flags().fuse_targets
    (False, True)
    """
    return options.optimizer if optimize else NO_OPTIMIZATION


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


def _points(node: Attribution, rules: OptimizerOptions, key: str) -> Points:
    if not lookup_method(node.method).path:
        return Points("inputs", owner="" if rules.share_forward else key)
    opts = node.options
    baseline = dict(node.params)["baseline"]
    if isinstance(baseline, Node):
        start, baseline_key = inputs_of(baseline), baseline.token
    else:
        start = opts["baseline"]
        baseline_key = baseline.token if isinstance(baseline, Ref) else repr(baseline)
    window = window_of(node.view)
    path = PathSpec(opts["steps"], opts["method"], start, baseline_key, window)
    return Points("path", path, layer_of(node.view), owner="" if rules.share_paths else key)


def _target(node: Attribution) -> TargetSpec:
    value = node.target.value
    return TargetSpec(node.target.kind, value.value if isinstance(value, Ref) else value)  # type: ignore[arg-type]


@dataclass
class Planned:
    """One job with the nodes it computes; ``requests`` maps request keys to node tokens."""

    source: Source
    job: Job
    nodes: dict[str, Attribution]


def plan(nodes: list[Attribution], rules: OptimizerOptions | None = None) -> list[Planned]:
    """Group unique nodes by source (model and inputs) into jobs of point-set groups.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> [planned] = plan([q.saliency(0).node, q.input_x_gradient(0).node])
    >>> [len(g.requests) for g in planned.job.groups]
    [1]
    """
    rules = rules or options.optimizer
    planned: dict[str, Planned] = {}
    groups: dict[tuple[str, str], Group] = {}
    for node in {n.token: n for n in nodes}.values():
        source = source_of(node.view)
        base = base_of(node.view)  # one job per model and (possibly edited) inputs
        if base.token not in planned:
            labels = None if source.labels is None else source.labels.value
            model = source.wrapped_model
            config = ExecConfig(
                rules.chunk, options.memory_budget, options.precision, options.compile
            )
            job = Job(model.module, inputs_of(base), labels, outputs=model.num_classes)
            job.config = config
            job.reference = None if model.reference is None else model.reference.module
            planned[base.token] = Planned(source, job, {})
            groups[(base.token, Points("inputs").key)] = Group(Points("inputs"))
            job.groups.append(groups[(base.token, Points("inputs").key)])
        entry = planned[base.token]
        entry.nodes[node.token] = node
        _add(node, entry.job, groups, base.token, rules)
    for entry in planned.values():
        order = {"inputs": 0, "baseline": 1, "path": 2}
        entry.job.groups.sort(key=lambda g: (order[g.points.kind], g.points.owner != ""))
    return list(planned.values())


def _add(
    node: Attribution,
    job: Job,
    groups: dict[tuple[str, str], Group],
    source: str,
    rules: OptimizerOptions,
) -> None:
    spec = lookup_method(node.method)
    layer = layer_of(node.view)
    target = _target(node)
    owner_key = node.token
    points = _points(node, rules, owner_key)
    request_key = (
        f"{points.key}|{node.target.token}|{layer}" if rules.simplify else f"{node.token}|grad"
    )
    group = _group(job, groups, source, points, rules)
    if all(r.key != request_key for r in group.requests):
        group.requests.append(Request(request_key, target, layer))
    if layer is not None and spec.output in ("times_input", "grad_cam"):
        group.capture = tuple(dict.fromkeys([*group.capture, layer]))
    if layer is not None and spec.path:  # the path runs between two activations of the layer
        inputs = groups[(source, Points("inputs").key)]
        inputs.capture = tuple(dict.fromkeys([*inputs.capture, layer]))
        base = _group(
            job, groups, source, Points("baseline", points.path, owner=points.owner), rules
        )
        base.capture = tuple(dict.fromkeys([*base.capture, layer]))
    opts = node.options
    job.results.append(
        Output(
            node.token,
            request_key,
            spec.output,  # type: ignore[arg-type]
            layer,
            absolute=bool(opts.get("abs", False)),
            relu=bool(opts.get("relu", False)),
            upsample=bool(opts.get("upsample", False)),
            window=window_of(node.view),
        )
    )


def _group(
    job: Job,
    groups: dict[tuple[str, str], Group],
    source: str,
    points: Points,
    rules: OptimizerOptions,
) -> Group:
    key = (source, points.key)
    if key not in groups:
        groups[key] = Group(points, fuse_targets=rules.fuse_targets)
        job.groups.append(groups[key])
    groups[key].fuse_targets = rules.fuse_targets
    return groups[key]
