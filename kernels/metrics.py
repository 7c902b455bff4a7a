"""Evaluation metrics of attribution maps, evaluated through the perturbation stream.

Deletion and insertion curves and faithfulness correlation are coalition designs, so the
maps of several methods (and their shared copies: the input, the baseline) go through one
stream. Infidelity evaluates explicit noisy copies in the same stream. Sensitivity-max is
the kernel part only: the caller re-attributes the perturbed inputs.
"""

from __future__ import annotations

import torch

from .coalitions import Design, generator, to_device
from .perturb import StreamResult, evaluate
from .players import Players, player_sums


def curve_design(maps: torch.Tensor, steps: int = 20, mode: str = "deletion") -> Design:
    """Deletion (or insertion) copies of one attribution map per sample, ``[N, ...]``.

    Features are ranked per sample by decreasing attribution (ties by position); step ``s``
    of ``steps`` removes (deletion) or keeps only (insertion) the top ``floor(s * D /
    steps)`` of the ``D`` features of the map. A map coarser than the inputs (e.g. one
    value per pixel, ``[N, 1, H, W]``) ranks its cells, each spanning the dims it lacks.

    Examples
    --------
    >>> d = curve_design(torch.tensor([[0.1, 0.9, 0.5, 0.2]]), steps=2)
    >>> d.players.ids, d.keep.int().tolist()
    (tensor([[1, 0, 0, 1]]), [[1, 1], [0, 1], [0, 0]])
    >>> curve_design(torch.tensor([[0.1, 0.9, 0.5, 0.2]]), 2, "insertion").keep.int().tolist()
    [[0, 0], [1, 0], [1, 1]]
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive integer, got {steps!r}")
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode: expected 'deletion' or 'insertion', got {mode!r}")
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    size = flat.shape[1]
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(size, device=maps.device).expand(n, size))
    # Player j holds the ranks removed at step j + 1: [floor(j D / steps), floor((j+1) D / steps)).
    edges = torch.arange(1, steps + 1, device=maps.device) * size // steps
    ids = torch.searchsorted(edges, rank, right=True).reshape(maps.shape)
    s = torch.arange(steps + 1, device=maps.device)[:, None]
    j = torch.arange(steps, device=maps.device)[None, :]
    keep = j >= s if mode == "deletion" else j < s
    return Design(mode, Players(ids, steps), keep)


def curve_designs(maps: torch.Tensor, steps: int = 20, mode: str = "deletion") -> list[Design]:
    """One :func:`curve_design` per target row of attribution maps ``[T, N, ...]``.

    Examples
    --------
    >>> len(curve_designs(torch.rand(3, 2, 1, 4, 4), steps=5))
    3
    """
    return [curve_design(m, steps, mode) for m in maps]


def curves(logits: torch.Tensor, index: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Curves ``[T, N, steps + 1]``: the target score of each step of each map's design.

    ``index[t]`` maps the steps of map ``t``'s design to the stream's copies; ``targets``
    ``[T, N]`` holds the class each map explains.

    Examples
    --------
    >>> logits = torch.arange(8.0).reshape(2, 2, 2)  # [N, U, C]
    >>> curves(logits, [torch.tensor([0, 1])], torch.tensor([[1, 0]]))
    tensor([[[1., 3.],
             [4., 6.]]])
    """
    out = []
    for t, idx in enumerate(index):
        picked = logits[:, idx.to(logits.device), :]  # [N, steps + 1, C]
        classes = targets[t].to(logits.device)[:, None, None].expand(-1, picked.shape[1], 1)
        out.append(picked.gather(2, classes).squeeze(2))
    return torch.stack(out)


def area(curves: torch.Tensor) -> torch.Tensor:
    """Area under curves ``[..., steps + 1]`` over fractions 0 .. 1 (trapezoid rule).

    Examples
    --------
    >>> area(torch.tensor([[1.0, 0.5, 0.0]]))
    tensor([0.5000])
    """
    return torch.trapezoid(curves, dx=1.0 / (curves.shape[-1] - 1), dim=-1)


