"""The xarray boundary: kernel outputs become labelled ``DataArray`` results."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from .kernels.execute import TaskResult
from .model import default_dims
from .nodes import Ref
from .operators import Attribution, layer_of, source_of


def _numpy(tensor: Any) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.element_size() < 4:  # float16 / bfloat16
        tensor = tensor.float()
    return tensor.cpu().numpy()


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
        "model": source.wrapped_model.name,
        "layer": layer_of(node.view) or "",  # netCDF attributes cannot be None
    }
    for key, value in node.params:
        name = "integration" if key == "method" else key
        attrs[name] = f"tensor{list(value.value.shape)}" if isinstance(value, Ref) else value
    return attrs


def to_dataarray(node: Attribution, result: TaskResult, logits: Any) -> xr.DataArray:
    """Label one task's output ``[T, N, ...]`` with dims, coordinates and attributes.

    Dims are ``sample``, ``target`` (for expanding targets), then the input's dims (or
    the layer's). ``class`` always holds the class attributed; ``pred``/``label`` are per
    sample.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.planner import plan
    >>> from algebra.kernels.execute import execute
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> node = q.saliency(ia.topk(2)).node
    >>> out = execute(plan([node])[0].job)
    >>> to_dataarray(node, out.tasks[node.token], out.logits).dims
    ('sample', 'target', 'feature')
    """
    source = source_of(node.view)
    model = source.wrapped_model
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
    sample = list(source.ids) if source.ids is not None else np.arange(n)
    coords: dict[str, Any] = {"sample": sample, "pred": ("sample", _numpy(logits.argmax(dim=1)))}
    if source.labels is not None:
        coords["label"] = ("sample", _numpy(source.labels.value))
    classes = None if result.classes is None else _numpy(result.classes)
    if target.expands:
        data = _numpy(values).swapaxes(0, 1)
        dims = ("sample", "target", *feature_dims)
        if target.kind == "topk":
            coords["target"] = np.arange(data.shape[1])
            class_dims: tuple[str, ...] = ("sample", "target")
            class_values = classes.T  # type: ignore[union-attr]
        else:
            coords["target"] = classes[:, 0]  # type: ignore[index]
            class_dims, class_values = ("target",), classes[:, 0]  # type: ignore[index]
    else:
        data = _numpy(values[0])
        dims = ("sample", *feature_dims)
        class_dims, class_values = ("sample",), None if classes is None else classes[0]
    if class_values is not None:
        coords["class"] = (class_dims, class_values)
        if model.classes is not None:
            coords["class_name"] = (
                class_dims,
                np.asarray(model.classes, dtype=object)[class_values],
            )
    return xr.DataArray(data, dims=dims, coords=coords, name=node.method, attrs=attributes(node))
