"""The CAM family from a layer's activations and gradients, as pytorch-grad-cam defines them.

Activations ``A`` are ``[N, K, *grid]`` (``K`` channels over a spatial grid; see
:func:`~algebra.kernels.grids.to_grid` for transformer layers) and gradients ``g`` of the
targets' scores with respect to them ``[T, N, K, *grid]``, from one batched backward over
all targets (and all layers). Sums ``sum_ij`` run over the grid. Each function returns the
raw maps ``[T, N, *grid]``; :func:`finish` applies the ReLU and upsampling.
"""

from __future__ import annotations

import torch

from .grids import Grid, to_grid
from .postprocess import upsample

CAM_METHODS = ("grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "hires_cam")


def _grid_dims(acts: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, acts.ndim))


def _check(grads: torch.Tensor, acts: torch.Tensor, method: str) -> None:
    if acts.ndim < 3:
        raise ValueError(
            f"{method}: activations of shape {list(acts.shape)} have no spatial grid; "
            "expected [N, K, h, w] (or [N, K, L])"
        )
    if tuple(grads.shape[1:]) != tuple(acts.shape):
        raise ValueError(
            f"{method}: gradients {list(grads.shape)} do not match activations "
            f"{list(acts.shape)}; expected [T, {', '.join(map(str, acts.shape))}]"
        )


