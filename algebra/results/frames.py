"""Kernel outputs become labelled frames: dims, coordinates and per-sample columns, still
on the model's device (the xarray copy happens in :mod:`algebra.results.arrays`). A
perturbation's player map becomes the ``player`` coordinate over the feature dims."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.attribution import Attribution
from ..ir.format import shown
from ..ir.views import Edit, base_of, default_dims, layer_of, source_of, window_of
from ..kernels.execute import TaskResult
from ..kernels.frame import Frame
from .arrays import host


def attributes(node: Attribution) -> dict[str, Any]:
    """The ``attrs`` of a result: method, its parameters, target, model and layer.

    The integration rule of integrated gradients (its ``method`` argument) is stored as
    ``integration``, since ``method`` names the attribution method.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval(), name="lin").on(torch.rand(2, 4))
    >>> attributes(q.saliency("pred").node)
    {'method': 'saliency', 'target': "'pred'", 'model': 'lin', 'layer': '', 'abs': True}
    """
    source = source_of(node.view)
    attrs: dict[str, Any] = {
        "method": node.method,
        "target": node.target.describe(),
        "model": source.model.name,
        "layer": layer_of(node.view) or "",  # netCDF attributes cannot be None
    }
    for key, value in node.params:
        name = "integration" if key == "method" else key
        attrs[name] = value if isinstance(value, (int, float, str)) else shown(value)
    window = window_of(node.view)
    if window is not None:
        attrs["window"] = list(window)
    if isinstance(base_of(node.view), Edit):
        attrs["edited"] = 1
    return attrs


def to_frame(node: Attribution, result: TaskResult, logits: Any) -> Frame:
    """Label one task's output ``[T, N, ...]``: dims, coordinates and per-sample columns.

    Dims are ``sample``, ``target`` (for expanding targets), then the input's dims (or
    the layer's). ``class`` always holds the class attributed; ``pred``/``label`` are per
    sample. The data stays on the model's device.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import optimize
    >>> from algebra.kernels.execute import execute
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> node = q.saliency(ia.topk(2)).node
    >>> out = execute(optimize([node]).fused[0].job)
    >>> frame = to_frame(node, out.tasks[node.token], out.logits)
    >>> frame.dims, sorted(frame.columns)
    (('sample', 'target', 'feature'), ['id', 'pred', 'score'])
    """
    source = source_of(node.view)
    model = source.model
    target = node.target
    values = result.values
    layer = layer_of(node.view)
    if node.method == "grad_cam":  # channels are summed away: a map over the grid
        feature_dims = (
            ("y", "x")[-(values.ndim - 2) :] if values.ndim <= 4 else default_dims(values.ndim - 1)
        )
    else:
        feature_dims = default_dims(values.ndim - 1) if layer else source.dims
    n = source.n
    sample = np.asarray(source.ids) if source.ids is not None else np.arange(n)
    pred = logits.argmax(dim=1)
    coords: dict[str, Any] = {"sample": (("sample",), sample), "pred": (("sample",), host(pred))}
    columns: dict[str, Any] = {
        "pred": pred,
        "score": logits.float().softmax(dim=1).amax(dim=1),
        "id": sample,
    }
    if source.labels is not None:
        labels = source.labels.value.to(logits.device)
        coords["label"] = (("sample",), host(labels))
        columns["label"] = labels
        columns["correct"] = pred == labels
    classes = None if result.classes is None else host(result.classes)
    if target.expands:
        data = values.transpose(0, 1)
        dims = ("sample", "target", *feature_dims)
        if target.kind == "topk":
            coords["target"] = (("target",), np.arange(data.shape[1]))
            class_dims: tuple[str, ...] = ("sample", "target")
            class_values = classes.T  # type: ignore[union-attr]
        else:
            coords["target"] = (("target",), classes[:, 0])  # type: ignore[index]
            class_dims, class_values = ("target",), classes[:, 0]  # type: ignore[index]
    else:
        data = values[0]
        dims = ("sample", *feature_dims)
        class_dims, class_values = ("sample",), None if classes is None else classes[0]
    if class_values is not None:
        coords["class"] = (class_dims, class_values)
        if model.classes is not None:
            coords["class_name"] = (
                class_dims,
                np.asarray(model.classes, dtype=object)[class_values],
            )
    attrs = attributes(node)
    if result.players is not None:  # a perturbation's players, to draw beside the map
        ids = host(result.players)
        shared = ids.shape[0] == 1
        coords["player"] = (
            (tuple(feature_dims), ids[0])
            if shared
            else (
                ("sample", *feature_dims),
                ids,
            )
        )
        attrs["players"] = int(ids.max()) + 1
    return Frame(data, dims, coords, tuple(feature_dims), columns, attrs)
