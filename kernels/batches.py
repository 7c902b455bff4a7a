"""Data given as a tensor, an ``(inputs, labels)`` pair, or an iterable of such batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

Batch = tuple[torch.Tensor, torch.Tensor | None]


def batches(data: Any, batch_size: int = 256, argument: str = "data") -> Iterator[Batch]:
    """Yield ``(inputs, labels or None)`` batches from any accepted form of ``data``.

    ``data`` is a tensor of inputs, a pair ``(inputs, labels)`` of tensors with the same
    first dimension (cut into ``batch_size`` rows), or an iterable (a DataLoader) yielding
    tensors or ``(inputs, labels, ...)`` sequences, passed on as they come.

    Examples
    --------
    >>> [tuple(x.shape) for x, _ in batches(torch.zeros(5, 2), batch_size=2)]
    [(2, 2), (2, 2), (1, 2)]
    >>> [y.tolist() for _, y in batches((torch.zeros(3, 2), torch.tensor([0, 1, 2])), 2)]
    [[0, 1], [2]]
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
        if len(x) != len(y):
            raise ValueError(
                f"{argument}: inputs have {len(x)} rows but labels have {len(y)}; "
                "pass an (inputs, labels) pair of the same length"
            )
        for rows in torch.arange(len(x)).split(batch_size):
            yield x[rows], y[rows]
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
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
            labels = batch[1] if len(batch) > 1 else None
            yield batch[0], labels
        else:
            raise TypeError(
                f"{argument}: each batch must be a tensor or an (inputs, labels) sequence; "
                f"got {type(batch).__name__}"
            )


def first_inputs(data: Any, argument: str = "data") -> torch.Tensor:
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
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
        and data[1].ndim == 1
    )
