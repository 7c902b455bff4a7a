"""Labels of attributions whose target names a position of sequence scores.

The kernels differentiate the flattened scores ``[N, L * V]``: the class attributed comes
back as ``position * V + class``. Here it becomes the ``class`` coordinate and a
``position`` coordinate, and the per-sample columns (``pred``, ``score``) read the scores
at the position explained (the first generated token's, for generation steps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.sequence import SEQUENCE_KINDS
from ..ir.targets import Target


def _vocabulary(target: Target) -> int:
    return int(target.value[3] if target.kind == "at" else target.value[2])  # type: ignore[index]


def position_scores(target: Target, logits: Any) -> Any:
    """The scores ``[N, V]`` at the position a sequence target explains (other targets:
    ``logits`` as they are).

    Examples
    --------
    >>> import torch
    >>> from algebra.ir.sequence import at
    >>> logits = torch.arange(12.0).reshape(1, 12)            # L = 3 positions, V = 4
    >>> position_scores(Target("at", (1, 2, 3, 4)), logits).tolist()
    [[4.0, 5.0, 6.0, 7.0]]
    """
    if target.kind not in SEQUENCE_KINDS:
        return logits
    vocabulary = _vocabulary(target)
    position = target.value[0] if target.kind == "at" else target.value[1] - 1  # type: ignore[index]
    return logits.reshape(logits.shape[0], -1, vocabulary)[:, position]


def sequence_classes(target: Target, classes: np.ndarray | None) -> np.ndarray | None:
    """The classes attributed, ``[T, N]``, out of their flattened columns.

    Examples
    --------
    >>> sequence_classes(Target("at", (1, 2, 3, 4)), np.array([[6, 6]]))
    array([[2, 2]])
    """
    if classes is None or target.kind not in SEQUENCE_KINDS:
        return classes
    return classes % _vocabulary(target)


def position_coords(target: Target) -> dict[str, Any]:
    """The ``position`` coordinate (and ``step``'s labels) of a sequence target.

    Examples
    --------
    >>> position_coords(Target("at", (1, 2, 3, 4)))
    {'position': ((), array(1))}
    """
    if target.kind == "at":
        return {"position": ((), np.asarray(target.value[0]))}  # type: ignore[index]
    if target.kind == "generated":
        prompt, steps = target.value[1], target.value[0].value.shape[1]  # type: ignore[index, union-attr]
        return {
            "step": (("step",), np.arange(steps)),
            "position": (("step",), np.arange(prompt - 1, prompt - 1 + steps)),
        }
    return {}
