"""Relational verbs on attributions: filters, selections, reductions and rescaling.

Each verb is an immutable node over another expression node; they run on the device after
the gradient passes, as part of the same computation (see :mod:`algebra.runtime.evaluate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import did_you_mean, positive_integer
from .columns import Predicate
from .node import Node

REDUCTIONS = ("mean", "sum")
NORMALIZATIONS = ("max", "sum", "zscore")
RANKINGS = ("abs", "value")


def _check_choice(value: Any, argument: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(
            f"{argument}: expected one of {', '.join(map(repr, choices))}; got {value!r}."
            + (did_you_mean(value, choices) if isinstance(value, str) else "")
        )
    return value


def as_dims(dim: Any, argument: str = "dim") -> tuple[str, ...] | None:
    """Dim names as a tuple (``None`` stays ``None``: all dims, or the default ones).

    Examples
    --------
    >>> as_dims("sample"), as_dims(["y", "x"]), as_dims(None)
    (('sample',), ('y', 'x'), None)
    """
    if dim is None:
        return None
    names = (dim,) if isinstance(dim, str) else tuple(dim) if hasattr(dim, "__iter__") else None
    if names is None or not all(isinstance(d, str) for d in names):
        raise TypeError(f"{argument}: expected a dim name or a list of names; got {dim!r}")
    return names


def as_indexers(indexers: dict[str, Any], verb: str) -> tuple[tuple[str, Any], ...]:
    """Indexers as a hashable tuple: slices become ``("slice", start, stop, step)``.

    Examples
    --------
    >>> as_indexers({"sample": [0, 2], "x": slice(1, 3)}, "isel")
    (('sample', (0, 2)), ('x', ('slice', 1, 3, None)))
    """
    if not indexers:
        raise TypeError(f"{verb}: expected at least one dim=value, e.g. {verb}(sample=0)")
    out = []
    for dim, value in indexers.items():
        if isinstance(value, slice):
            value = ("slice", value.start, value.stop, value.step)
        elif hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            value = value.tolist()  # NumPy and torch arrays and scalars
        if isinstance(value, list):
            value = tuple(value)
        out.append((dim, value))
    return tuple(out)


def unpacked(value: Any) -> Any:
    """An indexer as the kernels take it: slices and lists back from their tuple form.

    Examples
    --------
    >>> unpacked(("slice", 1, 3, None)), unpacked((0, 2)), unpacked(4)
    (slice(1, 3, None), [0, 2], 4)
    """
    if isinstance(value, tuple) and value and value[0] == "slice":
        return slice(*value[1:])
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True, eq=False)
class Where(Node):
    """The samples for which ``predicate`` holds."""

    child: Node
    predicate: Predicate
    op = "where"
    role = "verb"


@dataclass(frozen=True, eq=False)
class Select(Node):
    """``sel`` (by label; ``by_label``) or ``isel`` (by position) along named dims."""

    child: Node
    indexers: tuple[tuple[str, Any], ...]
    by_label: bool
    op = "select"
    role = "verb"


@dataclass(frozen=True, eq=False)
class Reduce(Node):
    """``mean`` or ``sum`` over ``dims`` (``None``: every dim)."""

    child: Node
    dims: tuple[str, ...] | None
    how: str
    op = "reduce"
    role = "verb"

    def validate(self) -> None:
        _check_choice(self.how, "how", REDUCTIONS)


@dataclass(frozen=True, eq=False)
class Abs(Node):
    """The absolute value of an attribution."""

    child: Node
    op = "abs"
    role = "verb"


@dataclass(frozen=True, eq=False)
class Normalize(Node):
    """Each map rescaled over ``dims`` (``None``: the attribution's features)."""

    child: Node
    how: str
    dims: tuple[str, ...] | None
    op = "normalize"
    role = "verb"

    def validate(self) -> None:
        _check_choice(self.how, "how", NORMALIZATIONS)


@dataclass(frozen=True, eq=False)
class TopKFeatures(Node):
    """Each map's ``k`` largest features kept, the rest zero; ranked ``by`` abs or value."""

    child: Node
    k: int
    dims: tuple[str, ...] | None
    by: str
    op = "topk_features"
    role = "verb"

    def validate(self) -> None:
        positive_integer(self.k, "k")
        _check_choice(self.by, "by", RANKINGS)


@dataclass(frozen=True, eq=False)
class GroupReduce(Node):
    """Samples grouped by the per-sample coordinate ``key``, each group reduced by ``how``."""

    child: Node
    key: str
    how: str
    op = "groupby"
    role = "verb"

    def validate(self) -> None:
        _check_choice(self.how, "how", REDUCTIONS)


@dataclass(frozen=True, eq=False)
class Square(Node):
    """The square of an attribution (SmoothGrad²: ``.square().mean("noise")``)."""

    child: Node
    op = "square"
    role = "verb"


@dataclass(frozen=True, eq=False)
class Variance(Node):
    """The population variance over ``dims`` (``None``: every dim): ``E[a^2] - E[a]^2``,
    as xarray's ``var`` (VarGrad: ``.var("noise")``)."""

    child: Node
    dims: tuple[str, ...] | None
    op = "var"
    role = "verb"


#: Every relational verb: tables register one entry for all of them where they agree.
VERBS = (Where, Select, Reduce, Abs, Normalize, TopKFeatures, GroupReduce, Square, Variance)
