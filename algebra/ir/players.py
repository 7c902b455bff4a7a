"""Players of the perturbation methods, as plain data: ``ia.grid`` and ``ia.patches``.

A perturbation method removes and restores *players*, groups of input features, rather
than single features. ``groups=`` takes one of these specs or an integer mask; the specs
are laid over whatever is attributed (the whole input, the window of a projection, or a
layer's grid) when the shape is known. Also the parameter checks of the perturbation
methods and metrics, without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import positive_integer


@dataclass(frozen=True)
class Grid:
    """A ``rows`` x ``cols`` grid of rectangular players (build with :func:`grid`)."""

    rows: int
    cols: int

    @property
    def kind(self) -> str:
        """``"grid"``."""
        return "grid"

    @property
    def args(self) -> tuple[int, ...]:
        """The spec's integers, as the query language writes them."""
        return (self.rows, self.cols)

    @property
    def token(self) -> str:
        """The spec's identity in expression tokens."""
        return f"players:{self!r}"

    def __repr__(self) -> str:
        return f"grid({self.rows}, {self.cols})"


@dataclass(frozen=True)
class Patches:
    """Square players of ``size`` x ``size`` positions (build with :func:`patches`)."""

    size: int

    @property
    def kind(self) -> str:
        """``"patches"``."""
        return "patches"

    @property
    def args(self) -> tuple[int, ...]:
        """The spec's integers, as the query language writes them."""
        return (self.size,)

    @property
    def token(self) -> str:
        """The spec's identity in expression tokens."""
        return f"players:{self!r}"

    def __repr__(self) -> str:
        return f"patches({self.size})"


PlayerSpecs = (Grid, Patches)


def grid(rows: int, cols: int) -> Grid:
    """Players on a ``rows`` x ``cols`` grid of rectangles over what is attributed.

    The grid covers the whole image, or only the window of a projection (so the same
    number of players gives a finer map of the window), or a selected layer's grid. Each
    player spans the channels; bands are as even as the size allows.

    Parameters
    ----------
    rows, cols : int
        Players down and across, each at least 1 (and at most the positions there are).

    Returns
    -------
    Grid

    Examples
    --------
    >>> import torch, algebra as ia
    >>> ia.grid(4, 4)
    grid(4, 4)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2)).eval()
    >>> r = ia.model(net).on(torch.rand(1, 3, 8, 8)).feature_ablation(0, groups=ia.grid(2, 2)).compute()
    >>> r.player.values[0].tolist()
    [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 1], [2, 2, 2, 2, 3, 3, 3, 3], [2, 2, 2, 2, 3, 3, 3, 3], [2, 2, 2, 2, 3, 3, 3, 3], [2, 2, 2, 2, 3, 3, 3, 3]]
    >>> ia.grid(0, 4)
    Traceback (most recent call last):
    ValueError: rows: expected an integer >= 1; got 0
    """
    return Grid(positive_integer(rows, "rows"), positive_integer(cols, "cols"))


def patches(size: int) -> Patches:
    """Square players of ``size`` x ``size`` positions over what is attributed.

    Patches start at the top-left corner of the image (or window); the last row and column
    of patches may be smaller.

    Parameters
    ----------
    size : int
        The side of a patch, at least 1 (and at most the image's or window's side).

    Returns
    -------
    Patches

    Examples
    --------
    >>> import algebra as ia
    >>> ia.patches(4)
    patches(4)
    >>> ia.patches(-1)
    Traceback (most recent call last):
    ValueError: size: expected an integer >= 1; got -1
    """
    return Patches(positive_integer(size, "size"))


def check_samples(samples: Any, exact: bool = False) -> int | str:
    """Validate a number of samples (``"exact"`` too where it is allowed).

    Examples
    --------
    >>> check_samples("exact", exact=True), check_samples(5)
    ('exact', 5)
    >>> check_samples(0)
    Traceback (most recent call last):
    ValueError: samples: expected an integer >= 1; got 0
    >>> check_samples("all", exact=True)
    Traceback (most recent call last):
    ValueError: samples: expected an integer >= 1 or "exact"; got 'all'
    """
    if exact and isinstance(samples, str):
        if samples != "exact":
            raise ValueError(f'samples: expected an integer >= 1 or "exact"; got {samples!r}')
        return samples
    return positive_integer(samples, "samples")


def check_seed(seed: Any) -> int | None:
    """Validate a seed: an integer, or ``None`` for torch's global generator.

    Examples
    --------
    >>> check_seed(None), check_seed(3)
    (None, 3)
    >>> check_seed(1.5)
    Traceback (most recent call last):
    TypeError: seed: expected an integer or None; got 1.5
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not hasattr(seed, "__index__"):
        raise TypeError(f"seed: expected an integer or None; got {seed!r}")
    return int(seed.__index__())


def check_positive(value: Any, argument: str) -> float:
    """Validate a positive finite number (a kernel width, a radius, a standard deviation).

    Examples
    --------
    >>> check_positive(2, "radius")
    2.0
    >>> check_positive(0.0, "stdev")
    Traceback (most recent call last):
    ValueError: stdev: expected a positive number; got 0.0
    """
    if isinstance(value, bool) or (
        not isinstance(value, (int, float)) and not hasattr(value, "__float__")
    ):
        raise TypeError(f"{argument}: expected a positive number; got {value!r}")
    number = float(value)
    if not (number > 0 and number != float("inf")):
        raise ValueError(f"{argument}: expected a positive number; got {value!r}")
    return number


def check_window_size(value: Any, argument: str) -> int | tuple[int, ...]:
    """Validate an occlusion window size or stride: an integer, or one per non-batch dim.

    Examples
    --------
    >>> check_window_size([3, 4, 4], "size"), check_window_size(2, "stride")
    ((3, 4, 4), 2)
    >>> check_window_size(0, "stride")
    Traceback (most recent call last):
    ValueError: stride: expected an integer >= 1; got 0
    """
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{argument}: expected an integer or a non-empty tuple of integers")
        return tuple(positive_integer(v, argument) for v in value)
    return positive_integer(value, argument)
