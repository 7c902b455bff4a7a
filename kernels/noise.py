"""Noisy copies of the inputs (SmoothGrad, NoiseTunnel) and the reductions over them.

The copies are one point set: ``[S, N, ...]`` noise-major, flattened to ``S * N`` rows
(``s * N + n``) for one forward and one batched backward. Draws are made on the CPU with a
seeded :class:`torch.Generator` and then moved to the inputs' device, so a seed gives the
same noise on CPU and CUDA.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

SmoothKind = Literal["smoothgrad", "smoothgrad_sq", "vargrad"]
SMOOTH_KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")


def check_samples(samples: object, argument: str = "samples") -> int:
    """``samples`` as an ``int`` of at least 1, else a ``ValueError`` naming ``argument``.

    Examples
    --------
    >>> check_samples(8)
    8
    >>> check_samples(0)
    Traceback (most recent call last):
    ValueError: samples: expected an integer >= 1; got 0
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"{argument}: expected an integer >= 1; got {samples!r}")
    return samples


def check_stdev(stdev: object, argument: str = "stdev") -> float:
    """``stdev`` as a finite ``float`` of at least 0, else a ``ValueError`` naming ``argument``.

    Examples
    --------
    >>> check_stdev(0.15)
    0.15
    >>> check_stdev(-1)
    Traceback (most recent call last):
    ValueError: stdev: expected a finite number >= 0; got -1
    """
    ok = isinstance(stdev, (int, float)) and not isinstance(stdev, bool)
    if not ok or not math.isfinite(stdev) or stdev < 0:  # type: ignore[arg-type]
        raise ValueError(f"{argument}: expected a finite number >= 0; got {stdev!r}")
    return float(stdev)  # type: ignore[arg-type]


def cpu_generator(seed: int | None) -> torch.Generator | None:
    """A CPU generator seeded with ``seed``; ``None`` (draw from torch's global RNG) without one.

    Examples
    --------
    >>> cpu_generator(None) is None, cpu_generator(3).initial_seed()
    (True, 3)
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an integer or None; got {seed!r}")
    return torch.Generator().manual_seed(seed)


def value_range(x: torch.Tensor) -> torch.Tensor:
    """Each sample's ``max - min`` over its features, shaped to broadcast over ``x``.

    Examples
    --------
    >>> value_range(torch.tensor([[0.0, 2.0], [1.0, 1.5]])).flatten()
    tensor([2.0000, 0.5000])
    """
    flat = x.reshape(x.shape[0], -1)
    spread = flat.amax(1) - flat.amin(1)
    return spread.reshape(-1, *([1] * (x.ndim - 1)))


def draw_noise(
    x: torch.Tensor,
    samples: int,
    stdev: float,
    relative: bool = True,
    seed: int | None = None,
) -> torch.Tensor:
    """Gaussian noise ``[S, N, ...]`` for ``samples`` copies of ``x``, on ``x``'s device.

    The standard deviation is ``stdev`` times each sample's value range (``max - min``, as
    in the SmoothGrad paper) when ``relative``, else ``stdev`` itself. Unit normals are
    drawn on the CPU (from a generator seeded with ``seed``, or torch's global RNG without
    one) in ``x``'s dtype (float32 for half precision), then moved and scaled.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 4.0], [1.0, 1.0]])
    >>> noise = draw_noise(x, 3, 0.5, seed=0)
    >>> noise.shape
    torch.Size([3, 2, 2])
    >>> bool((noise[:, 1] == 0).all())  # a constant sample has no range
    True
    >>> torch.equal(noise, draw_noise(x, 3, 0.5, seed=0))
    True
    """
    samples, stdev = check_samples(samples), check_stdev(stdev)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    unit = torch.randn((samples, *x.shape), generator=cpu_generator(seed), dtype=dtype)
    unit = unit.to(device=x.device, dtype=x.dtype)
    scale = stdev * value_range(x) if relative else torch.tensor(stdev, dtype=x.dtype)
    return unit * scale.to(x.device)


def noisy_copies(
    x: torch.Tensor,
    samples: int = 50,
    stdev: float = 0.15,
    relative: bool = True,
    seed: int | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """``samples`` noisy copies of the inputs: ``x + noise``, shape ``[S, N, ...]``.

    ``noise`` (``[S, N, ...]``, or ``[S, ...]`` shared by all samples) is added as given,
    in place of drawn noise (then ``samples``, ``stdev``, ``relative`` and ``seed`` are
    not used): the way to reproduce another library's draws. Flatten the result with
    ``.flatten(0, 1)`` for one forward over ``S * N`` rows, noise-major.

    Examples
    --------
    >>> x = torch.zeros(2, 3)
    >>> noisy_copies(x, samples=4, stdev=1.0, relative=False, seed=1).shape
    torch.Size([4, 2, 3])
    >>> noisy_copies(x, noise=torch.ones(1, 2, 3))
    tensor([[[1., 1., 1.],
             [1., 1., 1.]]])
    >>> noisy_copies(x, noise=torch.ones(2, 2))
    Traceback (most recent call last):
    ValueError: noise: expected a tensor of shape [S, 2, 3] (or [S, 3]); got [2, 2]
    """
    if noise is None:
        return x[None] + draw_noise(x, samples, stdev, relative, seed)
    if not isinstance(noise, torch.Tensor) or not (
        tuple(noise.shape[1:]) in (tuple(x.shape), tuple(x.shape[1:])) and noise.ndim >= 1
    ):
        got = list(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        shape = ", ".join(str(d) for d in x.shape)
        per_sample = ", ".join(str(d) for d in x.shape[1:])
        raise ValueError(
            f"noise: expected a tensor of shape [S, {shape}] (or [S, {per_sample}]); got {got}"
        )
    check_samples(noise.shape[0], "noise")
    noise = noise.to(device=x.device, dtype=x.dtype)
    if noise.ndim == x.ndim:
        noise = noise[:, None]
    return x[None] + noise


def smooth(
    attributions: torch.Tensor, kind: SmoothKind = "smoothgrad", dim: int = 0
) -> torch.Tensor:
    """Reduce attributions over the noise dim ``dim``: mean, mean of squares, or variance.

    ``smoothgrad`` is the mean, ``smoothgrad_sq`` the mean of the squares and ``vargrad``
    their difference ``E[a^2] - E[a]^2`` (the population variance), as Captum's
    NoiseTunnel defines them.

    Examples
    --------
    >>> a = torch.tensor([[1.0], [3.0]])
    >>> smooth(a), smooth(a, "smoothgrad_sq"), smooth(a, "vargrad")
    (tensor([2.]), tensor([5.]), tensor([1.]))
    """
    if kind not in SMOOTH_KINDS:
        raise ValueError(f"kind: expected one of {SMOOTH_KINDS}; got {kind!r}")
    mean = attributions.mean(dim)
    if kind == "smoothgrad":
        return mean
    mean_sq = attributions.square().mean(dim)
    return mean_sq if kind == "smoothgrad_sq" else mean_sq - mean.square()
