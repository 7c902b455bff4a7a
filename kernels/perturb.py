"""The perturbation stream: one forward per unique perturbed copy, for every design at once.

Copies that several designs ask for (the input itself, the baseline, the same mask in
ablation and Shapley) are found by hashing each copy's feature-level mask
(:mod:`~algebra.kernels.dedup`) and evaluated once. Copies are built chunk by chunk on the model's device (never all at once) and cut
into batches under the memory budget, with gradients off; the logits of every class come
back, so any number of targets costs no extra forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .chunks import sample_chunks
from .coalitions import Design, to_device
from .dedup import NOTHING, Unique, deduplicate
from .guard import device_of, guarded
from .memory import chunk_rows, guessed_profile, known_profile, profiling, row_bytes

# One batch of ``k`` copies of samples ``n0:n1`` (flattened) -> their logits.
Forward = Callable[[torch.Tensor, tuple[int, int], int], torch.Tensor]


@dataclass(frozen=True)
class StreamResult:
    """Logits ``[N, U, C]`` of the unique copies, each design's index into them, and counts.

    ``copies`` the coalitions asked for, ``unique`` those evaluated, ``batches`` the
    forward calls and ``rows`` the rows they carried (``unique * N``, noisy copies
    included). ``noisy[i]`` is the range of noise tensor ``i``'s copies on the copy axis of
    ``logits`` (after the unique ones).
    """

    logits: torch.Tensor
    index: list[torch.Tensor]
    copies: int
    unique: int
    batches: int
    rows: int
    noisy: list[tuple[int, int]] = field(default_factory=list)


def evaluate(
    module: torch.nn.Module,
    x: torch.Tensor,
    designs: list[Design],
    baseline: float | torch.Tensor = 0.0,
    budget: int | None = None,
    noise: Sequence[torch.Tensor] = (),
    forward: Forward | None = None,
    sizing: torch.Tensor | None = None,
) -> StreamResult:
    """Evaluate ``module`` once on every unique copy of ``x`` the ``designs`` ask for.

    ``baseline`` (a scalar or a tensor broadcastable to ``x``) fills the features of
    players out of a coalition. ``noise`` adds explicit copies ``x - noise[s]`` (each
    ``[S, N, ...]``, as infidelity perturbs) after the designs' copies. ``budget`` caps the
    bytes of one batch (``None``: one batch). ``forward`` and ``sizing`` perturb something
    other than the model's input (see :func:`forward_copies`). The module comes back
    unchanged; results stay on its device.

    Examples
    --------
    >>> from algebra.kernels.coalitions import ablation_design
    >>> from algebra.kernels.players import every_feature
    >>> net = torch.nn.Linear(3, 2).eval()
    >>> x = torch.ones(4, 3)
    >>> out = evaluate(net, x, [ablation_design(every_feature(x.shape))])
    >>> out.logits.shape, out.unique, out.batches
    (torch.Size([4, 4, 2]), 4, 1)
    >>> out = evaluate(net, x, [], noise=[torch.zeros(5, 4, 3)])
    >>> out.noisy, out.unique
    ([(0, 5)], 0)
    """
    if not designs and not noise:
        raise ValueError("designs: expected at least one design (or noise copies)")
    device = device_of(module, default=x.device)
    x = x.to(device)
    designs = [_checked(to_device(d, device), x.shape) for d in designs]
    fill = baseline_tensor(baseline, x)
    unique = deduplicate(designs, tuple(x.shape)) if designs else NOTHING
    noisy = torch.cat([n.to(device=device, dtype=x.dtype) for n in noise]) if noise else None
    first, ranges = unique.count, []
    for n in noise:
        ranges.append((first, first + n.shape[0]))
        first += n.shape[0]

    def build(copies: tuple[int, int], samples: tuple[int, int]) -> torch.Tensor:
        (u0, u1), (n0, n1) = copies, samples
        u = unique.count
        parts = []
        if u0 < u:
            parts.append(_copies(x, fill, designs, unique, (u0, min(u1, u)), samples))
        if u1 > u:
            assert noisy is not None
            parts.append(x[None, n0:n1] - noisy[max(u0, u) - u : u1 - u, n0:n1])
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    logits, batches = forward_copies(module, x, first, build, budget, forward, sizing)
    n = x.shape[0]
    return StreamResult(
        logits, unique.index, unique.copies, unique.count, batches, first * n, ranges
    )


def forward_copies(
    module: torch.nn.Module,
    x: torch.Tensor,
    count: int,
    build: Callable[[tuple[int, int], tuple[int, int]], torch.Tensor],
    budget: int | None = None,
    forward: Forward | None = None,
    sizing: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """Logits ``[N, count, C]`` of ``count`` copies of ``x`` and the number of batches.

    ``build((u0, u1), (n0, n1))`` makes copies ``u0:u1`` of samples ``n0:n1``, shaped
    ``[u1 - u0, n1 - n0, ...]``; batches take whole copies of all samples, or one copy's
    samples in pieces when the budget is smaller. Gradients are off and the module guarded.

    By default each batch is the module's input. When ``x`` is something else (a layer's
    activation), ``forward(flat, (n0, n1), k)`` runs one batch of ``k`` copies of samples
    ``n0:n1`` and returns their logits, and ``sizing`` (the model's inputs) sizes the
    batches from the model's measured profile.

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
            rows = (count - u) * n
            per = (
                batch_rows(module, x, budget, rows)
                if sizing is None
                else batch_rows(module, sizing, budget, rows, copies=x)
            )
            if per >= n:
                ranges = [(u, min(count, u + per // n), 0, n)]
            else:
                ranges = [(u, u + 1, n0, n1) for n0, n1 in sample_chunks(n, per)]
            for u0, u1, n0, n1 in ranges:
                flat = build((u0, u1), (n0, n1)).reshape(-1, *x.shape[1:])
                if forward is None:
                    with profiling(module, flat):
                        out = module(flat)
                else:
                    out = forward(flat, (n0, n1), u1 - u0)
                _check_output(out, flat.shape[0])
                if logits is None:
                    logits = out.new_empty(n, count, out.shape[1])
                logits[n0:n1, u0:u1] = out.reshape(u1 - u0, n1 - n0, -1).transpose(0, 1)
                batches += 1
            u = ranges[-1][1]
    assert logits is not None
    return logits, batches


def batch_rows(
    module: torch.nn.Module,
    x: torch.Tensor,
    budget: int | None,
    rows: int,
    copies: torch.Tensor | None = None,
) -> int:
    """Rows of one forward batch under ``budget`` (all ``rows`` without a budget).

    Sized from the model's measured profile on ``x``'s shape, or a conservative guess
    before the first forward has measured it; ``copies`` (default ``x``) is what each row
    copies, when that is not the model's input (a layer's activation).

    Examples
    --------
    >>> batch_rows(torch.nn.Linear(3, 2), torch.ones(4, 3), None, 100)
    100
    """
    profile = known_profile(module, x) or guessed_profile(x)
    point = x[0].numel() * x.element_size()
    # The copy's mask and fill live beside the forward's own buffers (and, for copies of a
    # layer's activation, the repeated inputs the model runs on).
    per_row = row_bytes(profile, point, 0, 0, grad=False) + 2 * point
    if copies is not None:
        per_row += 2 * copies[0].numel() * copies.element_size()
    return chunk_rows(rows, per_row, budget)


def count_batches(
    module: torch.nn.Module,
    x: torch.Tensor,
    copies: int,
    budget: int | None,
    sizing: torch.Tensor | None = None,
) -> int:
    """Forward batches :func:`forward_copies` takes for ``copies`` copies of ``x``.

    For ``explain()`` before running: exact once the model's profile on the inputs' shape
    is measured; before that, from the same conservative guess the first batch is sized by.
    ``sizing`` is the model's inputs when ``x`` is not (a layer's activation).

    Examples
    --------
    >>> count_batches(torch.nn.Linear(3, 2), torch.ones(4, 3), 10, None)
    1
    """
    n = x.shape[0]
    if sizing is None:
        per = batch_rows(module, x, budget, copies * n)
    else:
        per = batch_rows(module, sizing, budget, copies * n, copies=x)
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