def weighted_sum(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k A_k``: channel weights ``[T, N, K]`` times activations -> maps ``[T, N, *grid]``.

    Examples
    --------
    >>> weighted_sum(torch.tensor([[[1.0, -1.0]]]), torch.ones(1, 2, 2, 2))
    tensor([[[[0., 0.],
              [0., 0.]]]])
    """
    w = weights.reshape(*weights.shape, *([1] * (acts.ndim - 2)))
    return (w * acts).sum(2)


def grad_cam_weights(grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """GradCAM: ``w_k = mean_ij g_kij`` ``[T, N, K]``.

    Examples
    --------
    >>> grad_cam_weights(torch.arange(4.0).reshape(1, 1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    tensor([[[1.5000]]])
    """
    _check(grads, acts, "grad_cam")
    return grads.mean(tuple(d + 1 for d in _grid_dims(acts)))


def grad_cam_pp_weights(grads: torch.Tensor, acts: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """GradCAM++: ``w_k = sum_ij relu(g_kij) a_kij`` with the closed-form coefficients

    ``a_kij = g_kij^2 / (2 g_kij^2 + (sum_ab A_kab) g_kij^3 + eps)`` (0 where ``g_kij = 0``),
    equation 19 of Chattopadhyay et al. for an exponential of the score, as
    pytorch-grad-cam computes it (``eps = 1e-6``).

    Examples
    --------
    >>> g = torch.tensor([[[[1.0, -1.0]]]])[..., None]       # T=1, N=1, K=1, 2 x 1 grid
    >>> a = torch.tensor([[[1.0, 0.0]]])[..., None]          # sum of A = 1
    >>> grad_cam_pp_weights(g, a)                            # 1 / (2 + 1) for the positive g
    tensor([[[0.3333]]])
    """
    _check(grads, acts, "grad_cam_pp")
    dims = tuple(d + 1 for d in _grid_dims(acts))
    g2 = grads.square()
    g3 = g2 * grads
    total = acts.sum(_grid_dims(acts), keepdim=True)
    alpha = torch.where(grads != 0, g2 / (2 * g2 + total * g3 + eps), torch.zeros_like(g2))
    return (grads.clamp(min=0) * alpha).sum(dims)


def xgrad_cam_weights(grads: torch.Tensor, acts: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """XGradCAM: ``w_k = sum_ij g_kij A_kij / (sum_ij A_kij + eps)`` (``eps = 1e-7``).

    Examples
    --------
    >>> xgrad_cam_weights(torch.ones(1, 1, 1, 2), torch.tensor([[[1.0, 3.0]]]))
    tensor([[[1.]]])
    """
    _check(grads, acts, "xgrad_cam")
    total = acts.sum(_grid_dims(acts), keepdim=True)
    return (grads * acts / (total + eps)).sum(tuple(d + 1 for d in _grid_dims(acts)))


def cam_maps(method: str, grads: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """Raw maps ``[T, N, *grid]`` of a gradient CAM (before ReLU and upsampling).

    - ``grad_cam``: ``sum_k (mean_ij g_kij) A_k``
    - ``grad_cam_pp``: ``sum_k w_k A_k``, ``w`` from :func:`grad_cam_pp_weights`
    - ``xgrad_cam``: ``sum_k w_k A_k``, ``w`` from :func:`xgrad_cam_weights`
    - ``layer_cam``: ``sum_k relu(g_k) * A_k`` (elementwise)
    - ``hires_cam``: ``sum_k g_k * A_k`` (elementwise)

    Examples
    --------
    >>> g = torch.tensor([[[[-1.0, 2.0]]]])      # T=1, N=1, K=1, L=2
    >>> a = torch.tensor([[[3.0, 1.0]]])
    >>> cam_maps("hires_cam", g, a), cam_maps("layer_cam", g, a), cam_maps("grad_cam", g, a)
    (tensor([[[-3.,  2.]]]), tensor([[[0., 2.]]]), tensor([[[1.5000, 0.5000]]]))
    """
    if method == "grad_cam":
        return weighted_sum(grad_cam_weights(grads, acts), acts)
    if method == "grad_cam_pp":
        return weighted_sum(grad_cam_pp_weights(grads, acts), acts)
    if method == "xgrad_cam":
        return weighted_sum(xgrad_cam_weights(grads, acts), acts)
    if method == "layer_cam":
        _check(grads, acts, method)
        return (grads.clamp(min=0) * acts).sum(2)
    if method == "hires_cam":
        _check(grads, acts, method)
        return (grads * acts).sum(2)
    raise ValueError(f"method: expected one of {CAM_METHODS}; got {method!r}")


def eigen_cam(acts: torch.Tensor, sign: str = "svd") -> torch.Tensor:
    """EigenCAM: the activations' projection on their first principal component, ``[N, *grid]``.

    Per sample, ``M`` is ``[positions, K]`` with each channel centred over positions; the map
    is ``M v`` with ``v`` the first right singular vector of ``M``. The sign of ``v`` is
    whatever the SVD returns (``sign="svd"``, pytorch-grad-cam's convention: LAPACK on the
    CPU), or ``"positive"``: flipped so the map correlates positively with ``sum_k A_k``,
    the same on every device.

    Examples
    --------
    >>> a = torch.tensor([[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]])    # N=1, K=2, L=3
    >>> eigen_cam(a, sign="positive")
    tensor([[-2.2361,  0.0000,  2.2361]])
    """
    if acts.ndim < 3:
        raise ValueError(
            f"eigen_cam: activations of shape {list(acts.shape)} have no spatial grid; "
            "expected [N, K, h, w] (or [N, K, L])"
        )
    if sign not in ("svd", "positive"):
        raise ValueError(f"sign: expected 'svd' or 'positive'; got {sign!r}")
    n, k = acts.shape[:2]
    m = acts.reshape(n, k, -1).transpose(1, 2)  # [N, P, K]
    m = m - m.mean(1, keepdim=True)
    _, _, vh = torch.linalg.svd(m, full_matrices=False)
    proj = m @ vh[:, 0, :, None]  # [N, P, 1]
    proj = proj[..., 0]
    if sign == "positive":
        total = acts.reshape(n, k, -1).sum(1)
        flip = ((proj * (total - total.mean(1, keepdim=True))).sum(1) < 0).to(proj.dtype)
        proj = proj * (1 - 2 * flip)[:, None]
    return proj.reshape(n, *acts.shape[2:])


def finish(
    cam: torch.Tensor,
    relu: bool = True,
    size: tuple[int, ...] | None = None,
    mode: str = "bilinear",
) -> torch.Tensor:
    """ReLU (``relu``), then interpolation of maps ``[T, N, *grid]`` to ``size`` (``mode``).

    Examples
    --------
    >>> finish(torch.tensor([[[[-1.0, 2.0]]]]), size=(1, 4))
    tensor([[[[0.0000, 0.5000, 1.5000, 2.0000]]]])
    """
    if relu:
        cam = cam.clamp(min=0)
    return cam if size is None else upsample(cam, size, mode)


def grid_grads(grads: torch.Tensor, grid: Grid, layer: str = "layer") -> torch.Tensor:
    """Gradients ``[T, N, ...]`` through the same grid as their activations (:func:`to_grid`).

    Examples
    --------
    >>> grid_grads(torch.ones(3, 2, 5, 8), (2, 2)).shape
    torch.Size([3, 2, 8, 2, 2])
    """
    t, n = grads.shape[:2]
    flat = to_grid(grads.reshape(t * n, *grads.shape[2:]), grid, layer)
    return flat.reshape(t, n, *flat.shape[1:])


def guided_grad_cam(guided: torch.Tensor, cam: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Guided GradCAM: guided backprop ``[T, N, C, H, W]`` times ``relu(GradCAM)`` resized to ``H, W``.

    ``cam`` are raw GradCAM maps ``[T, N, h, w]``; they are rectified and interpolated with
    ``mode`` (Captum's GuidedGradCam: ``"nearest"``), then broadcast over the channels.

    Examples
    --------
    >>> guided = torch.ones(1, 1, 2, 2, 2)
    >>> guided_grad_cam(guided, torch.tensor([[[[-1.0]]]]) + 3)[0, 0, 0]
    tensor([[2., 2.],
            [2., 2.]])
    """
    size = tuple(guided.shape[3:])
    return guided * finish(cam, relu=True, size=size, mode=mode)[:, :, None]
