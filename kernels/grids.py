"""A layer's activations as channels over a spatial grid ``[N, K, *grid]``, for the CAM family.

Convolutional layers already are ``[N, K, h, w]`` (or ``[N, K, L]``). Transformer layers
are not: a ViT block outputs tokens ``[N, 1 + h * w, D]`` (a class token, then the
patches row by row) and a Swin stage ``[N, h, w, D]`` (channels last) or ``[N, h * w, D]``.
Their grid must be made explicit, as pytorch-grad-cam's ``reshape_transform`` does:
``grid=(rows, cols)``, ``grid="auto"`` (the layouts below), or a callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

Layout = Literal["channels_first", "channels_last", "tokens", "tokens_cls"]
Grid = str | tuple[int, int] | Callable[[torch.Tensor], torch.Tensor] | None


def _square(n: int) -> int | None:
    r = math.isqrt(n)
    return r if r >= 2 and r * r == n else None


def detect_layout(shape: tuple[int, ...]) -> tuple[Layout, tuple[int, ...]]:
    """The layout of activations of ``shape`` and their grid, by the common conventions.

    - ``[N, T, D]``: tokens; ``T = r * r + 1`` is a class token then an ``r x r`` grid
      (ViT), ``T = r * r`` an ``r x r`` grid (Swin, flattened).
    - ``[N, a, a, D]`` with ``D != a``: channels last (Swin), an ``a x a`` grid.
    - other ``[N, K, ...]``: channels first (convolutions).

    Examples
    --------
    >>> detect_layout((2, 197, 768)), detect_layout((2, 49, 768))
    (('tokens_cls', (14, 14)), ('tokens', (7, 7)))
    >>> detect_layout((2, 7, 7, 768)), detect_layout((2, 64, 7, 7))
    (('channels_last', (7, 7)), ('channels_first', (7, 7)))
    >>> detect_layout((2, 30, 768))
    Traceback (most recent call last):
    ValueError: grid: cannot tell the grid of tokens [2, 30, 768]: 30 tokens are neither a square grid nor a class token and a square grid; pass grid=(rows, cols)
    """
    if len(shape) == 3:
        t = shape[1]
        if _square(t - 1) and not _square(t):
            r = _square(t - 1)
            return "tokens_cls", (r, r)  # type: ignore[return-value]
        if _square(t):
            return "tokens", (_square(t), _square(t))  # type: ignore[return-value]
        raise ValueError(
            f"grid: cannot tell the grid of tokens {list(shape)}: {t} tokens are neither a "
            "square grid nor a class token and a square grid; pass grid=(rows, cols)"
        )
    if len(shape) == 4 and shape[1] == shape[2] != shape[3]:
        return "channels_last", (shape[1], shape[2])
    return "channels_first", tuple(shape[2:])


def to_grid(acts: torch.Tensor, grid: Grid = None, layer: str = "layer") -> torch.Tensor:
    """Activations as ``[N, K, *grid]``: channels first over a spatial grid.

    ``grid`` is ``None`` (the activations are channels first already: ``[N, K, h, w]`` or
    ``[N, K, L]``), ``"auto"`` (:func:`detect_layout`), ``(rows, cols)`` (tokens
    ``[N, rows * cols (+ 1 class token, dropped), D]`` or channels-last ``[N, rows, cols, D]``)
    or a callable mapping the activations to ``[N, K, h, w]`` (pytorch-grad-cam's
    ``reshape_transform``). Gradients go through the same function. Raises ``ValueError``
    naming ``layer`` for activations without a spatial dim.

    Examples
    --------
    >>> vit = torch.arange(2 * 5 * 3.0).reshape(2, 5, 3)   # class token + 2 x 2 patches
    >>> to_grid(vit, (2, 2)).shape
    torch.Size([2, 3, 2, 2])
    >>> bool((to_grid(vit, (2, 2))[:, :, 0, 0] == vit[:, 1]).all())   # first patch, top left
    True
    >>> to_grid(torch.ones(2, 7, 7, 16), "auto").shape
    torch.Size([2, 16, 7, 7])
    >>> to_grid(torch.ones(2, 10), layer="fc")
    Traceback (most recent call last):
    ValueError: layer 'fc' outputs shape [2, 10]; a CAM needs channels over a spatial grid, [N, K, h, w] (or [N, K, L], tokens [N, T, D] with grid=...)
    """
    if callable(grid):
        out = grid(acts)
        if not isinstance(out, torch.Tensor) or out.ndim < 3 or out.shape[0] != acts.shape[0]:
            got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"grid: the reshape function must return [N, K, h, w] for layer {layer!r}; "
                f"it returned {got}"
            )
        return out
    if acts.ndim < 3:
        raise ValueError(
            f"layer {layer!r} outputs shape {list(acts.shape)}; a CAM needs channels over a "
            "spatial grid, [N, K, h, w] (or [N, K, L], tokens [N, T, D] with grid=...)"
        )
    if grid is None:
        return acts
    if grid == "auto":
        layout, size = detect_layout(tuple(acts.shape))
    else:
        layout, size = _layout_for(tuple(acts.shape), grid, layer)
    if layout == "channels_first":
        return acts
    if layout == "channels_last":
        return acts.movedim(-1, 1)
    tokens = acts[:, 1:] if layout == "tokens_cls" else acts
    return tokens.reshape(acts.shape[0], *size, acts.shape[-1]).movedim(-1, 1)


def _layout_for(shape: tuple[int, ...], grid: object, layer: str) -> tuple[Layout, tuple]:
    if not (
        isinstance(grid, tuple)
        and len(grid) == 2
        and all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in grid)
    ):
        raise ValueError(f"grid: expected None, 'auto', (rows, cols) or a callable; got {grid!r}")
    rows, cols = grid
    if len(shape) == 4 and shape[2:] == (rows, cols):
        return "channels_first", (rows, cols)
    if len(shape) == 4 and shape[1:3] == (rows, cols):
        return "channels_last", (rows, cols)
    if len(shape) == 3 and shape[1] == rows * cols:
        return "tokens", (rows, cols)
    if len(shape) == 3 and shape[1] == rows * cols + 1:
        return "tokens_cls", (rows, cols)
    raise ValueError(
        f"grid: {rows} x {cols} does not fit layer {layer!r}'s output {list(shape)}: expected "
        f"tokens [N, {rows * cols} (or {rows * cols + 1} with a class token), D], "
        f"[N, K, {rows}, {cols}] or [N, {rows}, {cols}, D]"
    )
