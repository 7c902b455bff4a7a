"""Inputs beyond a tensor for ``Model.on``: a torch ``Dataset`` or ``DataLoader``, a dask
array, or an ``xarray.DataArray`` (its dims, sample ids and labels come along).

Lazy inputs become a :class:`~algebra.runtime.sources.LazyInputs` in the source's ``Ref``:
nothing is read until a computation reads a chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..errors import positive_integer
from ..kernels.checks import as_labels
from ..runtime.sources import ArrayInputs, DatasetInputs, LazyInputs, loader_inputs


def is_dask(value: Any) -> bool:
    """Whether ``value`` is a dask array (without importing dask).

    Examples
    --------
    >>> import dask.array as da
    >>> is_dask(da.ones(3)), is_dask(np.ones(3))
    (True, False)
    """
    return hasattr(value, "__dask_graph__") and hasattr(value, "chunks")


def unlabelled_xarray(
    inputs: xr.DataArray, labels: Any, ids: Any, dims: Sequence[str] | None
) -> tuple[Any, Any, Any, Any]:
    """An ``xarray.DataArray``'s data (its first dim is the samples), with the ``labels``,
    ``ids`` and ``dims`` it implies unless given: the other dims' names, the first dim's
    index, its ``label`` coordinate (``labels`` may name another coordinate).

    Examples
    --------
    >>> a = xr.DataArray(np.zeros((3, 2)), dims=("image", "band"),
    ...                  coords={"image": ["a", "b", "c"], "label": ("image", [1, 0, 1])})
    >>> data, labels, ids, dims = unlabelled_xarray(a, None, None, None)
    >>> data.shape, np.asarray(labels).tolist(), ids, dims
    ((3, 2), [1, 0, 1], ['a', 'b', 'c'], ('band',))
    """
    first = inputs.dims[0]
    if isinstance(labels, str):
        coord = inputs.coords.get(labels)
        if coord is None or coord.dims != (first,):
            along = [str(k) for k, c in inputs.coords.items() if c.dims == (first,)]
            raise ValueError(
                f"labels: the DataArray has no coordinate {labels!r} along {first!r}; "
                f"it has {along}"
            )
        labels = coord.data
    elif labels is None and "label" in inputs.coords and inputs.coords["label"].dims == (first,):
        labels = inputs.coords["label"].data
    if ids is None and first in inputs.indexes:
        ids = inputs.indexes[first].tolist()
    if dims is None:
        dims = tuple(str(d) for d in inputs.dims[1:])
    return inputs.data, labels, ids, dims


def lazy_inputs(
    inputs: Any,
    labels: Any,
    batch_size: int | None,
    dtype: torch.dtype | None,
    num_classes: int | None,
) -> LazyInputs | None:
    """The lazy inputs ``inputs`` describe (a Dataset, DataLoader or dask array), or
    ``None`` for in-memory inputs.

    Examples
    --------
    >>> import dask.array as da
    >>> lazy_inputs(da.zeros((8, 3), chunks=4), None, None, torch.float32, None)
    ArrayInputs([8, 3], labels=False)
    >>> lazy_inputs(np.zeros((8, 3)), None, None, torch.float32, None) is None
    True
    >>> lazy_inputs(np.zeros((8, 3)), None, 4, torch.float32, None)
    Traceback (most recent call last):
    TypeError: batch_size: only for a torch Dataset (a DataLoader has its own); got ndarray inputs
    """
    dataset = isinstance(inputs, torch.utils.data.Dataset)
    if batch_size is not None and not dataset:
        raise TypeError(
            "batch_size: only for a torch Dataset (a DataLoader has its own); got "
            f"{type(inputs).__name__} inputs"
        )
    dtype = dtype or torch.get_default_dtype()
    if isinstance(inputs, torch.utils.data.DataLoader):
        found: LazyInputs = loader_inputs(inputs, dtype)
    elif dataset:
        if isinstance(inputs, torch.utils.data.IterableDataset):
            raise TypeError(
                "inputs: an IterableDataset cannot be read chunk by chunk; pass a map-style "
                "Dataset (with __len__ and __getitem__)"
            )
        size = None if batch_size is None else positive_integer(batch_size, "batch_size")
        found = DatasetInputs(inputs, size, None, dtype)
    elif is_dask(inputs):
        return _array_inputs(inputs, labels, dtype, num_classes)
    else:
        return None
    if labels is not None:
        raise TypeError(
            "labels: a Dataset's labels come with its items, as (input, label) pairs; "
            "yield pairs instead of passing labels="
        )
    return found


def _array_inputs(
    array: Any, labels: Any, dtype: torch.dtype, num_classes: int | None
) -> ArrayInputs:
    if array.ndim < 2:
        raise ValueError(
            f"inputs: expected a batch [N, ...] with at least 2 dimensions; got shape {array.shape}"
        )
    if any(np.isnan(s) for s in array.shape):
        raise ValueError(
            "inputs: the dask array's shape is unknown (NaN); call "
            "array.compute_chunk_sizes() first"
        )
    if array.shape[0] == 0:
        raise ValueError("inputs: the batch is empty (N = 0)")
    if array.dtype.kind != "f":
        raise TypeError(f"inputs: expected a floating-point array; got dtype {array.dtype}")
    n = array.shape[0]
    if labels is not None and is_dask(labels):
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(
                f"labels: expected {n} labels, one per input sample; got {labels.shape}"
            )
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels: expected integers, one per sample; got {labels.dtype} values")
    elif labels is not None:  # small: checked now
        labels = as_labels(labels, n, num_classes).numpy()
    return ArrayInputs(array, labels, dtype)
