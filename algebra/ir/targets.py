"""Targets: which output of the model an attribution explains.

A target is an immutable spec. ``int``, one int per sample, ``"pred"``, ``"label"`` and a
callable give one attribution per sample; :func:`topk`, ``"all"`` and :func:`classes`
expand into a ``target`` dimension. Units of a layer (:func:`unit`, :func:`units`) are
targets too: the layer's activation, not the model's output, is explained (``units``
expands into a ``unit`` dimension).
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
    ``classes``, ``fn``, ``unit`` or ``units`` (``value = (layer, which, count)``, the count
    known once the layer's shape is), or ``none`` (methods that explain no output).
    """

    kind: str
    value: int | tuple[int, ...] | Ref | None = None

    @property
    def token(self) -> str:
        value = self.value.token if isinstance(self.value, Ref) else repr(self.value)
        return f"target:{self.kind}:{value}"

    @property
    def expands(self) -> bool:
        """Whether the target adds a ``target`` (or ``unit``) dimension."""
        return self.kind in ("topk", "all", "classes", "units")

    @property
    def dim(self) -> str:
        """The name of the dimension an expanding target adds.

        Examples
        --------
        >>> topk(2).dim, units("b3").dim
        ('target', 'unit')
        """
        return "unit" if self.kind == "units" else "target"

    @property
    def layer(self) -> str | None:
        """The layer whose units are the target (``None`` for the model's outputs)."""
        return self.value[0] if self.kind in ("unit", "units") else None  # type: ignore[index]

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
        if self.kind in ("unit", "units"):
            return _describe_units(self)
        if self.kind == "none":
            return "none"
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


def _describe_units(target: Target) -> str:
    layer, which = target.value[0], target.value[1]  # type: ignore[index]
    if target.kind == "units" and which == "all":
        return f"units({layer!r})"
    if isinstance(which, Ref):
        shown = getattr(which.value, "__qualname__", type(which.value).__name__)
    else:
        shown = repr(list(which) if target.kind == "units" else which)
    return f"{target.kind}({layer!r}, {shown})"


def _check_layer(layer: Any) -> str:
    if not isinstance(layer, str):
        raise TypeError(f"layer: expected a layer name (str); got {type(layer).__name__}")
    return layer


def _unit_index(index: Any) -> int | tuple:
    """One unit: an int (a channel) or an index tuple of ints and slices."""
    entries = index if isinstance(index, tuple) else (index,)
    for entry in entries:
        if not isinstance(entry, slice) and (
            isinstance(entry, bool) or not hasattr(entry, "__index__")
        ):
            raise TypeError(
                "unit: expected an int (a channel), a tuple of ints and slices, or a callable; "
                f"got {index!r}"
            )
    plain = tuple(e if isinstance(e, slice) else int(e.__index__()) for e in entries)
    return plain if isinstance(index, tuple) else plain[0]


def _callable(fn: Any) -> Ref:
    return Ref(fn, f"fn:{id(fn)}:{getattr(fn, '__qualname__', type(fn).__name__)}")


def unit(layer: str, index: Any) -> Target:
    """One unit of a layer as the target: its activation, not the model's output, is explained.

    ``index`` is an int (a channel, summed over the rest of its dims), a tuple of ints and
    slices into one sample's activation (what a slice selects is summed), or a callable
    mapping the activation ``[N, ...]`` to scores ``[N]`` (Captum's neuron selectors).
    The index is checked against the layer's shape when a method uses the target.

    Examples
    --------
    >>> unit("b3", 4), unit("b3", (0, 2, 3))
    (unit('b3', 4), unit('b3', (0, 2, 3)))
    >>> unit("b3", 1.5)
    Traceback (most recent call last):
    TypeError: unit: expected an int (a channel), a tuple of ints and slices, or a callable; got 1.5
    """
    layer = _check_layer(layer)
    which: Any = _callable(index) if callable(index) else _unit_index(index)
    return Target("unit", (layer, which, 1))


def units(layer: str, which: Any = "all") -> Target:
    """Several units of a layer as targets, along a ``unit`` dimension.

    ``which`` is ``"all"`` (every channel, each summed over the rest of its dims), a list
    of units (ints and index tuples, as :func:`unit`), or a callable mapping the activation
    ``[N, ...]`` to scores ``[N, U]``. Every unit comes out of one batched backward.

    Examples
    --------
    >>> units("b3"), units("b3", [1, (0, 2, 3)])
    (units('b3'), units('b3', [1, (0, 2, 3)]))
    >>> units("b3", [])
    Traceback (most recent call last):
    ValueError: units: expected 'all', a callable or a non-empty list of units; got []
    """
    layer = _check_layer(layer)
    if callable(which):
        return Target("units", (layer, _callable(which), None))
    if which == "all":
        return Target("units", (layer, "all", None))
    if isinstance(which, (str, bytes)) or not isinstance(which, Sequence) or not which:
        raise ValueError(
            f"units: expected 'all', a callable or a non-empty list of units; got {which!r}"
        )
    chosen = tuple(_unit_index(u) for u in which)
    return Target("units", (layer, chosen, len(chosen)))


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
