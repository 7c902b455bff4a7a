"""GradientSHAP and expected gradients: the random points, and the attribution from their gradients.

For ``S`` draws per sample, draw ``s`` of sample ``n`` takes a baseline ``b[index[s, n]]``
from the set of baselines and a point ``alpha[s, n]`` in ``[0, 1]`` on the line from it to
the (noisy) input ``x_sn``; the attribution is the mean over draws of
``grad f(b + alpha (x_sn - b)) * (x_sn - b)`` (Captum's GradientShap, a NoiseTunnel over
InputBaselineXGradient). Expected gradients is the same with a data set as the baselines
and no noise. The points are one point set ``[S, N, ...]``: one forward, one batched
backward. Draws are made on the CPU from a seeded generator, then moved to the device.
"""

from __future__ import annotations

import torch

from .noise import check_samples, cpu_generator


def check_baselines(baselines: object, x: torch.Tensor) -> torch.Tensor:
    """``baselines`` as a ``[B, ...]`` tensor of the inputs' per-sample shape, on their device.

    Examples
    --------
    >>> check_baselines(torch.zeros(3, 2), torch.ones(5, 2)).shape
    torch.Size([3, 2])
    >>> check_baselines(torch.zeros(3, 4), torch.ones(5, 2))
    Traceback (most recent call last):
    ValueError: baselines: expected a tensor of shape [B, 2] (B reference inputs like the inputs' samples); got [3, 4]
    """
    per_sample = ", ".join(str(d) for d in x.shape[1:])
    ok = (
        isinstance(baselines, torch.Tensor)
        and baselines.ndim == x.ndim
        and tuple(baselines.shape[1:]) == tuple(x.shape[1:])
        and baselines.shape[0] >= 1
    )
    if not ok:
        got = (
            list(baselines.shape)
            if isinstance(baselines, torch.Tensor)
            else type(baselines).__name__
        )
        raise ValueError(
            f"baselines: expected a tensor of shape [B, {per_sample}] (B reference inputs "
            f"like the inputs' samples); got {got}"
        )
    return baselines.to(device=x.device, dtype=x.dtype)  # type: ignore[union-attr]


def shap_draws(
    samples: int,
    n: int,
    baselines: int,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random baseline indices ``[S, N]`` (uniform over ``baselines``) and alphas ``[S, N]``.

    Alphas are uniform in ``[0, 1)``. Both are drawn on the CPU from a generator seeded
    with ``seed`` (torch's global RNG without one), then moved to ``device``.

    Examples
    --------
    >>> index, alpha = shap_draws(4, 2, baselines=3, seed=0)
    >>> index.shape, alpha.shape, int(index.max()) < 3, bool((alpha >= 0).all() & (alpha < 1).all())
    (torch.Size([4, 2]), torch.Size([4, 2]), True, True)
    >>> torch.equal(index, shap_draws(4, 2, 3, seed=0)[0])
    True
    """
    samples = check_samples(samples)
    gen = cpu_generator(seed)
    index = torch.randint(baselines, (samples, n), generator=gen)
    draw_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    alpha = torch.rand((samples, n), generator=gen, dtype=draw_dtype)
    return index.to(device), alpha.to(device=device, dtype=dtype)


def shap_points(
    ends: torch.Tensor, baselines: torch.Tensor, index: torch.Tensor, alpha: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The points ``b + alpha (x - b)`` ``[S, N, ...]`` and their starts ``b = baselines[index]``.

    ``ends`` are the inputs (``[N, ...]``) or their noisy copies (``[S, N, ...]``).

    Examples
    --------
    >>> x = torch.tensor([[4.0], [8.0]])
    >>> base = torch.tensor([[0.0], [2.0]])
    >>> points, starts = shap_points(x, base, torch.tensor([[0, 1]]), torch.tensor([[0.5, 0.5]]))
    >>> points.flatten().tolist(), starts.flatten().tolist()
    ([2.0, 5.0], [0.0, 2.0])
    """
    starts = baselines[index]
    a = alpha.to(starts.dtype).reshape(*alpha.shape, *([1] * (starts.ndim - 2)))
    return starts + a * (ends - starts), starts


def shap_attribution(
    grads: torch.Tensor,
    ends: torch.Tensor,
    starts: torch.Tensor,
    multiply_by_inputs: bool = True,
    per_draw: bool = False,
) -> torch.Tensor:
    """Mean over draws of ``grads * (ends - starts)``: ``[T, S, N, ...] -> [T, N, ...]``.

    ``grads`` may also come flat, ``[T, S * N, ...]`` (noise-major rows). ``ends`` and
    ``starts`` are the inputs (or noisy inputs) and the drawn baselines, or a layer's
    activations at them (Captum's LayerGradientShap). Without ``multiply_by_inputs`` the
    gradients alone are averaged (local attribution). ``per_draw`` keeps the draws.

    Examples
    --------
    >>> g = torch.ones(1, 2, 1, 1)
    >>> shap_attribution(g, torch.tensor([[3.0]]), torch.tensor([[[1.0]], [[2.0]]]))
    tensor([[[1.5000]]])
    """
    s = starts.shape[0]
    if grads.ndim == starts.ndim:  # flat rows s * N + n
        grads = grads.reshape(grads.shape[0], s, -1, *grads.shape[2:])
    values = grads * (ends - starts) if multiply_by_inputs else grads
    return values if per_draw else values.mean(1)
