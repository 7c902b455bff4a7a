"""Frames made one: two elementwise (a join), two stacked along a new dim (an anti-join),
or several stacked along a new dim (the calls of a layer).

Coordinates equal on both sides are kept once; differing ones are kept per side.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from .frame import Coord, Frame


def _merged(a: Frame, b: Frame, stacked: str | None) -> dict[str, Coord]:
    # Coordinates equal on both sides are kept; differing ones are kept per side.
    coords: dict[str, Coord] = {}
    for name in dict.fromkeys([*a.coords, *b.coords]):
        left, right = a.coords.get(name), b.coords.get(name)
        same = (
            left is not None
            and right is not None
            and left[0] == right[0]
            and np.array_equal(left[1], right[1])
        )
        if same or right is None:
            coords[name] = left  # type: ignore[assignment]
        elif left is None:
            coords[name] = right
        elif stacked is not None and left is not None and right is not None and left[0] == right[0]:
            if left[0] == (name,):  # an index coordinate: the left side's labels stay
                coords[name] = left
                coords[f"{name}_right"] = right
            else:
                coords[name] = ((stacked, *left[0]), np.stack([left[1], right[1]]))
        elif stacked is None and left is not None and left[0] == (name,):
            coords[name] = left
            if right is not None:
                coords[f"{name}_right"] = right
        else:
            for suffix, coord in (("left", left), ("right", right)):
                if coord is not None:
                    coords[f"{name}_{suffix}"] = coord
    return coords


def check_aligned(a: Frame, b: Frame, what: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same dims and shape.

    Examples
    --------
    >>> check_aligned(Frame(torch.zeros(2, 3), ("sample", "x")),
    ...               Frame(torch.zeros(2, 4), ("sample", "x")), "join")
    Traceback (most recent call last):
    ValueError: join: the two attributions differ in shape: ('sample', 'x') [2, 3] and ('sample', 'x') [2, 4]
    """
    if a.dims != b.dims or a.data.shape != b.data.shape:
        raise ValueError(
            f"{what}: the two attributions differ in shape: {a.dims} {list(a.data.shape)} and "
            f"{b.dims} {list(b.data.shape)}"
        )


def combine(a: Frame, b: Frame, how: str) -> Frame:
    """Join two aligned maps elementwise: ``mean``, ``min`` or ``product``.

    Examples
    --------
    >>> a = Frame(torch.tensor([[1., 4.]]), ("sample", "x"))
    >>> b = Frame(torch.tensor([[3., 2.]]), ("sample", "x"))
    >>> combine(a, b, "mean").data, combine(a, b, "min").data, combine(a, b, "product").data
    (tensor([[2., 3.]]), tensor([[1., 2.]]), tensor([[3., 8.]]))
    """
    check_aligned(a, b, "join")
    if how == "mean":
        data = (a.data + b.data) / 2
    elif how == "min":
        data = torch.minimum(a.data, b.data)
    else:
        data = a.data * b.data
    return replace(a, data=data, coords=_merged(a, b, None))


def stack(
    a: Frame, b: Frame, dim: str = "side", labels: tuple[str, str] = ("left", "right")
) -> Frame:
    """Stack two aligned maps along a new first dim ``dim`` labelled ``labels``.

    Examples
    --------
    >>> a = Frame(torch.zeros(1, 2), ("sample", "x"), {"pred": (("sample",), np.array([1]))})
    >>> b = Frame(torch.ones(1, 2), ("sample", "x"), {"pred": (("sample",), np.array([0]))})
    >>> s = stack(a, b)
    >>> s.dims, s.coords["pred"]
    (('side', 'sample', 'x'), (('side', 'sample'), array([[1],
           [0]])))
    """
    check_aligned(a, b, "antijoin")
    coords = _merged(a, b, dim)
    coords[dim] = ((dim,), np.asarray(labels))
    data = torch.stack([a.data, b.data])
    return replace(a, data=data, dims=(dim, *a.dims), coords=coords)


def stack_along(frames: list[Frame], dim: str) -> Frame:
    """Stack aligned maps along a new dim ``dim`` (labelled ``0..K-1``), placed before the
    maps' own feature dims; coordinates that differ between the maps gain ``dim``.

    Examples
    --------
    >>> a = Frame(torch.zeros(2, 3), ("sample", "x"), {"d": (("sample",), np.array([1, 2]))},
    ...           features=("x",))
    >>> b = replace(a, data=torch.ones(2, 3), coords={"d": (("sample",), np.array([3, 4]))})
    >>> s = stack_along([a, b], "call")
    >>> s.dims, s.coords["d"]
    (('sample', 'call', 'x'), (('sample', 'call'), array([[1, 3],
           [2, 4]])))
    """
    first = frames[0]
    for other in frames[1:]:
        check_aligned(first, other, dim)
    axis = len(first.dims) - len(first.features)
    coords: dict[str, Coord] = {}
    for name, (dims, values) in first.coords.items():
        others = [f.coords.get(name) for f in frames]
        if all(c is not None and c[0] == dims and np.array_equal(c[1], values) for c in others):
            coords[name] = (dims, values)
        else:
            coords[name] = ((*dims, dim), np.stack([c[1] for c in others], -1))  # type: ignore[index]
    coords[dim] = ((dim,), np.arange(len(frames)))
    data = torch.stack([f.data for f in frames], axis)
    return replace(
        first, data=data, dims=(*first.dims[:axis], dim, *first.dims[axis:]), coords=coords
    )
