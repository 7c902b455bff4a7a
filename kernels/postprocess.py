"""Turning layer gradients into maps: GradCAM."""

from __future__ import annotations

import torch

from .plan import Window
from .windows import inside


def grad_cam(
    grads: torch.Tensor,
    acts: torch.Tensor,
    layer: str,
    relu: bool,
    size: tuple[int, ...] | None,
    window: Window | None = None,
) -> torch.Tensor:
    """GradCAM maps ``[T, N, *spatial]`` from layer gradients ``[T, N, C, ...]`` and activations.

    Channel weights are the spatial mean of the gradient; the map is the weighted sum of
    the activation's channels (Captum's LayerGradCam), then ``relu``, then zero outside
    ``window`` (on the layer's grid), then bilinear upsampling to ``size`` when given.

    Examples
    --------
    >>> g = torch.ones(1, 1, 2, 2, 2)
    >>> a = torch.arange(8.0).reshape(1, 2, 2, 2)
    >>> grad_cam(g, a, "conv", relu=False, size=None)
    tensor([[[[ 4.,  6.],
              [ 8., 10.]]]])
    """
    if acts.ndim < 3:
        raise ValueError(
            f"grad_cam: layer {layer!r} outputs shape {list(acts.shape)}; GradCAM needs a "
            "layer with channels and a spatial grid, [N, C, H, W] (or [N, C, L])"
        )
    weights = grads.mean(dim=tuple(range(3, grads.ndim)))  # [T, N, C]
    # sum_c weights[t, n, c] * acts[n, c, ...] as one batched product over samples: no
    # [T, N, C, ...] temporary (T copies of the activations) as a broadcast product makes.
    grid = acts.shape[2:]
    cam = torch.bmm(weights.transpose(0, 1), acts.flatten(2)).transpose(0, 1)
    cam = cam.reshape(*weights.shape[:2], *grid)
    if relu:
        cam = torch.relu(cam)
    cam = inside(cam, window, f"layer {layer!r}")
    if size is None:
        return cam
    if cam.ndim != 4 or len(size) != 2:
        raise ValueError(
            f"grad_cam: upsample=True needs a 2-D layer grid and image inputs [N, C, H, W]; "
            f"layer {layer!r} gives maps of shape {list(cam.shape[2:])}; pass upsample=False"
        )
    return upsample(cam, size)


def upsample(cam: torch.Tensor, size: tuple[int, ...], mode: str = "bilinear") -> torch.Tensor:
    """Interpolate maps ``[T, N, *grid]`` to ``[T, N, *size]`` (``align_corners=False``).

    Examples
    --------
    >>> upsample(torch.tensor([[[[0.0, 1.0]]]]), (1, 4))
    tensor([[[[0.0000, 0.2500, 0.7500, 1.0000]]]])
    """
    t, n = cam.shape[:2]
    align = False if mode in ("linear", "bilinear", "bicubic", "trilinear") else None
    up = torch.nn.functional.interpolate(
        cam.reshape(t * n, 1, *cam.shape[2:]), size=size, mode=mode, align_corners=align
    )
    return up.reshape(t, n, *size)