def deletion(
    module: torch.nn.Module,
    x: torch.Tensor,
    maps: list[torch.Tensor],
    targets: torch.Tensor,
    steps: int = 20,
    mode: str = "deletion",
    baseline: float | torch.Tensor = 0.0,
    budget: int | None = None,
) -> tuple[list[torch.Tensor], StreamResult]:
    """Deletion (or insertion) curves ``[T, N, steps + 1]`` of several maps, one stream.

    ``maps`` holds attribution maps ``[T, N, ...]`` of the inputs ``x`` for the classes
    ``targets`` ``[T, N]``; all their copies go through one deduplicated stream.

    Examples
    --------
    >>> net = torch.nn.Linear(4, 2).eval()
    >>> x = torch.rand(3, 4)
    >>> (c,), out = deletion(net, x, [torch.rand(1, 3, 4)], torch.zeros(1, 3, dtype=torch.long), steps=4)
    >>> c.shape, out.unique
    (torch.Size([1, 3, 5]), 5)
    """
    designs = [curve_designs(m.to(x.device), steps, mode) for m in maps]
    flat = [d for group in designs for d in group]
    out = evaluate(module, x, flat, baseline, budget)
    results, at = [], 0
    for group in designs:
        results.append(curves(out.logits, out.index[at : at + len(group)], targets))
        at += len(group)
    return results, out


def faithfulness_design(
    players: Players, samples: int = 50, subset: int = 1, seed: int | None = None
) -> Design:
    """The full coalition, then ``samples`` coalitions each missing ``subset`` random players.

    Examples
    --------
    >>> d = faithfulness_design(Players(torch.arange(5)[None], 5), samples=3, subset=2, seed=0)
    >>> d.keep.shape, (~d.keep[1:]).sum(1).tolist()
    (torch.Size([4, 5]), [2, 2, 2])
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: expected a positive integer, got {samples!r}")
    p = players.count
    if isinstance(subset, bool) or not isinstance(subset, int) or not 1 <= subset <= p:
        raise ValueError(f"subset: expected an integer in 1..{p} (the players), got {subset!r}")
    ranks = torch.rand(samples, p, generator=generator(seed)).argsort(1).argsort(1)
    keep = torch.cat([torch.ones(1, p, dtype=torch.bool), ranks >= subset])
    return to_device(Design("faithfulness", players, keep), players.ids.device)


def faithfulness_correlation(
    scores: torch.Tensor, design: Design, attributions: torch.Tensor
) -> torch.Tensor:
    """Pearson correlation ``[T, N]`` between a subset's attribution sum and its score drop.

    ``scores`` ``[T, N, K]`` come from :func:`faithfulness_design`'s copies, and
    ``attributions`` ``[T, N, ...]`` at input resolution. A sample whose sums or drops do
    not vary gets 0.

    Examples
    --------
    >>> d = faithfulness_design(Players(torch.arange(3)[None], 3), samples=6, seed=0)
    >>> attr = torch.tensor([[[1.0, 2.0, 3.0]]])
    >>> s = d.keep.float() @ attr[0, 0]  # an additive model: drops equal the sums
    >>> faithfulness_correlation(s[None, None], d, attr)
    tensor([[1.]])
    """
    sums = player_sums(attributions, design.players).double()  # [T, N, P]
    removed = (~design.keep[1:]).to(device=sums.device, dtype=torch.float64)
    a = sums @ removed.T
    drops = (scores[..., :1] - scores[..., 1:]).double()
    a = a - a.mean(-1, keepdim=True)
    drops = drops - drops.mean(-1, keepdim=True)
    spread = (a.square().sum(-1) * drops.square().sum(-1)).sqrt()
    corr = (a * drops).sum(-1) / spread.clamp(min=torch.finfo(torch.float64).tiny)
    return torch.where(spread > 0, corr, torch.zeros_like(corr)).to(scores.dtype)


def gaussian_noise(
    x: torch.Tensor, samples: int = 10, stdev: float = 0.1, seed: int | None = None
) -> torch.Tensor:
    """Perturbations ``[samples, N, ...]`` drawn from N(0, stdev**2), seeded on the CPU.

    Examples
    --------
    >>> gaussian_noise(torch.zeros(2, 3), samples=4, seed=0).shape
    torch.Size([4, 2, 3])
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: expected a positive integer, got {samples!r}")
    noise = torch.randn(samples, *x.shape, generator=generator(seed), dtype=torch.float64)
    return (noise * stdev).to(device=x.device, dtype=x.dtype)


