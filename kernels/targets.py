"""Resolve a target spec to the class attributed for each sample, from the model output."""

from __future__ import annotations

import inspect

import torch

from .plan import TargetSpec
from .units import unit_rows


def class_rows(
    target: TargetSpec,
    logits: torch.Tensor,
    labels: torch.Tensor | None,
    samples: slice | None = None,
) -> torch.Tensor | None:
    """Classes to attribute, shape ``[T, N]``; ``None`` for a callable target.

    ``logits`` and ``labels`` may be a chunk of the batch: ``samples`` says which, so
    per-sample targets pick their own entries.

    Raises ``ValueError`` naming ``target`` when a class is outside the model's outputs.

    Examples
    --------
    >>> logits = torch.tensor([[0.1, 0.9, 0.0], [0.7, 0.2, 0.1]])
    >>> class_rows(TargetSpec("pred"), logits, None)
    tensor([[1, 0]])
    >>> class_rows(TargetSpec("topk", 2), logits, None)
    tensor([[1, 0],
            [0, 1]])
    >>> class_rows(TargetSpec("units", ("conv", "all", 2)), logits, None)
    tensor([[0, 0],
            [1, 1]])
    """
    n, c = logits.shape
    device = logits.device
    kind, value = target.kind, target.value
    if kind == "fn":
        return None
    if kind in ("unit", "units"):  # every unit of a layer, one row each (kernels.unit_targets)
        return unit_rows(int(target.count(c) or 1), n, device)
    if kind == "pred":
        rows = logits.argmax(dim=1)[None]
    elif kind == "label":
        assert labels is not None
        if int(labels.max()) >= c:
            raise ValueError(
                f"labels: label {int(labels.max())} is out of range for a model with {c} outputs"
            )
        rows = labels.to(device)[None]
    elif kind == "topk":
        assert isinstance(value, int)
        if value > c:
            raise ValueError(
                f"target: topk({value}) asks for more classes than the model's {c} outputs"
            )
        rows = logits.topk(value, dim=1).indices.T
    elif kind == "all":
        rows = torch.arange(c, device=device)[:, None].expand(c, n)
    if kind in ("index", "per_sample", "classes"):
        # Checked as Python integers: a huge one would overflow the tensor it goes into.
        values = [int(value)] if kind == "index" else [int(v) for v in value]  # type: ignore[union-attr, arg-type]
        bad = next((v for v in values if not 0 <= v < c), None)
        if bad is not None:
            shown = (
                str(bad)
                if abs(bad) < 10**12
                else f"{'-' if bad < 0 else ''}about 10^{int(abs(bad).bit_length() * 0.30103)}"
            )
            raise ValueError(
                f"target: class {shown} is out of range for a model with {c} outputs "
                f"(expected 0..{c - 1})"
            )
    if kind == "index":
        rows = torch.full((1, n), int(value), device=device)  # type: ignore[arg-type]
    elif kind == "per_sample":
        rows = torch.tensor(value, device=device)[None][:, samples or slice(None)]
    elif kind == "classes":
        rows = torch.tensor(value, device=device)[:, None].expand(-1, n)
    if rows.numel() and (int(rows.max()) >= c or int(rows.min()) < 0):
        bad = int(rows.max()) if int(rows.max()) >= c else int(rows.min())
        raise ValueError(
            f"target: class {bad} is out of range for a model with {c} outputs (expected 0..{c - 1})"
        )
    return rows.long()


def scalar_outputs(target: TargetSpec, outputs: torch.Tensor) -> torch.Tensor:
    """Apply a callable target to the model output; check it gives one scalar per sample.

    Examples
    --------
    >>> scalar_outputs(TargetSpec("fn", lambda o: o.sum(1)), torch.ones(3, 2))
    tensor([2., 2., 2.])
    """
    fn = target.value
    assert callable(fn)
    try:
        inspect.signature(fn).bind(outputs)
    except TypeError:
        raise TypeError(
            f"target: a callable target is called with the model's outputs [N, classes] and "
            f"returns one score per sample; {getattr(fn, '__name__', 'it')}"
            f"{inspect.signature(fn)} cannot take that one argument"
        ) from None
    except ValueError:  # a builtin without a signature: just call it
        pass
    scores = fn(outputs)
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (outputs.shape[0],):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(
            f"target: a callable target must return one scalar per sample, a tensor of shape "
            f"({outputs.shape[0]},); it returned {shape}"
        )
    if not (scores.is_floating_point() or scores.is_complex()):
        raise TypeError(
            f"target: a callable target must return floating-point scores (e.g. "
            f"outputs[:, 3] or outputs.softmax(1)[:, 3]); it returned dtype {scores.dtype}, "
            "which has no gradient (argmax, rounding or integer casts)"
        )
    if outputs.requires_grad and not scores.requires_grad:
        raise ValueError(
            "target: the callable target's scores do not depend differentiably on the "
            "model's outputs (.detach(), torch.no_grad() or a non-differentiable operation)"
        )
    return scores


def pack(rows: list[torch.Tensor], classes: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Merge several requests' classes into the fewest target rows of one batched backward.

    Each sample needs the union of its requests' classes; row ``t`` of the result holds each
    sample's ``t``-th needed class (padded with an unneeded one), so ``T`` is the largest
    number of distinct classes any sample needs. ``slots[i][t, n]`` is the row holding
    request ``i``'s class ``rows[i][t, n]``.

    Examples
    --------
    >>> packed, slots = pack([torch.tensor([[2, 0]]), torch.tensor([[0, 1], [2, 0]])], 3)
    >>> packed
    tensor([[0, 0],
            [2, 1]])
    >>> slots[0], slots[1]
    (tensor([[1, 0]]), tensor([[0, 1],
            [1, 0]]))
    """
    n = rows[0].shape[1]
    needed = torch.zeros(n, classes, dtype=torch.bool, device=rows[0].device)
    for r in rows:
        needed.scatter_(1, r.T, True)
    count = int(needed.sum(1).max())
    # A stable sort puts each sample's needed classes first, in ascending order.
    packed = torch.sort((~needed).to(torch.uint8), dim=1, stable=True).indices[:, :count].T
    slot_of = needed.long().cumsum(1) - 1
    return packed.contiguous(), [slot_of.gather(1, r.T).T for r in rows]
