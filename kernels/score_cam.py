"""Score-CAM: channel weights from the model's scores on inputs masked by each channel.

For activations ``A`` ``[N, K, h, w]`` of inputs ``x`` ``[N, C, H, W]`` (pytorch-grad-cam's
ScoreCAM):

1. ``M_k = norm(up(A_k))``: each channel upsampled to ``H x W`` (bilinear,
   ``align_corners=True``) and min-max normalised, ``(U - min U) / (max U - min U + 1e-8)``;
2. the masked inputs ``x * M_k``, ``N * K`` of them (rows ``n * K + k``), are a
   perturbation stream: evaluated in chunks (:func:`masked_inputs`), one forward per chunk
   gives the scores of every target at once;
3. ``w_k = softmax_k(s_k)`` over the scores ``s_k`` of the target's class;
4. the map is ``sum_k w_k A_k``.
"""

from __future__ import annotations

import torch

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def score_cam_masks(acts: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Upsampled, min-max normalised channels ``[N, K, *size]`` of activations ``[N, K, *grid]``.

    Examples
    --------
    >>> score_cam_masks(torch.tensor([[[0.0, 2.0]]]), (3,))
    tensor([[[0.0000, 0.5000, 1.0000]]])
    """
    spatial = acts.ndim - 2
    if spatial not in _INTERPOLATION or len(size) != spatial:
        raise ValueError(
            f"score_cam: activations {list(acts.shape)} and input size {list(size)} do not "
            "match: expected a layer grid [N, K, h, w] (or [N, K, L]) and inputs with as "
            "many spatial dims"
        )
    up = torch.nn.functional.interpolate(
        acts, size=size, mode=_INTERPOLATION[spatial], align_corners=True
    )
    flat = up.reshape(*up.shape[:2], -1)
    low = flat.amin(-1).reshape(*up.shape[:2], *([1] * spatial))
    high = flat.amax(-1).reshape(*up.shape[:2], *([1] * spatial))
    return (up - low) / (high - low + 1e-8)


def masked_inputs(x: torch.Tensor, masks: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The masked inputs ``x[n] * M[n, k]`` for rows ``start:stop`` of ``n * K + k``.

    ``masks`` are ``[N, K, *spatial]`` (:func:`score_cam_masks`), broadcast over the
    inputs' channels. Rows of one call are one batch: cut ``N * K`` rows into chunks that
    fit the memory budget, one forward per chunk.

    Examples
    --------
    >>> x = torch.ones(2, 1, 2)                      # N=2, C=1, L=2
    >>> m = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [1.0, 1.0]]])
    >>> masked_inputs(x, m, 1, 3)[:, 0]
    tensor([[0.0000, 1.0000],
            [0.5000, 0.5000]])
    """
    k = masks.shape[1]
    rows = torch.arange(start, stop, device=x.device)
    n, c = rows // k, rows % k
    return x[n] * masks[n, c][:, None]


def score_cam_weights(scores: torch.Tensor) -> torch.Tensor:
    """``w_k = softmax_k(s_k)``: channel weights ``[T, N, K]`` from the masks' scores.

    Examples
    --------
    >>> score_cam_weights(torch.tensor([[[0.0, 0.0]]]))
    tensor([[[0.5000, 0.5000]]])
    """
    return scores.softmax(-1)
