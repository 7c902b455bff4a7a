"""Labelled tensors on the model's device: the relational verbs run here, before xarray.

A :class:`Frame` is an attribution tensor with dim names, coordinates (small host arrays)
and per-sample columns (``pred``, ``label``, ``score`` on the device, ``id`` on the host).
Its operations follow xarray's semantics (which coordinates survive a reduction, where a
group dim goes), so the final ``DataArray`` equals the one xarray would have given, but the
data stays a torch tensor until the boundary.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

Coord = tuple[tuple[str, ...], np.ndarray]


@dataclass
class Frame:
    """An attribution tensor with dims, coordinates and per-sample columns.

    ``features`` are the attribution's own dims (those ``normalize`` and ``topk_features``
    work over by default). ``columns`` line up with the ``sample`` dim while it exists.
    """

    data: torch.Tensor
    dims: tuple[str, ...]
    coords: dict[str, Coord] = field(default_factory=dict)
    features: tuple[str, ...] = ()
    columns: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def axis(self, dim: str, argument: str = "dim") -> int:
        """The position of ``dim``; a ``ValueError`` with close matches if there is none.

        Examples
        --------
        >>> Frame(torch.zeros(2, 3), ("sample", "feature")).axis("feature")
        1
        >>> Frame(torch.zeros(2, 3), ("sample", "feature")).axis("features")
        Traceback (most recent call last):
        ValueError: dim: the result has no dim 'features'; its dims are 'sample', 'feature'. Did you mean 'feature'?
        """
        if dim in self.dims:
            return self.dims.index(dim)
        hint = _close(dim, self.dims)
        shown = ", ".join(repr(d) for d in self.dims)
        raise ValueError(f"{argument}: the result has no dim {dim!r}; its dims are {shown}.{hint}")


def _close(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=2)
    return (" Did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""


def _take(values: np.ndarray, axis: int, index: Any) -> np.ndarray:
    if isinstance(index, (int, np.integer)):
        return np.take(values, int(index), axis=axis)
    if isinstance(index, slice):
        where = [slice(None)] * values.ndim
        where[axis] = index
        return values[tuple(where)]
    return np.take(values, np.asarray(index, dtype=np.int64), axis=axis)


def _take_tensor(data: torch.Tensor, axis: int, index: Any) -> torch.Tensor:
    if isinstance(index, (int, np.integer)):
        return data.select(axis, int(index))
    if isinstance(index, slice):
        where = [slice(None)] * data.ndim
        where[axis] = index
        return data[tuple(where)]
    positions = torch.as_tensor(np.asarray(index, dtype=np.int64), device=data.device)
    return data.index_select(axis, positions)


def _check_position(frame: Frame, dim: str, index: Any) -> Any:
    size = frame.data.shape[frame.axis(dim)]
    if isinstance(index, slice):
        return index
    values = np.atleast_1d(np.asarray(index))
    if values.dtype.kind not in "iu":
        raise TypeError(f"{dim}: isel takes integer positions; got {index!r} (use sel for labels)")
    if values.size and (values.max() >= size or values.min() < -size):
        raise IndexError(f"{dim}: position {index!r} is out of range for a dim of size {size}")
    if isinstance(index, (int, np.integer)):
        return int(index) % size
    return values % size


def isel(frame: Frame, indexers: dict[str, Any]) -> Frame:
    """Select by position along dims: an int drops the dim, a slice or list keeps it.

    Examples
    --------
    >>> f = Frame(torch.arange(6.).reshape(2, 3), ("sample", "x"),
    ...           {"sample": (("sample",), np.array([7, 8]))}, ("x",))
    >>> g = isel(f, {"sample": 1, "x": [0, 2]})
    >>> g.data, g.dims, int(g.coords["sample"][1])
    (tensor([3., 5.]), ('x',), 8)
    """
    for dim, index in indexers.items():
        index = _check_position(frame, dim, index)
        axis = frame.axis(dim)
        data = _take_tensor(frame.data, axis, index)
        drop = isinstance(index, int)
        coords = {}
        for name, (cdims, values) in frame.coords.items():
            if dim in cdims:
                values = _take(values, cdims.index(dim), index)
                cdims = tuple(d for d in cdims if d != dim) if drop else cdims
            coords[name] = (cdims, values)
        columns = frame.columns
        if dim == "sample":
            columns = {
                k: (
                    _take_tensor(v, 0, index) if isinstance(v, torch.Tensor) else _take(v, 0, index)
                )
                for k, v in columns.items()
            }
            columns = {} if drop else columns
        dims = tuple(d for d in frame.dims if d != dim) if drop else frame.dims
        features = tuple(d for d in frame.features if d in dims)
        frame = replace(
            frame, data=data, dims=dims, coords=coords, features=features, columns=columns
        )
    return frame


def positions(frame: Frame, dim: str, labels: Any) -> Any:
    """Positions along ``dim`` of ``labels`` in its index coordinate (positions themselves
    when the dim has none, as in xarray).

    Examples
    --------
    >>> f = Frame(torch.zeros(3), ("sample",), {"sample": (("sample",), np.array([5, 6, 7]))})
    >>> positions(f, "sample", [7, 5]), positions(f, "sample", 6)
    ([2, 0], 1)
    """
    frame.axis(dim, argument="sel")
    coord = frame.coords.get(dim)
    if coord is None or coord[0] != (dim,):
        return labels
    index = {v.item() if hasattr(v, "item") else v: i for i, v in enumerate(coord[1])}
    many = isinstance(labels, (list, tuple, np.ndarray))
    found = []
    for label in list(labels) if many else [labels]:
        key = label.item() if hasattr(label, "item") else label
        if key not in index:
            shown = ", ".join(repr(k) for k in list(index)[:10])
            raise KeyError(f"sel: {dim}={key!r} is not in the result; {dim} has {shown}")
        found.append(index[key])
    return found if many else found[0]


def _dims_of(
    frame: Frame, dims: str | Sequence[str] | None, default: tuple[str, ...]
) -> tuple[str, ...]:
    if dims is None:
        return default
    names = (dims,) if isinstance(dims, str) else tuple(dims)
    for name in names:
        frame.axis(name)
    return names


def reduce(frame: Frame, dims: str | Sequence[str] | None, how: str) -> Frame:
    """``mean``, ``sum`` or ``var`` (the population variance, as xarray's) over ``dims``
    (all dims when ``None``), dropping their coordinates.

    Examples
    --------
    >>> f = Frame(torch.tensor([[1.0, 2, 3], [4, 4, 4]]), ("sample", "x"), features=("x",))
    >>> reduce(f, "x", "sum").data, reduce(f, None, "mean").dims, reduce(f, "x", "var").data
    (tensor([ 6., 12.]), (), tensor([0.6667, 0.0000]))
    """
    names = _dims_of(frame, dims, frame.dims)
    axes = tuple(frame.axis(d) for d in names)
    if not axes:
        return frame
    if how == "var":
        data = frame.data.var(dim=axes, correction=0)
    else:
        data = frame.data.mean(dim=axes) if how == "mean" else frame.data.sum(dim=axes)
    gone = set(names)
    return replace(
        frame,
        data=data,
        dims=tuple(d for d in frame.dims if d not in gone),
        coords={k: c for k, c in frame.coords.items() if not gone & set(c[0])},
        features=tuple(d for d in frame.features if d not in gone),
        columns={} if "sample" in gone else frame.columns,
    )


def _moved(frame: Frame, dims: tuple[str, ...]) -> tuple[torch.Tensor, list[int]]:
    # The chosen dims go last and are flattened, so one op works over all of them.
    axes = [frame.axis(d) for d in dims]
    rest = [i for i in range(frame.data.ndim) if i not in axes]
    moved = frame.data.permute(*rest, *axes)
    return moved.reshape(*moved.shape[: len(rest)], -1), rest + axes


def _restored(flat: torch.Tensor, frame: Frame, order: list[int]) -> torch.Tensor:
    shape = [frame.data.shape[i] for i in order]
    return flat.reshape(shape).permute(*np.argsort(order).tolist())


def normalize(frame: Frame, dims: str | Sequence[str] | None, how: str) -> Frame:
    """Scale each map over ``dims`` (default: the attribution's features).

    ``max``: divide by the largest absolute value; ``sum``: by the sum of absolute values;
    ``zscore``: subtract the mean, divide by the (population) standard deviation. A map that
    is all zeros stays zero.

    Examples
    --------
    >>> f = Frame(torch.tensor([[1., -3.], [0., 0.]]), ("sample", "x"), features=("x",))
    >>> normalize(f, None, "max").data
    tensor([[ 0.3333, -1.0000],
            [ 0.0000,  0.0000]])
    """
    names = _dims_of(frame, dims, frame.features)
    flat, order = _moved(frame, names)
    if how == "zscore":
        centred = flat - flat.mean(dim=-1, keepdim=True)
        scale = flat.std(dim=-1, keepdim=True, correction=0)
    else:
        centred = flat
        magnitude = flat.abs()
        scale = magnitude.amax(dim=-1, keepdim=True) if how == "max" else magnitude.sum(-1, True)
    out = torch.where(scale > 0, centred / torch.where(scale > 0, scale, 1), 0)
    return replace(frame, data=_restored(out, frame, order))


def topk_features(
    frame: Frame, k: int, dims: str | Sequence[str] | None, largest_abs: bool
) -> Frame:
    """Keep each map's ``k`` largest features over ``dims`` (by absolute value when
    ``largest_abs``, else by value); zero the rest.

    Examples
    --------
    >>> f = Frame(torch.tensor([[1., -3., 2.]]), ("sample", "x"), features=("x",))
    >>> topk_features(f, 2, None, True).data, topk_features(f, 2, None, False).data
    (tensor([[ 0., -3.,  2.]]), tensor([[1., 0., 2.]]))
    """
    names = _dims_of(frame, dims, frame.features)
    flat, order = _moved(frame, names)
    if k > flat.shape[-1]:
        raise ValueError(f"k: asked for {k} features, but each map has {flat.shape[-1]}")
    score = flat.abs() if largest_abs else flat
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep.scatter_(-1, score.topk(k, dim=-1).indices, True)
    return replace(frame, data=_restored(torch.where(keep, flat, 0), frame, order))


def group_reduce(frame: Frame, key: str, how: str) -> Frame:
    """Group samples by a per-sample coordinate (or column) and reduce each group.

    The group dim, named ``key``, takes the place of ``sample`` and holds the sorted
    distinct values, as with xarray's ``groupby(key).mean()``.

    Examples
    --------
    >>> f = Frame(torch.tensor([[1., 1.], [3., 3.], [5., 5.]]), ("sample", "x"),
    ...           {"label": (("sample",), np.array([1, 0, 1]))}, ("x",))
    >>> g = group_reduce(f, "label", "mean")
    >>> g.data, g.dims, g.coords["label"][1]
    (tensor([[3., 3.],
            [3., 3.]]), ('label', 'x'), array([0, 1]))
    """
    axis = frame.axis("sample", argument="groupby")
    if key in frame.coords and frame.coords[key][0] == ("sample",):
        values = np.asarray(frame.coords[key][1])
    elif key in frame.columns:
        column = frame.columns[key]
        values = column.cpu().numpy() if isinstance(column, torch.Tensor) else np.asarray(column)
    else:
        found = [k for k, c in frame.coords.items() if c[0] == ("sample",)]
        found += [k for k in frame.columns if k not in found]
        hint = _close(key, found)
        raise ValueError(
            f"groupby: no per-sample coordinate {key!r}; there are "
            f"{', '.join(map(repr, found))}.{hint}"
        )
    groups, inverse = np.unique(values, return_inverse=True)
    index = torch.as_tensor(inverse.reshape(-1), device=frame.data.device)
    shape = list(frame.data.shape)
    shape[axis] = len(groups)
    data = frame.data.new_zeros(shape).index_add_(axis, index, frame.data)
    if how == "mean":
        counts = torch.bincount(index, minlength=len(groups)).to(data.dtype)
        data = data / counts.reshape([-1] + [1] * (data.ndim - axis - 1))
    coords = {k: c for k, c in frame.coords.items() if "sample" not in c[0]}
    coords[key] = ((key,), groups)
    dims = tuple(key if d == "sample" else d for d in frame.dims)
    return replace(frame, data=data, dims=dims, coords=coords, columns={})
