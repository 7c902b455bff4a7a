"""Targets: which output of the model an attribution explains.

A target is an immutable spec. ``int``, one int per sample, ``"pred"``, ``"label"`` and a
callable give one attribution per sample; :func:`topk`, ``"all"`` and :func:`classes`
expand into a ``target`` dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import positive_integer, shown_int, unknown_name
from .node import Ref

NAMED = ("pred", "label", "all")
MAX_CLASS = 2**63


@dataclass(frozen=True)
class Target:
    """A resolved target spec; build one with :func:`as_target`, :func:`topk` or :func:`classes`.

    ``kind`` is one of ``index``, ``per_sample``, ``pred``, ``label``, ``topk``, ``all``,
    ``classes`` or ``fn``.
    """

    kind: str
    value: int | tuple[int, ...] | Ref | None = None

    @property
    def token(self) -> str:
        value = self.value.token if isinstance(self.value, Ref) else repr(self.value)
        return f"target:{self.kind}:{value}"

    @property
    def expands(self) -> bool:
        """Whether the target adds a ``target`` dimension."""
        return self.kind in ("topk", "all", "classes")

    def __repr__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """Short text of the target, as a user would write it.

        Examples
        --------
        >>> topk(3).describe(), as_target("pred").describe(), as_target(4).describe()
        ('topk(3)', "'pred'", '4')
        """
        if self.kind in NAMED:
            return repr(self.kind)
        if self.kind == "topk":
            return f"topk({self.value})"
        if self.kind == "classes":
            return f"classes({list(self.value)})"  # type: ignore[arg-type]
        if self.kind == "fn":
            fn = self.value.value  # type: ignore[union-attr]
            return getattr(fn, "__qualname__", type(fn).__name__)
        if self.kind == "per_sample":
            values = list(self.value)  # type: ignore[arg-type]
            if len(values) > 8:  # keep plans and attributes readable for large batches
                return f"per-sample[{', '.join(map(str, values[:6]))}, ... ({len(values)} samples)]"
            return f"per-sample{values}"
        return str(self.value)

    def check(self, n: int, num_classes: int | None, has_labels: bool) -> None:
        """Check the target against ``n`` samples and (when known) the number of classes.

        Examples
        --------
        >>> as_target("label").check(4, 10, has_labels=False)
        Traceback (most recent call last):
        ValueError: target: 'label' needs labels; pass them with model.on(inputs, labels=...)
        """
        if self.kind == "label" and not has_labels:
            raise ValueError(
                "target: 'label' needs labels; pass them with model.on(inputs, labels=...)"
            )
        if self.kind == "per_sample" and len(self.value) != n:  # type: ignore[arg-type]
            raise ValueError(
                f"target: expected one class per sample ({n}); got {len(self.value)}"  # type: ignore[arg-type]
            )
        if num_classes is None:
            return
        if self.kind == "topk" and self.value > num_classes:  # type: ignore[operator]
            raise ValueError(
                f"target: topk({self.value}) asks for more than the {num_classes} classes"
            )
        wanted = {"index": (self.value,), "per_sample": self.value, "classes": self.value}.get(
            self.kind, ()
        )
        for c in wanted:  # type: ignore[union-attr]
            if c >= num_classes:
                raise ValueError(
                    f"target: class {c} is out of range for {num_classes} classes "
                    f"(expected 0..{num_classes - 1})"
                )


def _class_index(value: Any, argument: str = "target") -> int:
    floating = getattr(value, "is_floating_point", lambda: False)() or isinstance(value, float)
    if isinstance(value, bool) or floating or not hasattr(value, "__index__"):
        raise TypeError(f"{argument}: expected an integer class index; got {value!r}")
    index = int(value.__index__())
    if index < 0:
        raise ValueError(f"{argument}: expected a class index >= 0; got {shown_int(index)}")
    if index >= MAX_CLASS:  # no tensor of classes can be indexed there
        raise ValueError(
            f"{argument}: class {shown_int(index)} is out of range (a class index is below 2^63)"
        )
    return index


def topk(k: int) -> Target:
    """The ``k`` most likely classes of each sample, ranked: adds a ``target`` dimension.

    Examples
    --------
    >>> topk(2)
    topk(2)
    >>> topk(0)
    Traceback (most recent call last):
    ValueError: k: expected an integer >= 1; got 0
    """
    return Target("topk", positive_integer(k, "k"))


def classes(indices: Sequence[int]) -> Target:
    """An explicit list of classes, each attributed for every sample: adds a ``target`` dimension.

    Examples
    --------
    >>> classes([3, 5])
    classes([3, 5])
    """
    values = tuple(_class_index(i, "classes") for i in _as_sequence(indices, "classes"))
    if not values:
        raise ValueError("classes: expected at least one class index")
    if len(set(values)) != len(values):
        raise ValueError(f"classes: each class may appear once; got {list(values)}")
    return Target("classes", values)


def _as_sequence(value: Any, argument: str) -> list[Any]:
    if hasattr(value, "tolist"):  # tensors and arrays, without importing torch here
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{argument}: expected a sequence of integers; got {type(value).__name__}")
    return list(value)


def as_target(target: Any) -> Target:
    """Normalise anything a user may pass as ``target`` into a :class:`Target`.

    Examples
    --------
    >>> as_target(3), as_target("all"), as_target([1, 0])
    (3, 'all', per-sample[1, 0])
    >>> as_target("predd")
    Traceback (most recent call last):
    ValueError: target: unknown value 'predd'; expected one of 'pred', 'label', 'all'. Did you mean 'pred'?
    """
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        if target not in NAMED:
            raise unknown_name("target", target, NAMED)
        return Target(target)
    if callable(target) and not hasattr(target, "tolist"):
        return Target("fn", Ref(target, f"fn:{id(target)}"))
    if getattr(target, "ndim", None) == 0 or isinstance(target, (int, float)):
        return Target("index", _class_index(target))
    values = tuple(_class_index(v) for v in _as_sequence(target, "target"))
    return Target("per_sample", values)
