"""The floor: each workload's results with the minimum number of passes, in bare torch.

Mixed workloads take two forwards and two backwards in all:

1. one forward at the inputs, capturing the last block's output with a forward hook, and
   one backward batched over every class (``is_grads_batched``) to the inputs and the
   captured activation: saliency, input-x-gradient and GradCAM all come out of it;
2. one forward over ``steps x N`` path points and one backward batched over the top-2
   targets, integrated with Gauss-Legendre weights.

Under a memory budget (``ig1024``) the path points go through in chunks of rows instead.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import NUM_CLASSES
from .workloads import Workload

Results = dict[str, torch.Tensor]


def gauss_legendre(
    steps: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights mapped from [-1, 1] to [0, 1].

    Parameters
    ----------
    steps : int
        Number of nodes.
    device : torch.device
        Where the tensors live.
    dtype : torch.dtype
        Their dtype.

    Returns
    -------
    alphas, weights : torch.Tensor
        Shapes ``[steps]``; the weights sum to 1.
    """
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas = torch.as_tensor(0.5 * (nodes + 1.0), dtype=dtype, device=device)
    return alphas, torch.as_tensor(0.5 * weights, dtype=dtype, device=device)


def _one_hot_rows(classes: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    # classes [T, N] -> grad_outputs [T, repeats * N, C], the same one-hot for every step.
    one_hot = F.one_hot(classes, NUM_CLASSES).to(torch.get_default_dtype())
    return one_hot.repeat(1, repeats, 1)


def _path_points(x: torch.Tensor, alphas: torch.Tensor, baseline: float) -> torch.Tensor:
    # [S, N, ...] flattened to [S * N, ...], step-major like Captum's expansion.
    shape = (-1,) + (1,) * x.dim()
    return (baseline + alphas.view(shape) * (x - baseline)).flatten(0, 1)


def integrated_gradients_batched(
    model: nn.Module, x: torch.Tensor, classes: torch.Tensor, steps: int, baseline: float = 0.0
) -> torch.Tensor:
    """Integrated gradients of several targets per sample: one forward, one backward.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier.
    x : torch.Tensor
        Inputs ``[N, ...]``.
    classes : torch.Tensor
        Target classes ``[T, N]``.
    steps : int
        Gauss-Legendre nodes.
    baseline : float
        Constant baseline.

    Returns
    -------
    torch.Tensor
        ``[N, T, ...]``.
    """
    alphas, weights = gauss_legendre(steps, x.device, x.dtype)
    points = _path_points(x, alphas, baseline).requires_grad_(True)
    out = model(points)
    (grads,) = torch.autograd.grad(
        out, points, grad_outputs=_one_hot_rows(classes, steps), is_grads_batched=True
    )
    grads = grads.unflatten(1, (steps, x.shape[0]))  # [T, S, N, ...]
    summed = torch.einsum("s,tsn...->tn...", weights, grads)
    return (summed * (x - baseline)).transpose(0, 1)


def integrated_gradients_chunked(
    model: nn.Module,
    x: torch.Tensor,
    classes: torch.Tensor,
    steps: int,
    chunk_rows: int,
    baseline: float = 0.0,
) -> torch.Tensor:
    """Integrated gradients of one target per sample, ``chunk_rows`` path points a pass.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier.
    x : torch.Tensor
        Inputs ``[N, ...]``.
    classes : torch.Tensor
        Target class per sample ``[N]``.
    steps : int
        Gauss-Legendre nodes.
    chunk_rows : int
        Rows per forward/backward pass (whole steps of all samples; at least one step).
    baseline : float
        Constant baseline.

    Returns
    -------
    torch.Tensor
        ``[N, ...]``.
    """
    alphas, weights = gauss_legendre(steps, x.device, x.dtype)
    per_pass = max(1, chunk_rows // x.shape[0])
    total = torch.zeros_like(x)
    for start in range(0, steps, per_pass):
        a, w = alphas[start : start + per_pass], weights[start : start + per_pass]
        points = _path_points(x, a, baseline).requires_grad_(True)
        out = model(points)
        picked = out.gather(1, classes.repeat(len(a)).unsqueeze(1)).sum()
        (grads,) = torch.autograd.grad(picked, points)
        total += torch.einsum("s,sn...->n...", w, grads.unflatten(0, (len(a), x.shape[0])))
    return total * (x - baseline)


def gradients_all_classes(
    model: nn.Module, layer: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward and one class-batched backward to the inputs and a layer's output.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier.
    layer : torch.nn.Module
        The submodule whose output is captured.
    x : torch.Tensor
        Inputs ``[N, ...]``.

    Returns
    -------
    logits, input_grads, activation, layer_grads : torch.Tensor
        ``[N, C]``, ``[C, N, ...]``, ``[N, K, h, w]``, ``[C, N, K, h, w]``.
    """
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        xg = x.detach().requires_grad_(True)
        logits = model(xg)
    finally:
        handle.remove()
    (activation,) = captured
    classes = torch.arange(NUM_CLASSES, device=x.device).unsqueeze(1).expand(-1, x.shape[0])
    input_grads, layer_grads = torch.autograd.grad(
        logits, (xg, activation), grad_outputs=_one_hot_rows(classes), is_grads_batched=True
    )
    return logits, input_grads, activation, layer_grads


def run(model: nn.Module, x: torch.Tensor, workload: Workload) -> Results:
    """All of a workload's results with the minimum passes.

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
        ``saliency``, ``input_x_gradient`` ``[N, C, 3, 32, 32]``; ``grad_cam``
        ``[N, C, 32, 32]``; ``integrated_gradients`` ``[N, T, 3, 32, 32]`` for top-2 or
        ``[N, 3, 32, 32]`` for ``pred``.
    """
    results: Results = {}
    if workload.single:
        return _single(model, x, workload.single)
    if workload.mixed:
        logits, gx, act, ga = gradients_all_classes(model, model.get_submodule("block3"), x)
        results["saliency"] = gx.abs().transpose(0, 1)
        results["input_x_gradient"] = (gx * x).transpose(0, 1)
        cam = F.relu((ga.mean(dim=(-2, -1), keepdim=True) * act).sum(dim=2))  # [C, N, h, w]
        cam = F.interpolate(
            cam.flatten(0, 1).unsqueeze(1), x.shape[-2:], mode="bilinear", align_corners=False
        )
        results["grad_cam"] = cam.view(NUM_CLASSES, x.shape[0], *x.shape[-2:]).transpose(0, 1)
    else:
        with torch.no_grad():
            logits = model(x)
    if workload.ig_target == "top2":
        top2 = logits.detach().topk(2, dim=1).indices.T  # [2, N]
        results["integrated_gradients"] = integrated_gradients_batched(
            model, x, top2, workload.ig_steps
        )
    else:
        pred = logits.detach().argmax(dim=1)
        if workload.chunk_rows is None:
            ig = integrated_gradients_batched(model, x, pred.unsqueeze(0), workload.ig_steps)
            results["integrated_gradients"] = ig[:, 0]
        else:
            results["integrated_gradients"] = integrated_gradients_chunked(
                model, x, pred, workload.ig_steps, workload.chunk_rows
            )
    return results


def _single(model: nn.Module, x: torch.Tensor, method: str) -> Results:
    # One forward (capturing block3 for GradCAM) and one backward of the predicted class.
    captured: list[torch.Tensor] = []
    layer = model.get_submodule("block3")
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        xg = x.detach().requires_grad_(method == "saliency")
        logits = model(xg)
    finally:
        handle.remove()
    score = logits.gather(1, logits.detach().argmax(dim=1, keepdim=True)).sum()
    if method == "saliency":
        (grads,) = torch.autograd.grad(score, xg)
        return {"saliency": grads.abs()}
    (act,) = captured
    (grads,) = torch.autograd.grad(score, act)
    cam = F.relu((grads.mean(dim=(-2, -1), keepdim=True) * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, x.shape[-2:], mode="bilinear", align_corners=False)
    return {"grad_cam": cam[:, 0]}
