"""Targets of sequence scores ``[N, L, V]``: a class at a position, or the tokens a model
generated, each at the position that chose it.

``ia.at(position, class)`` names the position in the target (``value = (position,
classes, length, vocabulary)``; length and vocabulary are ``None`` until a method checks
the target on its model's scores, when the position is also counted from the start).
Generated tokens (``value = (tokens, prompt, vocabulary)``, ``tokens`` a ``Ref`` to
``[N, steps]``) come from ``q.generated(steps)`` and add a ``step`` dim.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .targets import Target, _class_index

SEQUENCE_KINDS = ("at", "generated")


def at(position: int, classes: int | Sequence[int]) -> Target:
    """The score of class ``classes`` at ``position`` of a model's sequence scores
    ``[N, L, V]``, as the target (a list of classes adds a ``target`` dim).

    ``position`` counts from 0, or from the end when negative (``-1``: the last position,
    whose scores predict the next token). Every position and class of every such target
    comes out of one forward and one batched backward.

    Examples
    --------
    >>> at(-1, 42), at(3, [1, 2])
    (at(-1, 42), at(3, [1, 2]))
    >>> at(1.5, 2)
    Traceback (most recent call last):
    TypeError: position: expected an int (negative counts from the end); got 1.5
    """
    if isinstance(position, bool) or not hasattr(position, "__index__"):
        raise TypeError(
            f"position: expected an int (negative counts from the end); got {position!r}"
        )
    if isinstance(classes, (list, tuple)) or hasattr(classes, "tolist"):
        values: Any = tuple(
            _class_index(c, "classes") for c in getattr(classes, "tolist", lambda: classes)()
        )
        if not values:
            raise ValueError("classes: expected at least one class index")
        if len(set(values)) != len(values):
            raise ValueError(f"classes: each class may appear once; got {list(values)}")
    else:
        values = _class_index(classes, "classes")
    return Target("at", (int(position.__index__()), values, None, None))
