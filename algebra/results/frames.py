"""Kernel outputs become labelled frames: dims, coordinates and per-sample columns, still
on the model's device (the xarray copy happens in :mod:`algebra.results.arrays`). A
perturbation's player map becomes the ``player`` coordinate over the feature dims."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.attribution import Attribution, method
from ..ir.format import shown
from ..ir.views import Edit, base_of, default_dims, layer_of, noise_of, source_of, window_of
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
    noise = noise_of(node.view)
    if noise is not None:
        attrs["noise"] = noise.describe()
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
    if method(node.method).grid_map:  # channels are summed away: a map over the grid
        feature_dims = (
            ("y", "x")[-(values.ndim - 2) :] if values.ndim <= 4 else default_dims(values.ndim - 1)
        )
    elif node.method == "guided_grad_cam":  # a map over the inputs, read at a layer
        feature_dims = source.dims
    else:
        feature_dims = default_dims(values.ndim - 1) if layer else source.dims
    n = source.n
    noise = noise_of(node.view)
    copies = () if noise is None else ("noise",)
    values, classes_, delta = unfolded(result, n)
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
    classes = None if classes_ is None else host(classes_)
    if copies:
        coords["noise"] = (("noise",), np.arange(values.shape[2]))
    dim = target.dim
    if target.expands:
        data = values.transpose(0, 1)
        dims = ("sample", dim, *copies, *feature_dims)
        if delta is not None:
            coords["delta"] = (("sample", dim, *copies), host(delta.transpose(0, 1)))
        if target.kind == "topk":
            coords["target"] = (("target",), np.arange(data.shape[1]))
            class_dims: tuple[str, ...] = ("sample", "target")
            class_values = classes.T  # type: ignore[union-attr]
        else:
            coords[dim] = ((dim,), classes[:, 0])  # type: ignore[index]
            class_dims, class_values = ("target",), classes[:, 0]  # type: ignore[index]
    else:
        data = values[0]
        dims = ("sample", *copies, *feature_dims)
        if delta is not None:
            coords["delta"] = (("sample", *copies), host(delta[0]))
        class_dims, class_values = ("sample",), None if classes is None else classes[0]
    if target.layer is not None:  # units of a layer: no class is attributed
        class_values = None
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


def unfolded(result: TaskResult, n: int) -> tuple[Any, Any, Any]:
    """Values ``[T, N, (S,) ...]``, classes ``[T, N]`` and delta ``[T, N, (S)]`` of a result,
    the noisy copies' rows (noise-major, ``s * N + i``) unfolded into a dim after the samples.

    Examples
    --------
    >>> import torch
    >>> result = TaskResult(torch.arange(6.0).reshape(1, 6), torch.zeros(1, 6, dtype=torch.long))
    >>> values, classes, delta = unfolded(result, 2)
    >>> values.tolist(), tuple(classes.shape), delta
    ([[[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]], (1, 2), None)
    """
    values, classes, delta = result.values, result.classes, result.delta
    rows = values.shape[1]
    if rows == n:
        return values, classes, delta
    copies = rows // n
    values = values.reshape(values.shape[0], copies, n, *values.shape[2:]).movedim(1, 2)
    if delta is not None:
        delta = delta.reshape(delta.shape[0], copies, n).movedim(1, 2)
    return values, None if classes is None else classes[:, :n], delta
