"""Immutable logical expression nodes, validated at construction and structurally hashed.

A node's ``token`` is a digest of its type and fields, so two nodes built the same way
from the same data are equal and are computed once. Nodes hold data (tensors, modules,
callables) only through :class:`Ref`, whose token is computed by the layer that made it:
this module never touches torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True, eq=False)
class Ref:
    """A reference to an opaque object (tensor, module, callable) with a precomputed token.

    Examples
    --------
    >>> Ref(object(), "abc").token
    'abc'
    """

    value: Any = field(repr=False)
    token: str

    def __hash__(self) -> int:
        return hash(self.token)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.token == self.token


def tokenize(value: Any) -> str:
    """Deterministic token of a field value (nodes, refs, scalars, tuples).

    Examples
    --------
    >>> tokenize((1, "a", None)) == tokenize((1, "a", None))
    True
    >>> tokenize(1) == tokenize(1.0)
    False
    """
    if isinstance(getattr(value, "token", None), str):  # nodes, refs, targets
        return value.token
    if isinstance(value, tuple):
        return "(" + ",".join(tokenize(v) for v in value) + ")"
    if value is None or isinstance(value, (bool, int, float, str)):
        return f"{type(value).__name__}:{value!r}"
    raise TypeError(f"cannot tokenize a node field of type {type(value).__name__}")


class Node:
    """Base of all logical nodes: frozen dataclasses with a structural token.

    Subclasses are declared ``@dataclass(frozen=True, eq=False)``, list their child nodes
    in ``children`` and validate in ``validate``.
    """

    token: str
    op: ClassVar[str] = "node"

    def __post_init__(self) -> None:
        self.validate()
        parts = [type(self).__name__] + [tokenize(getattr(self, f.name)) for f in fields(self)]
        digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
        object.__setattr__(self, "token", f"{self.op}-{digest}")

    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError`` if the fields are inconsistent."""

    @property
    def children(self) -> tuple[Node, ...]:
        return tuple(
            getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), Node)
        )

    def __hash__(self) -> int:
        return hash(self.token)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.token == self.token  # type: ignore[attr-defined]

    def walk(self) -> list[Node]:
        """All nodes of this expression, children before parents, each once."""
        seen: dict[str, Node] = {}

        def visit(node: Node) -> None:
            if node.token in seen:
                return
            for child in node.children:
                visit(child)
            seen[node.token] = node

        visit(self)
        return list(seen.values())
