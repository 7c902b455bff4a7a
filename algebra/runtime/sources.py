"""Inputs read chunk by chunk: a dask array (or an ``xarray.DataArray`` backed by one), or a
torch ``Dataset`` / ``DataLoader``.

A :class:`~algebra.ir.views.Source` over such inputs holds a :class:`LazyInputs` in its
``Ref`` instead of a tensor. It knows its shape and the model's dtype without reading
anything; the runtime reads the samples ``start:stop`` of a chunk where the chunk runs
(:func:`algebra.runtime.partition.chunk_graph` turns them into validated tensors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..kernels.checks import content_token


class LazyInputs:
    """Samples read on demand: ``read(start, stop)`` gives the inputs and labels of a chunk.

    ``shape`` is the whole data set's (``[N, ...]``), ``dtype`` the model's: inputs are
    converted chunk by chunk, as NumPy inputs are converted by ``model.on``. ``token``
    identifies the inputs in expression tokens, ``labels_token`` the labels (``None``
    without labels).
    """

    token: str
    labels_token: str | None
    shape: torch.Size
    dtype: torch.dtype
    device = torch.device("cpu")

    @property
    def ndim(self) -> int:
        """The number of dimensions, the batch included."""
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.shape)}, labels={self.labels_token is not None})"

    def read(self, start: int, stop: int) -> tuple[Any, Any]:
        """The raw inputs and labels (or ``None``) of the samples ``start:stop``."""
        raise NotImplementedError


class ArrayInputs(LazyInputs):
    """Inputs in a dask array ``[N, ...]``; labels in a dask array, a NumPy array or none.

    Examples
    --------
    >>> import dask.array as da
    >>> x = ArrayInputs(da.ones((10, 3), chunks=4), np.arange(10), torch.float32)
    >>> x.shape, x.token.startswith("dask:")
    (torch.Size([10, 3]), True)
    >>> raw, labels = x.read(2, 5)
    >>> raw.shape, labels.tolist()
    ((3, 3), [2, 3, 4])
    """

    def __init__(self, array: Any, labels: Any, dtype: torch.dtype):
        self.array = array
        self.labels = labels
        self.shape = torch.Size(array.shape)
        self.dtype = dtype
        self.token = f"dask:{array.name}"
        if labels is None:
            self.labels_token = None
        elif hasattr(labels, "__dask_graph__"):
            self.labels_token = f"dask:{labels.name}"
        else:
            self.labels_token = content_token(torch.as_tensor(labels))

    def read(self, start: int, stop: int) -> tuple[Any, Any]:
        """The chunk's inputs (computed with dask's default scheduler) and labels.

        Examples
        --------
        >>> import dask.array as da
        >>> x = ArrayInputs(da.arange(8, chunks=3).reshape(4, 2), None, torch.float32)
        >>> raw, labels = x.read(1, 3)
        >>> raw.tolist(), labels
        ([[2, 3], [4, 5]], None)
        """
        labels = None if self.labels is None else np.asarray(self.labels[start:stop])
        return np.asarray(self.array[start:stop]), labels

    def blocks(self, bounds: list[tuple[int, int]]) -> list[tuple[Any, Any]]:
        """The inputs and labels of each chunk ``(start, stop)``, as dask arrays (or NumPy
        slices): dask reads them where the chunk runs.

        Examples
        --------
        >>> import dask.array as da
        >>> x = ArrayInputs(da.zeros((5, 2), chunks=2), None, torch.float32)
        >>> [b[0].compute().shape for b in x.blocks([(0, 3), (3, 5)])]
        [(3, 2), (2, 2)]
        """
        # One delayed object per block, sharing one optimized graph (cheaper than a dask
        # array per block, each optimized on its own).
        sizes = tuple(stop - start for start, stop in bounds)
        array = self.array.rechunk({0: sizes, **{i: -1 for i in range(1, self.array.ndim)}})
        inputs = array.to_delayed().reshape(-1)
        labels = self.labels
        if labels is not None and hasattr(labels, "__dask_graph__"):
            labels = labels.rechunk({0: sizes}).to_delayed().reshape(-1)
            return list(zip(inputs, labels, strict=True))
        return [
            (inputs[i], None if labels is None else labels[start:stop])
            for i, (start, stop) in enumerate(bounds)
        ]


class DatasetInputs(LazyInputs):
    """A map-style torch ``Dataset`` of inputs, or of ``(input, label)`` pairs.

    Items are read in order and collated ``batch_size`` at a time (all of a chunk at once
    when ``None``) by ``collate`` (torch's ``default_collate`` unless a ``DataLoader``
    gave its own).

    Examples
    --------
    >>> from torch.utils.data import TensorDataset
    >>> d = DatasetInputs(TensorDataset(torch.rand(6, 3), torch.arange(6)), 4, None, torch.float32)
    >>> d.shape, d.labels_token is not None
    (torch.Size([6, 3]), True)
    >>> x, y = d.read(1, 6)
    >>> tuple(x.shape), y.tolist()
    ((5, 3), [1, 2, 3, 4, 5])
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None,
        collate: Callable[[list[Any]], Any] | None,
        dtype: torch.dtype,
    ):
        n = len(dataset)
        if n == 0:
            raise ValueError("inputs: the Dataset is empty")
        first = dataset[0]
        # An item is an input, an (input,) tuple (a TensorDataset of inputs) or a pair.
        self.arity = len(first) if isinstance(first, (tuple, list)) else 0
        if self.arity > 2:
            raise TypeError(
                f"inputs: expected Dataset items to be inputs or (input, label) pairs; got "
                f"{type(first).__name__}s of {len(first)} values"
            )
        x = first[0] if self.arity else first
        if not isinstance(x, (torch.Tensor, np.ndarray)):
            raise TypeError(
                f"inputs: expected Dataset items to hold tensors or NumPy arrays; got "
                f"{type(x).__name__}"
            )
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != dtype:
            raise TypeError(
                f"inputs: the Dataset's items are {x.dtype}, but the model's dtype is {dtype}; "
                f"convert them (e.g. in the Dataset) with .to({dtype})"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate = collate or torch.utils.data.default_collate
        self.shape = torch.Size((n, *x.shape))
        self.dtype = dtype
        self.token = f"dataset:{id(dataset)}:{n}:{type(dataset).__qualname__}"
        self.labels_token = f"{self.token}:labels" if self.arity == 2 else None

    def read(self, start: int, stop: int) -> tuple[Any, Any]:
        """The chunk's items, collated ``batch_size`` at a time and concatenated.

        Examples
        --------
        >>> from torch.utils.data import TensorDataset
        >>> d = DatasetInputs(TensorDataset(torch.arange(5.0)[:, None]), 2, None, torch.float32)
        >>> x, y = d.read(1, 4)
        >>> x[:, 0].tolist(), y
        ([1.0, 2.0, 3.0], None)
        """
        step = self.batch_size or (stop - start)
        inputs, labels = [], []
        for begin in range(start, stop, step):
            batch = self.collate([self.dataset[i] for i in range(begin, min(begin + step, stop))])
            x = batch[0] if self.arity else batch
            y = batch[1] if self.arity == 2 else None
            inputs.append(torch.as_tensor(x))
            if y is not None:
                labels.append(torch.as_tensor(y))
        return torch.cat(inputs), torch.cat(labels) if labels else None


def loader_inputs(loader: Any, dtype: torch.dtype) -> DatasetInputs:
    """The inputs of a ``DataLoader``: its dataset, batch size and collate function.

    Its samples are read in order, so a shuffled loader (or one with its own sampler) is
    refused: results are labelled by sample position.

    Examples
    --------
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> data = TensorDataset(torch.rand(6, 3))
    >>> loader_inputs(DataLoader(data, batch_size=4), torch.float32).batch_size
    4
    >>> loader_inputs(DataLoader(data, shuffle=True), torch.float32)
    Traceback (most recent call last):
    ValueError: inputs: the DataLoader shuffles or samples its data; results are labelled by sample position, so pass DataLoader(..., shuffle=False) or the Dataset itself
    """
    if isinstance(loader.dataset, torch.utils.data.IterableDataset):
        raise TypeError(
            "inputs: an IterableDataset cannot be read chunk by chunk; wrap a map-style "
            "Dataset (with __len__ and __getitem__)"
        )
    if type(loader.sampler) is not torch.utils.data.SequentialSampler:
        raise ValueError(
            "inputs: the DataLoader shuffles or samples its data; results are labelled by "
            "sample position, so pass DataLoader(..., shuffle=False) or the Dataset itself"
        )
    return DatasetInputs(loader.dataset, loader.batch_size, loader.collate_fn, dtype)


def is_lazy(value: Any) -> bool:
    """Whether a source's ``Ref`` value is read chunk by chunk (not a tensor).

    Examples
    --------
    >>> is_lazy(torch.zeros(2)), is_lazy(DatasetInputs([torch.zeros(2)], None, None, torch.float32))
    (False, True)
    """
    return isinstance(value, LazyInputs)
