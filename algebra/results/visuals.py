"""The labelled result of a feature visualisation: images and masks as an ``xarray.Dataset``."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..ir.model import ModelInfo
from ..kernels.visualize import Visualisation
from .arrays import host


def visualisation_dataset(
    vis: Visualisation, model: ModelInfo, layer: str, settings: dict[str, Any]
) -> xr.Dataset:
    """``images [neuron, image, channel, y, x]`` in [0, 1], ``masks [neuron, image, y, x]``
    (where the neuron's upsampled, z-scored activation map exceeds the threshold), the final
    ``activation [neuron, image]`` and ``logits [neuron, image, class]``, and the objective
    per step ``loss [step]``; ``settings`` become attributes (``None`` values are left out).

    Examples
    --------
    >>> import torch
    >>> from algebra.ir.node import Ref
    >>> vis = Visualisation(torch.zeros(2, 3, 1, 4, 4), torch.ones(2, 3, 4, 4, dtype=torch.bool),
    ...                     torch.zeros(2, 3), torch.zeros(2, 3, 5), torch.tensor([7, 1]), 4,
    ...                     torch.zeros(10), 0)
    >>> info = ModelInfo(Ref(None, "m"), "net", None, ())
    >>> ds = visualisation_dataset(vis, info, "conv", {"steps": 10, "guide": None})
    >>> ds.images.dims, ds.neuron.values.tolist(), ds.attrs["cls"], "guide" in ds.attrs
    (('neuron', 'image', 'channel', 'y', 'x'), [7, 1], 4, False)
    """
    count, channels = vis.images.shape[1:3]
    classes = vis.logits.shape[-1]
    coords: dict[str, Any] = {
        "neuron": host(vis.neurons),
        "image": np.arange(count),
        "channel": np.arange(channels),
        "class": np.arange(classes),
        "step": np.arange(1, len(vis.losses) + 1),
    }
    if model.classes is not None and len(model.classes) == classes:
        coords["class_name"] = ("class", np.asarray(model.classes, dtype=object))
    attrs: dict[str, Any] = {"method": "visualize", "model": model.name, "layer": layer}
    if vis.cls is not None:
        attrs["cls"] = int(vis.cls)
        if model.classes is not None and vis.cls < len(model.classes):
            attrs["class_name"] = model.classes[vis.cls]
    attrs["seed"] = int(vis.seed)
    attrs.update({key: value for key, value in settings.items() if value is not None})
    return xr.Dataset(
        {
            "images": (("neuron", "image", "channel", "y", "x"), host(vis.images)),
            "masks": (("neuron", "image", "y", "x"), host(vis.masks)),
            "activation": (("neuron", "image"), host(vis.activation)),
            "logits": (("neuron", "image", "class"), host(vis.logits)),
            "loss": (("step",), host(vis.losses)),
        },
        coords=coords,
        attrs=attrs,
    )
