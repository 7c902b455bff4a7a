"""The perturbation stream: one forward per unique perturbed copy, for every design at once.

Copies that several designs ask for (the input itself, the baseline, the same mask in
ablation and Shapley) are found by hashing each copy's feature-level mask and evaluated
once. Copies are built chunk by chunk on the model's device (never all at once) and cut
into batches under the memory budget, with gradients off; the logits of every class come
back, so any number of targets costs no extra forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .chunks import sample_chunks
from .coalitions import Design, to_device
from .guard import device_of, guarded
from .memory import chunk_rows, guessed_profile, known_profile, profiling, row_bytes

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


@dataclass(frozen=True)
class StreamResult:
    """Logits ``[N, U, C]`` of the unique copies, each design's index into them, and counts.

    ``copies`` the coalitions asked for, ``unique`` those evaluated, ``batches`` the
    forward calls and ``rows`` the rows they carried (``unique * N``).
    """

    logits: torch.Tensor
    index: list[torch.Tensor]
    copies: int
    unique: int
    batches: int
    rows: int


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


def evaluate(
    module: torch.nn.Module,
    x: torch.Tensor,
    designs: list[Design],
    baseline: float | torch.Tensor = 0.0,
    budget: int | None = None,
) -> StreamResult:
    """Evaluate ``module`` once on every unique copy of ``x`` the ``designs`` ask for.

    ``baseline`` (a scalar or a tensor broadcastable to ``x``) fills the features of
    players out of a coalition. ``budget`` caps the bytes of one batch (``None``: one
    batch). The module comes back unchanged; results stay on its device.

    Examples
    --------
    >>> from algebra.kernels.coalitions import ablation_design
    >>> from algebra.kernels.players import every_feature
    >>> net = torch.nn.Linear(3, 2).eval()
    >>> x = torch.ones(4, 3)
    >>> out = evaluate(net, x, [ablation_design(every_feature(x.shape))])
    >>> out.logits.shape, out.unique, out.batches
    (torch.Size([4, 4, 2]), 4, 1)
    """
    device = device_of(module, default=x.device)
    x = x.to(device)
    designs = [_checked(to_device(d, device), x.shape) for d in designs]
    fill = baseline_tensor(baseline, x)
    unique = deduplicate(designs, tuple(x.shape))

    def build(copies: tuple[int, int], samples: tuple[int, int]) -> torch.Tensor:
        return _copies(x, fill, designs, unique, copies, samples)

    logits, batches = forward_copies(module, x, unique.count, build, budget)
    n = x.shape[0]
    return StreamResult(
        logits, unique.index, unique.copies, unique.count, batches, unique.count * n
    )


def forward_copies(
    module: torch.nn.Module,
    x: torch.Tensor,
    count: int,
    build: Callable[[tuple[int, int], tuple[int, int]], torch.Tensor],
    budget: int | None = None,
) -> tuple[torch.Tensor, int]:
    """Logits ``[N, count, C]`` of ``count`` copies of ``x`` and the number of batches.

    ``build((u0, u1), (n0, n1))`` makes copies ``u0:u1`` of samples ``n0:n1``, shaped
    ``[u1 - u0, n1 - n0, ...]``; batches take whole copies of all samples, or one copy's
    samples in pieces when the budget is smaller. Gradients are off and the module guarded.

    Examples
    --------
    >>> net = torch.nn.Linear(2, 3).eval()
    >>> x = torch.ones(4, 2)
    >>> logits, batches = forward_copies(net, x, 5, lambda u, n: x[None, n[0] : n[1]].repeat(u[1] - u[0], 1, 1))
    >>> logits.shape, batches
    (torch.Size([4, 5, 3]), 1)
    """
    n = x.shape[0]
    logits: torch.Tensor | None = None
    batches = 0
    with guarded(module), torch.no_grad():
        u = 0
        while u < count:
            # Sized again after each batch: the first one measures the model's profile.
            per = batch_rows(module, x, budget, (count - u) * n)
            if per >= n:
                ranges = [(u, min(count, u + per // n), 0, n)]
            else:
                ranges = [(u, u + 1, n0, n1) for n0, n1 in sample_chunks(n, per)]
            for u0, u1, n0, n1 in ranges:
                flat = build((u0, u1), (n0, n1)).reshape(-1, *x.shape[1:])
                with profiling(module, flat):
                    out = module(flat)
                _check_output(out, flat.shape[0])
                if logits is None:
                    logits = out.new_empty(n, count, out.shape[1])
                logits[n0:n1, u0:u1] = out.reshape(u1 - u0, n1 - n0, -1).transpose(0, 1)
                batches += 1
            u = ranges[-1][1]
    assert logits is not None
    return logits, batches


def batch_rows(module: torch.nn.Module, x: torch.Tensor, budget: int | None, rows: int) -> int:
    """Rows of one forward batch under ``budget`` (all ``rows`` without a budget).

    Sized from the model's measured profile on ``x``'s shape, or a conservative guess
    before the first forward has measured it.

    Examples
    --------
    >>> batch_rows(torch.nn.Linear(3, 2), torch.ones(4, 3), None, 100)
    100
    """
    profile = known_profile(module, x) or guessed_profile(x)
    point = x[0].numel() * x.element_size()
    # The copy's mask and fill live beside the forward's own buffers.
    per_row = row_bytes(profile, point, 0, 0, grad=False) + 2 * point
    return chunk_rows(rows, per_row, budget)


def count_batches(module: torch.nn.Module, x: torch.Tensor, copies: int, budget: int | None) -> int:
    """Forward batches :func:`forward_copies` takes for ``copies`` copies of ``x``.

    For ``explain()`` before running: exact once the model's profile on ``x``'s shape is
    measured; before that, from the same conservative guess the first batch is sized by.

    Examples
    --------
    >>> count_batches(torch.nn.Linear(3, 2), torch.ones(4, 3), 10, None)
    1
    """
    n = x.shape[0]
    per = batch_rows(module, x, budget, copies * n)
    if per >= n:
        return -(-copies // (per // n))
    return copies * -(-n // per)


def baseline_tensor(baseline: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``baseline`` as a tensor of ``x``'s dtype and device, with ``x``'s number of dims.

    A tensor baseline may lack the batch dim; its dims must be 1 or match ``x``'s.

    Examples
    --------
    >>> baseline_tensor(0.5, torch.zeros(2, 3)).shape
    torch.Size([1, 1])
    >>> baseline_tensor(torch.zeros(4), torch.zeros(2, 3))
    Traceback (most recent call last):
    ValueError: baseline: shape [4] does not broadcast to the inputs [2, 3]
    """
    if not isinstance(baseline, torch.Tensor):
        if isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
            raise ValueError(
                f"baseline: expected a number or a tensor, got {type(baseline).__name__}"
            )
        # Straight to x's dtype: a float32 detour would round 0.3 in a float64 model.
        baseline = torch.tensor(float(baseline), dtype=x.dtype)
    b = baseline.to(device=x.device, dtype=x.dtype)
    if b.ndim == 0:
        b = b.reshape((1,) * x.ndim)
    elif b.ndim == x.ndim - 1:
        b = b[None]
    if b.ndim != x.ndim or any(d not in (1, s) for d, s in zip(b.shape, x.shape, strict=True)):
        raise ValueError(
            f"baseline: shape {list(baseline.shape)} does not broadcast to the inputs "
            f"{list(x.shape)}"
        )
    return b


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