def uniform_noise(
    x: torch.Tensor, samples: int = 10, radius: float = 0.02, seed: int | None = None
) -> torch.Tensor:
    """Perturbations ``[samples, N, ...]`` uniform in the L-inf ball of ``radius`` (seeded).

    Examples
    --------
    >>> float(uniform_noise(torch.zeros(2, 3), samples=50, radius=0.1, seed=0).abs().max()) <= 0.1
    True
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples: expected a positive integer, got {samples!r}")
    draw = torch.rand(samples, *x.shape, generator=generator(seed), dtype=torch.float64)
    return ((2 * draw - 1) * radius).to(device=x.device, dtype=x.dtype)


def infidelity(
    module: torch.nn.Module,
    x: torch.Tensor,
    attributions: torch.Tensor,
    targets: torch.Tensor,
    perturbations: torch.Tensor,
    normalize: bool = False,
    budget: int | None = None,
) -> torch.Tensor:
    """Infidelity ``[T, N]`` as Captum's: mean over draws of ``(attr . I - (f(x) - f(x - I)))**2``.

    ``perturbations`` ``I`` are ``[S, N, ...]``; ``attributions`` ``[T, N, ...]`` explain
    the classes ``targets`` ``[T, N]``. With ``normalize``, attributions are first scaled by
    the least-squares factor ``beta = sum(a d) / sum(a**2)`` per sample (as Captum).

    Examples
    --------
    >>> net = torch.nn.Linear(3, 1, bias=False).eval()
    >>> x = torch.rand(2, 3)
    >>> attr = net.weight.detach().expand(1, 2, 3)  # the gradient: exact for a linear model
    >>> noise = gaussian_noise(x, samples=4, seed=0)
    >>> bool(infidelity(net, x, attr, torch.zeros(1, 2, dtype=torch.long), noise).max() < 1e-10)
    True
    """
    noise = perturbations.to(x.device)
    out = evaluate(module, x, [], 0.0, budget, noise=[torch.cat([noise[:1] * 0, noise])])
    full = _target_scores(out.logits[:, :1], targets)[..., 0]  # x itself: zero noise
    noisy = _target_scores(out.logits[:, 1:], targets)
    return infidelity_values(full, noisy, attributions.to(x.device), perturbations, normalize)


def infidelity_values(
    full: torch.Tensor,
    noisy: torch.Tensor,
    attributions: torch.Tensor,
    perturbations: torch.Tensor,
    normalize: bool = False,
) -> torch.Tensor:
    """Infidelity ``[T, N]`` from the target scores at the inputs ``full`` ``[T, N]`` and at
    the noisy copies ``x - I`` ``noisy`` ``[T, N, S]``.

    Examples
    --------
    >>> attr = torch.tensor([[[1.0, 2.0]]])  # [T, N, features]
    >>> noise = torch.tensor([[[0.5, 0.5]], [[1.0, 0.0]]])  # [S, N, features]
    >>> noisy = torch.tensor([[[3.5, 4.0]]])  # f(x - I) of an additive f: drops 1.5, 1.0
    >>> infidelity_values(torch.tensor([[5.0]]), noisy, attr, noise)
    tensor([[0.]])
    """
    samples = perturbations.shape[0]
    drops = (full[..., None] - noisy).double()
    attr = attributions.double()
    noise = perturbations.to(attr.device).double()
    dots = (noise[:, None] * attr[None]).flatten(3).sum(3).permute(1, 2, 0)
    if normalize:
        aa, ad, dd = dots.square().sum(-1), (dots * drops).sum(-1), drops.square().sum(-1)
        beta = ad / torch.where(aa == 0, torch.ones_like(aa), aa)
        value = beta * beta * aa - 2 * beta * ad + dd
    else:
        value = (dots - drops).square().sum(-1)
    return (value / samples).to(full.dtype)


def _target_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # [N, K, C] logits -> [T, N, K] scores of each sample's target classes
    classes = targets.to(logits.device).T[:, None, :].expand(-1, logits.shape[1], -1)
    return logits.gather(2, classes).permute(2, 0, 1)


def sensitivity_max(attributions: torch.Tensor, reattributions: torch.Tensor) -> torch.Tensor:
    """Captum's sensitivity-max ``[T, N]``: max over draws of ``|a(x + d) - a(x)| / |a(x)|``.

    ``attributions`` ``[T, N, ...]`` at the inputs, ``reattributions`` ``[S, T, N, ...]``
    at the perturbed inputs (e.g. :func:`uniform_noise` added); norms are Frobenius over
    each map, and a zero map divides by 1.

    Examples
    --------
    >>> a = torch.tensor([[[3.0, 4.0]]])
    >>> sensitivity_max(a, torch.stack([a, a + torch.tensor([0.0, 1.0])]))
    tensor([[0.2000]])
    """
    base = attributions.flatten(2).norm(dim=2)
    base = torch.where(base == 0, torch.ones_like(base), base)
    change = (reattributions - attributions[None]).flatten(3).norm(dim=3)
    return (change / base[None]).max(dim=0).values
