"""Data given as a tensor, an ``(inputs, labels)`` pair, or an iterable of such batches.

The inputs of a model that takes several are a tuple (or list) of tensors, passed to its
forward in order, or a dict of tensors, passed by name; all have the samples first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

Inputs = torch.Tensor | tuple[torch.Tensor, ...] | dict[str, torch.Tensor]
Batch = tuple[Inputs, torch.Tensor | None]


def is_inputs(value: Any) -> bool:
    """Whether ``value`` is a model's inputs: a tensor, or a non-empty tuple, list or dict of
    tensors with the same number of rows.

    Examples
    --------
    >>> is_inputs(torch.zeros(2, 3)), is_inputs((torch.zeros(2, 3), torch.zeros(2)))
    (True, True)
    >>> is_inputs({"a": torch.zeros(2, 3), "b": torch.zeros(3)}), is_inputs("x")
    (False, False)
    """
    if isinstance(value, torch.Tensor):
        return True
    parts = _tensors(value)
    if parts is None or not all(t.ndim >= 1 for t in parts):
        return False
    return len({len(t) for t in parts}) == 1


def _tensors(value: Any) -> list[torch.Tensor] | None:
    """The tensors of a non-empty tuple, list or dict of tensors; ``None`` for anything else."""
    parts = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(parts, (tuple, list)) or not parts:
        return None
    return list(parts) if all(isinstance(t, torch.Tensor) for t in parts) else None


def rows_of(x: Inputs) -> int:
    """The number of samples in ``x``.

    Examples
    --------
    >>> rows_of({"a": torch.zeros(4, 2), "b": torch.zeros(4)})
    4
    """
    if isinstance(x, torch.Tensor):
        return len(x)
    return len(next(iter(x.values())) if isinstance(x, dict) else x[0])


def take(x: Inputs, rows: Any, device: torch.device | None = None) -> Inputs:
    """The samples ``rows`` (a slice or an index tensor) of ``x``, on ``device`` if given.

    Examples
    --------
    >>> a, b = take((torch.arange(4.0), torch.arange(4)), slice(1, 3))
    >>> a.tolist(), b.tolist()
    ([1.0, 2.0], [1, 2])
    """

    def one(t: torch.Tensor) -> torch.Tensor:
        t = t[rows]
        return t if device is None else t.to(device)

    if isinstance(x, torch.Tensor):
        return one(x)
    if isinstance(x, dict):
        return {k: one(t) for k, t in x.items()}
    return tuple(one(t) for t in x)


def call(module: torch.nn.Module, x: Inputs) -> Any:
    """``module``'s forward on ``x``: a tensor, the tensors of a tuple in order, or those of a
    dict by name.

    Examples
    --------
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a - b
    >>> call(Two(), {"b": torch.ones(1), "a": torch.zeros(1)}).tolist()
    [-1.0]
    """
    if isinstance(x, torch.Tensor):
        return module(x)
    if isinstance(x, dict):
        return module(**x)
    return module(*x)


def batches(data: Any, batch_size: int = 256, argument: str = "data") -> Iterator[Batch]:
    """Yield ``(inputs, labels or None)`` batches from any accepted form of ``data``.

    ``data`` is a tensor of inputs, a pair ``(inputs, labels)`` with the same first
    dimension (cut into ``batch_size`` rows; the inputs of a model that takes several are a
    tuple or dict of tensors, and the labels may be ``None``), or an iterable (a
    DataLoader) yielding tensors or ``(inputs, labels, ...)`` sequences, passed on as they
    come.

    Examples
    --------
    >>> [tuple(x.shape) for x, _ in batches(torch.zeros(5, 2), batch_size=2)]
    [(2, 2), (2, 2), (1, 2)]
    >>> [y.tolist() for _, y in batches((torch.zeros(3, 2), torch.tensor([0, 1, 2])), 2)]
    [[0, 1], [2]]
    >>> [type(x).__name__ for x, _ in batches(((torch.zeros(3, 2), torch.zeros(3)), None), 2)]
    ['tuple', 'tuple']
    >>> next(batches("images"))
    Traceback (most recent call last):
    TypeError: data: expected a tensor, an (inputs, labels) pair of tensors, or an iterable of such batches; got str
    """
    if isinstance(data, torch.Tensor):
        for rows in torch.arange(len(data)).split(batch_size):
            yield data[rows], None
        return
    if _is_pair(data):
        x, y = data
        if not is_inputs(x):
            rows = [len(t) if t.ndim else 0 for t in _tensors(x) or ()]
            raise ValueError(
                f"{argument}: the inputs have {rows} rows; "
                "each of a model's inputs needs one row per sample"
            )
        n = rows_of(x)
        if y is not None and n != len(y):
            raise ValueError(
                f"{argument}: inputs have {n} rows but labels have {len(y)}; "
                "pass an (inputs, labels) pair of the same length"
            )
        for rows in torch.arange(n).split(batch_size):
            yield take(x, rows), None if y is None else y[rows]
        return
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(
            f"{argument}: expected a tensor, an (inputs, labels) pair of tensors, or an "
            f"iterable of such batches; got {type(data).__name__}"
        )
    if iter(data) is data:
        raise TypeError(
            f"{argument}: a one-shot iterator cannot be read more than once; pass a DataLoader, "
            "a list of batches, or an (inputs, labels) pair"
        )
    for batch in data:
        if isinstance(batch, torch.Tensor):
            yield batch, None
        elif isinstance(batch, (tuple, list)) and batch and is_inputs(batch[0]):
            labels = batch[1] if len(batch) > 1 else None
            yield batch[0], labels
        else:
            raise TypeError(
                f"{argument}: each batch must be a tensor or an (inputs, labels) sequence; "
                f"got {type(batch).__name__}"
            )


def first_inputs(data: Any, argument: str = "data") -> Inputs:
    """The first few inputs of ``data``, to run the model once and find its decision layer.

    Examples
    --------
    >>> first_inputs((torch.zeros(20, 3), torch.zeros(20))).shape
    torch.Size([8, 3])
    """
    for x, _ in batches(data, 8, argument):
        return x
    raise ValueError(f"{argument}: no samples")


def _is_pair(data: Any) -> bool:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        return False
    x, y = data
    if isinstance(x, torch.Tensor):  # (inputs, labels): else a list of two batches
        return isinstance(y, torch.Tensor) and y.ndim == 1
    labels = y is None or (isinstance(y, torch.Tensor) and y.ndim == 1)
    return labels and _tensors(x) is not None
