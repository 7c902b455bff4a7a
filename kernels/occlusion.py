"""Occlusion windows as a coalition design (Captum's sliding windows and strides).

A window of ``size`` slides over the non-batch dims by ``stride``; along a dim of length
``n`` it takes ``ceil((n - w) / s) + 1`` positions, the last one cut at the edge. The
players are the atoms of the windows: blocks of features that the same windows cover
(along each dim, the intervals between window edges), so the design stays small even for
large inputs. Attributions average each window's score drop over the windows covering a
feature, as Captum does.
"""

from __future__ import annotations

import torch

from .coalitions import Design, to_device
from .players import Players

Size = int | tuple[int, ...]


def window_shapes(shape: tuple[int, ...], size: Size, stride: Size | None) -> tuple[list, list]:
    """Per-dim window sizes and strides over the non-batch dims of inputs of ``shape``.

    An integer ``size`` is a square window over the last two dims spanning the others (an
    image's channels), or a window along the only dim of 2-D inputs; a tuple gives every
    non-batch dim (Captum's ``sliding_window_shapes``). An integer ``stride`` applies to
    every dim; ``None`` means 1. Raises ``ValueError`` naming ``size`` or ``stride``.

    Examples
    --------
    >>> window_shapes((2, 3, 8, 8), 4, 2)
    ([3, 4, 4], [2, 2, 2])
    >>> window_shapes((2, 3, 8, 8), (1, 9, 2), 1)
    Traceback (most recent call last):
    ValueError: size: the window (1, 9, 2) is larger than the inputs [3, 8, 8] (or not positive)
    """
    features = list(shape[1:])
    if isinstance(size, int) and not isinstance(size, bool):
        spatial = min(2, len(features))
        sizes = features[: len(features) - spatial] + [size] * spatial
    else:
        sizes = list(size)  # type: ignore[arg-type]
    if len(sizes) != len(features):
        raise ValueError(
            f"size: expected an integer or one window size per non-batch dim of the inputs "
            f"{features}; got {size!r}"
        )
    if any(not isinstance(w, int) or w < 1 or w > n for w, n in zip(sizes, features, strict=True)):
        raise ValueError(
            f"size: the window {size!r} is larger than the inputs {features} (or not positive)"
        )
    strides = [1] * len(features) if stride is None else stride
    strides = [strides] * len(features) if isinstance(strides, int) else list(strides)
    if len(strides) != len(features) or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in strides
    ):
        raise ValueError(
            f"stride: expected positive integers, one per non-batch dim of the inputs "
            f"{features} or one for all; got {stride!r}"
        )
    for w, s, n in zip(sizes, strides, features, strict=True):
        if n > w and s > w:  # features between windows would never be occluded
            raise ValueError(
                f"stride: {stride!r} is larger than the window {size!r} (and so than the "
                f"inputs {features} along a dim the window does not fill)"
            )
    return sizes, strides


def occlusion_design(
    shape: tuple[int, ...],
    size: Size,
    stride: Size | None = None,
    device: torch.device | str | None = None,
) -> Design:
    """The full coalition, then one coalition per window position with the window hidden.

    ``cover[k, p]`` says whether window ``k`` hides player (atom) ``p``.

    Examples
    --------
    >>> d = occlusion_design((1, 5), size=2, stride=2)
    >>> d.players.ids, d.keep.int().tolist()
    (tensor([[0, 0, 1, 1, 2]]), [[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0]])
    """
    sizes, strides = window_shapes(shape, size, stride)
    ids = torch.zeros((1, *shape[1:]), dtype=torch.long)
    cover = torch.ones(1, 1, dtype=torch.bool)
    count = 1
    for dim, (w, s, n) in enumerate(zip(sizes, strides, shape[1:], strict=True)):
        starts = torch.arange(-(-(n - w) // s) + 1) * s
        ends = (starts + w).clamp(max=n)
        edges = torch.unique(torch.cat([starts, ends, torch.tensor([0, n])]))
        atom = torch.searchsorted(edges, torch.arange(n), right=True) - 1
        along = (starts[:, None] <= edges[None, :-1]) & (edges[None, 1:] <= ends[:, None])
        # Row-major over dims: atoms and windows of later dims vary fastest.
        view = [1] * (len(shape))
        view[dim + 1] = n
        ids = ids * along.shape[1] + atom.reshape(view)
        cover = (cover[:, None, :, None] & along[None, :, None, :]).reshape(
            cover.shape[0] * along.shape[0], count * along.shape[1]
        )
        count *= along.shape[1]
    keep = torch.cat([torch.ones(1, count, dtype=torch.bool), ~cover])
    return to_device(Design("occlusion", Players(ids, count), keep, cover=cover), device)
