"""Metric outputs become labelled frames: one value (or curve) per sample and target.

A metric keeps the sample and target labels and the per-sample columns of the map it
scores, and says which method produced the map (the ``method`` coordinate), so the
metrics of several methods concatenate along a ``method`` dim.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..ir.format import shown
from ..kernels.frame import Frame
from .arrays import host


def metric_frame(
    child: Frame,
    kind: str,
    params: tuple[tuple[str, Any], ...],
    values: torch.Tensor,
    area: torch.Tensor | None = None,
) -> Frame:
    """The frame of metric ``kind`` of the map ``child``: ``values`` ``[T, N]`` (a curve
    ``[T, N, K]`` over a ``fraction`` dim, with its ``area`` ``[T, N]``).

    Examples
    --------
    >>> child = Frame(torch.zeros(2, 4), ("sample", "feature"),
    ...               {"sample": (("sample",), np.arange(2))}, ("feature",),
    ...               attrs={"method": "saliency"})
    >>> f = metric_frame(child, "deletion", (("steps", 2),), torch.ones(1, 2, 3), torch.ones(1, 2))
    >>> f.dims, f.coords["fraction"][1].tolist(), f.attrs["metric"]
    (('sample', 'fraction'), [0.0, 0.5, 1.0], 'deletion')
    """
    expands = "target" in child.dims
    lead = ("sample", "target") if expands else ("sample",)

    def labelled(t: torch.Tensor) -> torch.Tensor:
        return t.transpose(0, 1) if expands else t[0]

    dims: tuple[str, ...] = lead
    features: tuple[str, ...] = ()
    coords = {k: c for k, c in child.coords.items() if set(c[0]) <= set(lead)}
    if values.ndim == 3:  # a curve over the fraction of features removed or added
        dims, features = (*lead, "fraction"), ("fraction",)
        coords["fraction"] = (("fraction",), np.linspace(0.0, 1.0, values.shape[2]))
    if area is not None:
        coords["area"] = (lead, host(labelled(area)))
    method = child.attrs.get("method", "")
    coords["method"] = ((), np.asarray(method))
    attrs = {**child.attrs, "metric": kind}
    for key, value in params:
        attrs[f"metric_{key}"] = value if isinstance(value, (int, float, str)) else shown(value)
    return Frame(labelled(values), dims, coords, features, child.columns, attrs)
