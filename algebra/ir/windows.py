"""Windows ``(r0, r1, c0, c1)``: rows ``r0:r1`` and columns ``c0:c1`` of a grid, checked
when a window, a patch or a replacement is built.
"""

from __future__ import annotations

from typing import Any


def check_window(window: Any, argument: str = "window") -> tuple[int, int, int, int]:
    """Validate a window ``(r0, r1, c0, c1)``: rows ``r0:r1``, columns ``c0:c1``.

    Examples
    --------
    >>> check_window([0, 2, 1, 3])
    (0, 2, 1, 3)
    >>> check_window((2, 1, 0, 1))
    Traceback (most recent call last):
    ValueError: window: expected 0 <= r0 < r1 and 0 <= c0 < c1 (rows r0:r1, columns c0:c1); got [2, 1, 0, 1]
    """
    if isinstance(window, (str, bytes)) or not hasattr(window, "__len__") or len(window) != 4:
        raise TypeError(f"{argument}: expected four integers (r0, r1, c0, c1); got {window!r}")
    values = []
    for v in window:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"{argument}: expected four integers (r0, r1, c0, c1); got {window!r}")
        values.append(int(v.__index__()))
    r0, r1, c0, c1 = values
    if not (0 <= r0 < r1 and 0 <= c0 < c1):
        raise ValueError(
            f"{argument}: expected 0 <= r0 < r1 and 0 <= c0 < c1 (rows r0:r1, columns c0:c1); "
            f"got {values}"
        )
    return r0, r1, c0, c1


def check_on_grid(window: tuple[int, int, int, int], shape: tuple[int, ...], argument: str) -> None:
    """Refuse a window that does not lie inside the inputs' grid (the last two dims).

    Examples
    --------
    >>> check_on_grid((0, 2, 0, 9), (4, 3, 8, 8), "window")
    Traceback (most recent call last):
    ValueError: window: [0, 2, 0, 9] does not lie inside the inputs' 8 x 8 grid
    """
    if len(shape) < 3:
        raise ValueError(
            f"{argument}: a window needs a spatial grid [N, ..., rows, columns], but the inputs "
            f"have shape {list(shape)}"
        )
    rows, cols = shape[-2], shape[-1]
    if window[1] > rows or window[3] > cols:
        raise ValueError(
            f"{argument}: {list(window)} does not lie inside the inputs' {rows} x {cols} grid"
        )
