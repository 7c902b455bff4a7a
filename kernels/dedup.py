"""Deduplication of perturbed copies: coalitions of several designs that give the same copy.

Each coalition's copy is named by a hash of the features it keeps (random 64-bit weights
summed, wrapping) and of what fills the rest, computed per player rather than per feature,
so designs over large inputs hash in a few tensor ops on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .coalitions import Design

# Fixed seed of the random hash weights: they only name masks, never change a result.
_HASH_SEED = 0x5EED
_HASH_ROWS = 1 << 20  # entries of one hashing block


@dataclass(frozen=True)
class Unique:
    """The unique copies of several designs.

    ``index[i][k]`` is the unique copy of design ``i``'s coalition ``k``; unique copy ``u``
    is built from coalition ``row[u]`` of design ``design[u]`` (its first occurrence).
    """

    index: list[torch.Tensor]
    design: torch.Tensor
    row: torch.Tensor
    copies: int

    @property
    def count(self) -> int:
        """The number of unique copies.

        Examples
        --------
        >>> Unique([torch.tensor([0, 0])], torch.tensor([0]), torch.tensor([0]), 2).count
        1
        """
        return int(self.design.numel())


# No design at all (a stream of noisy copies only).
NOTHING = Unique([], torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 0)


def deduplicate(designs: list[Design], shape: tuple[int, ...]) -> Unique:
    """Find the designs' coalitions that give the same copy of inputs shaped ``shape``.

    Two coalitions give the same copy when they keep the same features of every sample and
    fill the others alike (the baseline, or the same samples for feature permutation).
    Unique copies are numbered in order of first appearance.

    Examples
    --------
    >>> from algebra.kernels.coalitions import ablation_design, exact_design
    >>> from algebra.kernels.players import every_feature
    >>> p = every_feature((1, 2))
    >>> u = deduplicate([ablation_design(p), exact_design(p)], (1, 2))
    >>> u.copies, u.count, u.index[1].tolist()
    (7, 4, [3, 2, 1, 0])
    """
    if not designs:
        raise ValueError("designs: expected at least one design")
    device = designs[0].keep.device
    g = torch.Generator().manual_seed(_HASH_SEED)
    features = torch.randint(-(2**62), 2**62, tuple(shape[1:]), generator=g).to(device)
    samples = torch.randint(-(2**62), 2**62, (shape[0],), generator=g).to(device)
    width = max(d.players.ids.shape[0] for d in designs)
    keys = [_keys(d, features, samples, width) for d in designs]
    flat = torch.cat(keys)
    _, inverse = torch.unique(flat, dim=0, return_inverse=True)
    total = flat.shape[0]
    first = torch.full((int(inverse.max()) + 1,), total, device=device)
    first.scatter_reduce_(0, inverse, torch.arange(total, device=device), "amin")
    order = first.argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=device)
    sizes = [d.keep.shape[0] for d in designs]
    offsets = torch.tensor([0, *sizes], device=device).cumsum(0)
    starts = first[order]
    which = torch.searchsorted(offsets[1:], starts, right=True)
    index = list(rank[inverse].split(sizes))
    return Unique(index, which, starts - offsets[which], total)


def _keys(design: Design, features: torch.Tensor, samples: torch.Tensor, width: int):
    # Hash of each coalition's copy per sample: the sum of random 64-bit weights of the
    # kept features (wrapping), plus a column naming the fill.
    ids, count = design.players.ids, design.players.count
    b = ids.shape[0]
    index = (ids + 1).expand(b, *features.shape).reshape(b, -1)
    weights = features.reshape(1, -1).expand(b, -1)
    per_player = torch.zeros(b, count + 1, dtype=torch.long, device=ids.device)
    per_player.scatter_add_(1, index, weights)
    keep = design.keep
    step = max(1, _HASH_ROWS // max(1, b * count))
    parts = [
        (keep[k : k + step, None, :] * per_player[None, :, 1:]).sum(-1)
        for k in range(0, keep.shape[0], step)
    ]
    hashes = (torch.cat(parts) + per_player[None, :, 0]).expand(-1, width)
    fill = torch.zeros(keep.shape[0], 1, dtype=torch.long, device=ids.device)
    if design.sources is not None:
        named = (design.sources * samples).sum(1, keepdim=True) * 2 + 1
        fill = torch.where(keep.all(1, keepdim=True), fill, named)
    return torch.cat([hashes, fill], dim=1)
