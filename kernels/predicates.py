"""Per-sample predicates (``where``) evaluated on a frame's columns, on the device."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .frame import Frame, isel


def evaluate(predicate: Any, columns: dict[str, Any], n: int, device: torch.device) -> torch.Tensor:
    """A boolean ``[N]`` mask from a lowered predicate over per-sample ``columns``.

    A lowered predicate is a tuple: ``("col", name)``, ``("lit", value)``,
    ``("cmp", op, left, right)``, ``("in", left, values)``, ``("and", a, b)``,
    ``("or", a, b)`` or ``("not", a)``.

    Examples
    --------
    >>> cols = {"pred": torch.tensor([1, 2, 3]), "label": torch.tensor([1, 0, 3])}
    >>> evaluate(("cmp", "!=", ("col", "pred"), ("col", "label")), cols, 3, torch.device("cpu"))
    tensor([False,  True, False])
    """
    kind = predicate[0]
    if kind == "and":
        return evaluate(predicate[1], columns, n, device) & evaluate(
            predicate[2], columns, n, device
        )
    if kind == "or":
        return evaluate(predicate[1], columns, n, device) | evaluate(
            predicate[2], columns, n, device
        )
    if kind == "not":
        return ~evaluate(predicate[1], columns, n, device)
    if kind == "in":
        left = _operand(predicate[1], columns, device)
        hits = [left == _operand(("lit", v), columns, device) for v in predicate[2]]
        return torch.stack([torch.as_tensor(h, device=device).reshape(n) for h in hits]).any(0)
    if kind == "cmp":
        op = predicate[1]
        left = _operand(predicate[2], columns, device)
        right = _operand(predicate[3], columns, device)
        result = {
            "=": lambda: left == right,
            "!=": lambda: left != right,
            "<": lambda: left < right,
            "<=": lambda: left <= right,
            ">": lambda: left > right,
            ">=": lambda: left >= right,
        }[op]()
        return torch.as_tensor(result, device=device).reshape(n).bool()
    value = _operand(predicate, columns, device)
    return torch.as_tensor(value, device=device).reshape(n).bool()


def _operand(term: Any, columns: dict[str, Any], device: torch.device) -> Any:
    if term[0] == "lit":
        return term[1]
    name = term[1]
    if name not in columns:
        raise ValueError(
            f"where: the column {name!r} is not available here"
            + (
                "; the inputs have no labels (pass labels=...)"
                if name in ("label", "correct")
                else ""
            )
        )
    value = columns[name]
    if name == "id":  # ids may be strings: compare on the host, as a boolean array
        return _HostColumn(np.asarray(value), device)
    return value


class _HostColumn:
    """Sample ids (numbers or strings) compared on the host, giving device masks."""

    def __init__(self, values: np.ndarray, device: torch.device):
        self.values = values
        self.device = device

    def _mask(self, result: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(result, dtype=bool), device=self.device)

    def __eq__(self, other: object) -> torch.Tensor:  # type: ignore[override]
        return self._mask(self.values == other)

    def __ne__(self, other: object) -> torch.Tensor:  # type: ignore[override]
        return self._mask(self.values != other)

    def __lt__(self, other: Any) -> torch.Tensor:
        return self._mask(self.values < other)

    def __le__(self, other: Any) -> torch.Tensor:
        return self._mask(self.values <= other)

    def __gt__(self, other: Any) -> torch.Tensor:
        return self._mask(self.values > other)

    def __ge__(self, other: Any) -> torch.Tensor:
        return self._mask(self.values >= other)

    __hash__ = None  # type: ignore[assignment]


def keep_samples(frame: Frame, mask: torch.Tensor) -> Frame:
    """The samples where ``mask`` is true.

    Examples
    --------
    >>> f = Frame(torch.arange(3.), ("sample",), {"sample": (("sample",), np.arange(3))})
    >>> keep_samples(f, torch.tensor([True, False, True])).coords["sample"][1]
    array([0, 2])
    """
    chosen = torch.nonzero(mask).reshape(-1).cpu().numpy()
    return isel(frame, {"sample": chosen})
