"""Windows on a spatial grid: the mask of a projection, checked against the grid's size."""

from __future__ import annotations

import torch

from .plan import Window


def window_mask(
    shape: tuple[int, ...], window: Window, what: str = "the inputs", batch: int = 0
) -> torch.Tensor:
    """A boolean mask over the last two dims of ``shape``, true inside ``window``.

    The first ``batch`` dims of ``shape`` are not features: the grid needs two more.
    Raises ``ValueError`` naming ``window`` when it does not lie inside the grid.

    Examples
    --------
    >>> window_mask((1, 4, 4), (1, 3, 0, 2)).int()
    tensor([[0, 0, 0, 0],
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [0, 0, 0, 0]], dtype=torch.int32)
    >>> window_mask((2, 3), (0, 2, 0, 4), "layer 'fc'")
    Traceback (most recent call last):
    ValueError: window: [0, 2, 0, 4] does not lie inside layer 'fc''s 2 x 3 grid
    """
    if len(shape) - batch < 2:
        raise ValueError(
            f"window: {list(window)} needs a spatial grid [..., rows, columns], but {what} "
            f"has shape {list(shape[batch:])} per sample"
        )
    rows, cols = shape[-2], shape[-1]
    r0, r1, c0, c1 = window
    if r1 > rows or c1 > cols:
        raise ValueError(
            f"window: {list(window)} does not lie inside {what}'s {rows} x {cols} grid"
        )
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    mask[r0:r1, c0:c1] = True
    return mask


def inside(
    values: torch.Tensor, window: Window | None, what: str = "the inputs", batch: int = 2
) -> torch.Tensor:
    """``values`` ``[T, N, ...]`` with everything outside ``window`` (last two dims) zero.

    Examples
    --------
    >>> inside(torch.ones(1, 2, 3), (0, 1, 1, 3), batch=1)
    tensor([[[0., 1., 1.],
             [0., 0., 0.]]])
    """
    if window is None:
        return values
    mask = window_mask(tuple(values.shape), window, what, batch).to(values.device)
    return values * mask


def path_start(
    start: torch.Tensor, end: torch.Tensor, window: Window | None, what: str = "the inputs"
) -> torch.Tensor:
    """The start of a windowed path: ``start`` inside the window, ``end`` outside.

    Examples
    --------
    >>> path_start(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), (0, 1, 0, 1))
    tensor([[[0., 1.],
             [1., 1.]]])
    """
    if window is None:
        return start
    mask = window_mask(tuple(end.shape), window, what, batch=1).to(end.device)
    return torch.where(mask, start.expand_as(end), end)
