"""Coalition designs: which players keep their input value in each perturbed copy.

A :class:`Design` is plain data: the players, a boolean matrix ``keep`` ``[K, P]`` (True:
the player keeps its input value; False: its features take the fill, the baseline or, for
feature permutation, another sample's values) and what the method's estimator needs. Every
design is built with tensor ops on the CPU from a seeded ``torch.Generator`` and then moved
to ``device``, so a seed gives the same coalitions on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .players import Players

EXACT_LIMIT = 16  # exact Shapley enumerates 2**P coalitions


@dataclass(frozen=True)
class Design:
    """One method's perturbed copies over its players.

    Fields beyond ``keep`` belong to single methods: ``orders`` ``[S, P]`` (Shapley
    sampling: the permutations, whose prefixes are the coalitions), ``weights`` ``[K, P]``
    (exact Shapley: attributions are ``scores @ weights``), ``cover`` ``[K - 1, P]``
    (occlusion: which players each window hides), ``sources`` ``[K, N]`` (feature
    permutation: the sample each copy's hidden features come from), ``kernel_width`` and
    ``distance`` (LIME's similarity kernel).
    """

    method: str
    players: Players
    keep: torch.Tensor
    orders: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    cover: torch.Tensor | None = None
    sources: torch.Tensor | None = None
    kernel_width: float | None = None
    distance: str | None = None


def generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded by ``seed``, or by the global torch RNG when ``None``.

    Examples
    --------
    >>> a = torch.rand(2, generator=generator(3))
    >>> torch.equal(a, torch.rand(2, generator=generator(3)))
    True
    """
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an integer or None, got {seed!r}")
    return torch.Generator(device="cpu").manual_seed(seed)


def shapley_design(
    players: Players,
    samples: int | str = 25,
    seed: int | None = None,
    antithetic: bool = False,
    device: torch.device | str | None = None,
) -> Design:
    """Permutation sampling (``samples`` permutations) or, for ``"exact"``, all coalitions.

    Each permutation gives its ``P + 1`` prefix coalitions, from the empty to the full one;
    with ``antithetic`` each permutation is followed by its reverse.

    Examples
    --------
    >>> d = shapley_design(Players(torch.arange(3)[None], 3), samples=2, seed=0)
    >>> d.keep.shape, d.orders.shape
    (torch.Size([8, 3]), torch.Size([2, 3]))
    >>> d.keep[:4].int()
    tensor([[0, 0, 0],
            [...],
            [...],
            [1, 1, 1]], dtype=torch.int32)
    """
    if samples == "exact":
        return exact_design(players, device)
    count = _positive("samples", samples)
    p = players.count
    orders = torch.rand(count, p, generator=generator(seed)).argsort(dim=1)
    if antithetic:
        orders = torch.stack([orders, orders.flip(1)], dim=1).reshape(2 * count, p)
    return to_device(Design("shapley", players, _prefixes(orders), orders=orders), device)


def exact_design(players: Players, device: torch.device | str | None = None) -> Design:
    """All ``2**P`` coalitions and the exact Shapley weights (at most 16 players).

    ``weights[k, i]`` is ``|S|! (P - |S| - 1)! / P!`` with a minus sign when player ``i`` is
    not in coalition ``k``, and the same weight for ``S = k - {i}`` with a plus sign when it
    is, so attributions are ``scores @ weights``.

    Examples
    --------
    >>> d = exact_design(Players(torch.arange(2)[None], 2))
    >>> d.keep.int().tolist(), d.weights.tolist()
    ([[0, 0], [1, 0], [0, 1], [1, 1]], [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]])
    """
    p = players.count
    if p > EXACT_LIMIT:
        raise ValueError(
            f'samples: "exact" enumerates 2**P coalitions and allows at most {EXACT_LIMIT} '
            f"players; these inputs have {p}. Use fewer players (groups) or sampling "
            "(samples=<int>)"
        )
    keep = (torch.arange(2**p)[:, None] >> torch.arange(p)) & 1 == 1
    size = keep.sum(1, keepdim=True)
    # 1 / (P * C(P - 1, s)) = s! (P - s - 1)! / P!, one entry per coalition size.
    table = torch.tensor([1 / (p * math.comb(p - 1, s)) for s in range(p)], dtype=torch.float64)

    def weight(s: torch.Tensor) -> torch.Tensor:
        return table[s.clamp(0, p - 1)]

    weights = torch.where(keep, weight(size - 1), -weight(size))
    return to_device(Design("shapley", players, keep, weights=weights), device)


def kernel_shap_design(
    players: Players,
    samples: int = 200,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> Design:
    """The empty and full coalitions, then ``samples`` drawn with the Shapley kernel.

    A drawn coalition's size ``k`` (1 .. P-1) has probability proportional to
    ``(P - 1) / (k (P - k))`` and its players are uniform among those of that size, so
    each coalition is drawn in proportion to its Shapley kernel weight and the regression
    weighs the drawn ones equally.

    Examples
    --------
    >>> d = kernel_shap_design(Players(torch.arange(4)[None], 4), samples=5, seed=0)
    >>> d.keep.shape, d.keep[:2].int().tolist()
    (torch.Size([7, 4]), [[0, 0, 0, 0], [1, 1, 1, 1]])
    >>> bool(((d.keep[2:].sum(1) >= 1) & (d.keep[2:].sum(1) <= 3)).all())
    True
    """
    count = _positive("samples", samples)
    p = players.count
    ends = torch.stack([torch.zeros(p, dtype=torch.bool), torch.ones(p, dtype=torch.bool)])
    if p < 2:  # no coalition between the empty and the full one
        return to_device(Design("kernel_shap", players, ends), device)
    g = generator(seed)
    k = torch.arange(1, p, dtype=torch.float64)
    sizes = torch.multinomial((p - 1) / (k * (p - k)), count, replacement=True, generator=g) + 1
    ranks = torch.rand(count, p, generator=g).argsort(dim=1).argsort(dim=1)
    drawn = ranks < sizes[:, None]
    return to_device(Design("kernel_shap", players, torch.cat([ends, drawn])), device)


def lime_design(
    players: Players,
    samples: int = 200,
    seed: int | None = None,
    kernel_width: float = 1.0,
    distance: str = "cosine",
    device: torch.device | str | None = None,
) -> Design:
    """``samples`` random coalitions, each player kept with probability 1/2 (as Captum).

    The estimator weighs each copy by ``exp(-d**2 / (2 kernel_width**2))``, ``d`` the
    ``distance`` (``"cosine"``: 1 - cosine similarity, or ``"euclidean"``) between the input
    and the copy, as Captum's default similarity.

    Examples
    --------
    >>> d = lime_design(Players(torch.arange(3)[None], 3), samples=4, seed=0)
    >>> d.keep.shape, d.kernel_width, d.distance
    (torch.Size([4, 3]), 1.0, 'cosine')
    """
    count = _positive("samples", samples)
    if distance not in ("cosine", "euclidean"):
        raise ValueError(f"distance: expected 'cosine' or 'euclidean', got {distance!r}")
    if not isinstance(kernel_width, (int, float)) or not kernel_width > 0:
        raise ValueError(f"kernel_width: expected a positive number, got {kernel_width!r}")
    keep = torch.rand(count, players.count, generator=generator(seed)) < 0.5
    design = Design("lime", players, keep, kernel_width=float(kernel_width), distance=distance)
    return to_device(design, device)


def ablation_design(players: Players, device: torch.device | str | None = None) -> Design:
    """The full coalition, then one coalition per player with that player off.

    Examples
    --------
    >>> ablation_design(Players(torch.arange(2)[None], 2)).keep.int().tolist()
    [[1, 1], [0, 1], [1, 0]]
    """
    p = players.count
    keep = torch.cat([torch.ones(1, p, dtype=torch.bool), ~torch.eye(p, dtype=torch.bool)])
    return to_device(Design("feature_ablation", players, keep), device)


def permutation_design(
    players: Players,
    samples: int,
    seed: int | None = None,
    sources: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> Design:
    """Feature permutation: player ``p``'s features come from other samples of the batch.

    Copy 0 is the input itself; copy ``p + 1`` takes player ``p``'s features of sample
    ``n`` from sample ``sources[p + 1, n]``. Each player gets its own permutation of the
    ``samples`` rows (never the identity), drawn from ``seed`` unless ``sources`` gives them:
    ``[P, N]``, one per player (Captum's FeaturePermutation draws one per feature, in
    order), or ``[N]``, one for all.

    Examples
    --------
    >>> d = permutation_design(Players(torch.arange(2)[None], 2), 3, seed=0)
    >>> d.keep.int().tolist(), d.sources.shape, d.sources[0].tolist()
    ([[1, 1], [0, 1], [1, 0]], torch.Size([3, 3]), [0, 1, 2])
    """
    p = players.count
    if samples < 2:
        raise ValueError(
            f"inputs: feature permutation shuffles features across the batch and needs at "
            f"least 2 samples; got {samples}"
        )
    if sources is None:
        g = generator(seed)
        sources = torch.rand(p, samples, generator=g).argsort(dim=1)
        identity = torch.arange(samples)
        # Redraw the rare identity permutations until none is left (never per feature).
        stuck = (sources == identity).all(1)
        while stuck.any():
            sources[stuck] = torch.rand(int(stuck.sum()), samples, generator=g).argsort(dim=1)
            stuck = (sources == identity).all(1)
    sources = torch.as_tensor(sources).long().cpu()
    if sources.ndim == 1:  # one permutation shared by every player
        sources = sources.expand(p, -1)
    if tuple(sources.shape) != (p, samples):
        problem = f"shape {list(sources.shape)}"
    elif not (sources.sort(dim=1).values == torch.arange(samples)).all():
        problem = "a row that is no permutation"
    else:
        problem = ""
    if problem:
        raise ValueError(
            f"sources: expected permutations of 0..{samples - 1}, one per player (shape "
            f"[{p}, {samples}]) or one for all (shape [{samples}]); got {problem}"
        )
    keep = ablation_design(players).keep
    sources = torch.cat([torch.arange(samples)[None], sources])
    return to_device(Design("feature_permutation", players, keep, sources=sources), device)


def to_device(design: Design, device: torch.device | str | None) -> Design:
    """The design with its tensors on ``device`` (unchanged when ``device`` is ``None``).

    Examples
    --------
    >>> d = ablation_design(Players(torch.zeros(1, 2, dtype=torch.long), 1))
    >>> to_device(d, "cpu").keep.device
    device(type='cpu')
    """
    if device is None:
        return design
    fields = {}
    for name in ("keep", "orders", "weights", "cover", "sources"):
        value = getattr(design, name)
        fields[name] = None if value is None else value.to(device)
    players = Players(design.players.ids.to(device), design.players.count)
    return Design(
        design.method,
        players,
        fields["keep"],  # type: ignore[arg-type]
        fields["orders"],
        fields["weights"],
        fields["cover"],
        fields["sources"],
        design.kernel_width,
        design.distance,
    )


def _prefixes(orders: torch.Tensor) -> torch.Tensor:
    # Coalition j of permutation s holds its first j players: player orders[s, i] is in
    # iff its position i < j.
    s, p = orders.shape
    position = torch.empty_like(orders)
    position.scatter_(1, orders, torch.arange(p).expand(s, p))
    return (position[:, None, :] < torch.arange(p + 1)[None, :, None]).reshape(s * (p + 1), p)


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value
