"""Phase two of a computation: the metrics of attribution maps, after the maps.

Deletion, insertion, faithfulness correlation and infidelity of every map of the same
model and inputs go through one stream of forwards per baseline
(:func:`~algebra.kernels.evaluation.run_metrics`). Sensitivity-max re-attributes the map
at noisy copies of the inputs, stacked as one batch: the re-attributions of every such
metric over the same noise are planned together, so they fuse like any attributions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ..config import OptimizerOptions, options
from ..ir.attribution import Attribution
from ..ir.metrics import Metric
from ..ir.node import Node, Ref, walk
from ..ir.targets import Target
from ..ir.views import Source, base_of, rebased, source_of
from ..kernels.checks import fingerprint
from ..kernels.edits import materialize
from ..kernels.evaluation import MetricTask, run_metrics
from ..kernels.frame import Frame
from ..kernels.guard import device_of
from ..kernels.memory import default_budget
from ..kernels.metrics import sensitivity_max, uniform_noise
from ..kernels.outputs import selecting
from ..optimizer.simplify import inputs_of
from ..results.metric_frames import metric_frame
from .evaluate import evaluate
from .jobs import attribution_frames


def metric_frames(
    metrics: list[Metric],
    frames: dict[str, Frame],
    cache: dict[str, Frame],
    rules: OptimizerOptions,
    made: dict[str, Any],
) -> dict[str, Frame]:
    """The frame of every metric, by token, from the frames of the maps they score.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> m = q.saliency(0).deletion(steps=2).node
    >>> frames = attribution_frames([m.attribution], flags(), {})
    >>> metric_frames([m], frames, {}, flags(), {})[m.token].dims
    ('sample', 'fraction')
    """
    out = _streams([m for m in metrics if m.kind != "sensitivity_max"], frames, cache, rules, made)
    sensitive = [m for m in metrics if m.kind == "sensitivity_max"]
    if sensitive:
        out.update(_sensitivity(sensitive, frames, cache, rules, made))
    return out


def maps_of(frame: Frame, source: Source) -> torch.Tensor:
    """A map frame's data as ``[T, N, ...]``, its dims aligned with the inputs' (a dim the
    map lacks, e.g. the channels of a map summed over them, has size 1).

    Examples
    --------
    >>> import numpy as np, torch, algebra as ia
    >>> q = ia.model(torch.nn.Conv2d(3, 2, 1)).on(torch.rand(2, 3, 4, 4))
    >>> maps_of(Frame(torch.zeros(2, 4, 4), ("sample", "y", "x")), q.node).shape
    torch.Size([1, 2, 1, 4, 4])
    """
    data = frame.data if "target" in frame.dims else frame.data[:, None]
    data = data.transpose(0, 1)
    own = [d for d in frame.dims if d not in ("sample", "target")]
    extra = [d for d in own if d not in source.dims]
    if extra:
        raise ValueError(
            f"attr: the map has dims {extra} that the inputs {list(source.dims)} lack; a "
            "metric scores a map over the inputs' features"
        )
    present = [d for d in source.dims if d in own]
    data = data.permute(0, 1, *(own.index(d) + 2 for d in present))
    sizes = iter(data.shape[2:])
    shape = [data.shape[0], data.shape[1]]
    for d, size in zip(source.dims, source.shape[1:], strict=True):
        have = next(sizes) if d in own else 1
        if have not in (1, size):
            raise ValueError(f"attr: the map's {d!r} has {have} entries, the inputs' {size}")
        shape.append(have)
    return data.reshape(shape)


def classes_of(frame: Frame) -> torch.Tensor:
    """The class each map of a frame explains, ``[T, N]``.

    Examples
    --------
    >>> import numpy as np
    >>> f = Frame(torch.zeros(3, 2, 4), ("sample", "target", "feature"),
    ...           {"class": (("target",), np.array([0, 2]))})
    >>> classes_of(f).tolist()
    [[0, 0, 0], [2, 2, 2]]
    """
    n = frame.data.shape[frame.axis("sample")]
    dims, values = frame.coords["class"]
    classes = torch.as_tensor(values, dtype=torch.long, device=frame.data.device)
    if dims == ("sample",):
        return classes[None]
    if dims == ("target",):
        return classes[:, None].expand(-1, n)
    return classes.T


def _budget(module: torch.nn.Module, x: torch.Tensor, rules: OptimizerOptions) -> int | None:
    if not rules.chunk:
        return None
    return options.memory_budget or default_budget(device_of(module, default=x.device))


def _baseline(metric: Metric) -> tuple[Any, str]:
    value = metric.options.get("baseline", 0.0)
    return (value.value, value.token) if isinstance(value, Ref) else (value, repr(value))


def _streams(
    metrics: list[Metric],
    frames: dict[str, Frame],
    cache: dict[str, Frame],
    rules: OptimizerOptions,
    made: dict[str, Any],
) -> dict[str, Frame]:
    # One stream per model, inputs and baseline; infidelity (no baseline) joins any.
    streams: dict[tuple, list[tuple[Metric, Frame, MetricTask]]] = {}
    for metric in sorted(metrics, key=lambda m: m.kind == "infidelity"):
        attr = metric.attribution
        source = source_of(attr.view)
        child = evaluate(metric.child, frames, cache)
        task = _task(metric, maps_of(child, source), classes_of(child))
        job = (id(source.model.torch_module), base_of(attr.view).token)
        keys = [k for k in streams if k[:2] == job]
        key = keys[0] if metric.kind == "infidelity" and keys else (*job, _baseline(metric)[1])
        streams.setdefault(key, []).append((metric, child, task))
    out = {}
    for members in streams.values():
        attr = members[0][0].attribution
        module = source_of(attr.view).model.torch_module
        x = materialize(inputs_of(base_of(attr.view)), made)
        baseline = next((_baseline(m)[0] for m, _, _ in members if m.kind != "infidelity"), 0.0)
        tasks = [task for _, _, task in members]
        scores = source_of(attr.view).model.scores  # as ia.model(output=, position=) reads
        with selecting(module, scores):
            results, _ = run_metrics(module, x, tasks, baseline, _budget(module, x, rules))
        for metric, child, task in members:
            r = results[task.key]
            out[metric.token] = metric_frame(child, metric.kind, metric.params, r.values, r.area)
    return out


def _task(metric: Metric, maps: torch.Tensor, targets: torch.Tensor) -> MetricTask:
    o = metric.options
    return MetricTask(
        metric.token,
        metric.kind,
        maps,
        targets,
        steps=o.get("steps", 20),
        samples=o.get("samples", 10),
        subset=o.get("subset"),
        stdev=o.get("stdev", 0.1),
        seed=o.get("seed"),
        normalize=o.get("normalize", False),
    )


def _sensitivity(
    metrics: list[Metric],
    frames: dict[str, Frame],
    cache: dict[str, Frame],
    rules: OptimizerOptions,
    made: dict[str, Any],
) -> dict[str, Frame]:
    noisy: dict[tuple, Source] = {}
    plans: list[tuple[Metric, Frame, list[Node]]] = []
    for metric in metrics:
        attr = metric.attribution
        source, base = source_of(attr.view), base_of(attr.view)
        o = metric.options
        spec = (id(source.model.torch_module), base.token, o["samples"], o["radius"], o["seed"])
        if spec not in noisy:  # one stacked batch of noisy inputs per noise
            x = materialize(inputs_of(base), made)
            moved = x[None] + uniform_noise(x, o["samples"], o["radius"], o["seed"])
            stacked = moved.reshape(-1, *x.shape[1:])
            ref = Ref(stacked, fingerprint(stacked))
            noisy[spec] = Source(source.model, ref, None, tuple(stacked.shape), source.dims, None)
        child = evaluate(metric.child, frames, cache)
        classes = classes_of(child)
        rebuilt = [
            _reattributed(metric.child, noisy[spec], row, o["samples"], source.n, made)
            for row in classes.tolist()
        ]
        plans.append((metric, child, rebuilt))
    nodes = [node for _, _, rebuilt in plans for node in rebuilt]
    leaves = [n for n in walk(nodes) if isinstance(n, Attribution)]
    again = attribution_frames(leaves, rules, made)
    local: dict[str, Frame] = {}
    out = {}
    for metric, child, rebuilt in plans:
        s, n = metric.options["samples"], child.data.shape[0]
        maps = [evaluate(node, again, local).data for node in rebuilt]  # [S * N, ...] each
        re = torch.stack(maps).reshape(len(maps), s, n, *maps[0].shape[1:]).transpose(0, 1)
        attributions = child.data if "target" in child.dims else child.data[:, None]
        values = sensitivity_max(attributions.transpose(0, 1), re)
        out[metric.token] = metric_frame(child, metric.kind, metric.params, values)
    return out


def _reattributed(
    node: Node, source: Source, classes: list[int], samples: int, n: int, made: dict[str, Any]
) -> Node:
    """The map expression ``node`` again, over the stacked noisy inputs, for ``classes``."""
    if not isinstance(node, Attribution):
        return replace(node, child=_reattributed(node.child, source, classes, samples, n, made))  # type: ignore[attr-defined]
    params = tuple((k, _tiled(v, samples, n, made)) for k, v in node.params)
    target = Target("per_sample", tuple(classes) * samples)
    return Attribution(rebased(node.view, source), node.method, target, params)


def _tiled(value: Any, samples: int, n: int, made: dict[str, Any]) -> Any:
    """A per-sample tensor parameter (a baseline, a mask) repeated for every noisy copy."""
    if isinstance(value, Node):  # another query's inputs as baseline
        tensor = materialize(inputs_of(value), made)
    elif isinstance(value, Ref) and isinstance(value.value, torch.Tensor):
        tensor = value.value
    else:
        return value
    if n > 1 and tensor.ndim > 1 and tensor.shape[0] == n:
        tensor = tensor.repeat(samples, *([1] * (tensor.ndim - 1)))
    elif isinstance(value, Ref):
        return value
    return Ref(tensor, fingerprint(tensor))