def _copies(
    x: torch.Tensor,
    fill: torch.Tensor,
    designs: list[Design],
    unique: Unique,
    copies: tuple[int, int],
    samples: tuple[int, int],
) -> torch.Tensor:
    (u0, u1), (n0, n1) = copies, samples
    out = x.new_empty(u1 - u0, n1 - n0, *x.shape[1:])
    which, rows = unique.design[u0:u1], unique.row[u0:u1]
    xs = x[n0:n1]
    # One vectorised build per design present in the batch (a handful), never per copy.
    for d in torch.unique(which).tolist():
        design = designs[d]
        at = (which == d).nonzero().squeeze(1)
        picked = rows[at]
        keep = design.keep[picked]
        keep = torch.cat([keep.new_ones(keep.shape[0], 1), keep], dim=1)
        ids = design.players.ids
        ids = ids if ids.shape[0] == 1 else ids[n0:n1]
        mask = keep[:, ids + 1]
        if design.sources is not None:
            source = x[design.sources[picked][:, n0:n1]]
        else:
            source = fill if fill.shape[0] == 1 else fill[n0:n1]
        out[at] = torch.where(mask, xs, source)
    return out


def _checked(design: Design, shape: torch.Size) -> Design:
    ids = design.players.ids
    if ids.ndim != len(shape) or ids.shape[0] not in (1, shape[0]):
        raise ValueError(
            f"groups: the player map of shape {list(ids.shape)} does not fit the inputs "
            f"{list(shape)}"
        )
    if design.sources is not None and design.sources.shape[1] != shape[0]:
        raise ValueError(
            f"sources: permutations of {design.sources.shape[1]} samples for inputs of {shape[0]}"
        )
    return design


def _check_output(out: object, rows: int) -> None:
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != rows:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"model: expected an output of shape [N, classes] = [{rows}, C]; got {shape}"
        )
