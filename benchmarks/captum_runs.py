"""Captum's way: one public-API call per method and target, run one after another."""

from __future__ import annotations

import torch
from captum.attr import (
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Saliency,
)
from torch import nn

from .models import NUM_CLASSES
from .workloads import Workload

Results = dict[str, torch.Tensor]


def run(model: nn.Module, x: torch.Tensor, workload: Workload) -> Results:
    """All of a workload's results as a Captum user writes them.

    Every class of an "all classes" request is its own call (a forward and a backward);
    top-2 and "pred" targets come from a first, gradient-free forward; integrated
    gradients is one call per target rank, with ``internal_batch_size`` set to the
    workload's ``chunk_rows`` (``None``: all path points at once).

    Parameters
    ----------
    model : torch.nn.Module
        The benchmark CNN.
    x : torch.Tensor
        Inputs ``[N, 3, 32, 32]``.
    workload : Workload
        What to compute.

    Returns
    -------
    dict of str to torch.Tensor
        Same keys and layouts as :func:`benchmarks.floor.run`.
    """
    results: Results = {}
    if workload.single:
        return _single(model, x, workload.single)
    if workload.mixed:
        saliency, ixg = Saliency(model), InputXGradient(model)
        grad_cam = LayerGradCam(model, model.get_submodule("block3"))
        results["saliency"] = torch.stack(
            [saliency.attribute(x, target=c, abs=True) for c in range(NUM_CLASSES)], dim=1
        )
        results["input_x_gradient"] = torch.stack(
            [ixg.attribute(x, target=c) for c in range(NUM_CLASSES)], dim=1
        )
        maps = []
        for c in range(NUM_CLASSES):
            cam = grad_cam.attribute(x, target=c, relu_attributions=True)
            maps.append(LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear"))
        results["grad_cam"] = torch.cat(maps, dim=1)
    with torch.no_grad():
        logits = model(x)
    ig = IntegratedGradients(model)

    def integrate(target: torch.Tensor) -> torch.Tensor:
        return ig.attribute(
            x,
            baselines=0.0,
            target=target,
            n_steps=workload.ig_steps,
            method="gausslegendre",
            internal_batch_size=workload.chunk_rows,
        )

    if workload.ig_target == "top2":
        top2 = logits.topk(2, dim=1).indices
        results["integrated_gradients"] = torch.stack(
            [integrate(top2[:, rank]) for rank in range(2)], dim=1
        )
    else:
        results["integrated_gradients"] = integrate(logits.argmax(dim=1))
    return results


def _single(model: nn.Module, x: torch.Tensor, method: str) -> Results:
    # The prediction is the target: a gradient-free forward first, then one Captum call.
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    if method == "saliency":
        return {"saliency": Saliency(model).attribute(x, target=pred, abs=True)}
    cam = LayerGradCam(model, model.get_submodule("block3"))
    maps = cam.attribute(x, target=pred, relu_attributions=True)
    return {"grad_cam": LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), "bilinear")[:, 0]}
