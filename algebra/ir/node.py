"""Immutable logical expression nodes, validated at construction and structurally hashed.

A node's ``token`` is a digest of its type and fields, so two nodes built the same way
from the same data are equal and are computed once. Nodes hold data (tensors, modules,
callables) only through :class:`Ref`, whose token is computed by the layer that made it:
this module never touches torch.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
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
    # ``view``: what an attribution reads (source, edit, layer, window); ``computed``: what
    # compute() returns (attributions, joins); ``verb``: relational verbs (computed too).
    role: ClassVar[str] = "computed"

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
        """All nodes of this expression, children before parents, each once.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
        >>> [n.op for n in q.saliency(0).abs().node.walk()]
        ['source', 'attribution', 'abs']
        """
        return walk([self])


def walk(roots: Iterable[Node]) -> list[Node]:
    """Every node reachable from ``roots``, children before parents, each once.

    The one traversal of an expression graph: everything a computation needs to know of its
    graph (attributions, tensors, models) is read off this list.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> m = ia.model(torch.nn.Linear(4, 3).eval())
    >>> a, b = m.on(torch.rand(2, 4)).saliency(0), m.on(torch.rand(2, 4)).saliency(1)
    >>> [n.op for n in walk([a.join(b).node, a.node])]
    ['source', 'attribution', 'source', 'attribution', 'join']
    """
    seen: dict[str, Node] = {}
    # An explicit stack: deep chains of verbs must not hit Python's recursion limit.
    stack: list[tuple[Node, bool]] = [(root, False) for root in reversed(list(roots))]
    while stack:
        node, expanded = stack.pop()
        if node.token in seen:
            continue
        if expanded:
            seen[node.token] = node
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.children))
    return list(seen.values())


# Every dispatch table, by concern: (table, the role of the node types it covers).
TABLES: dict[str, tuple[Any, str]] = {}


def dispatch_table(concern: str, role: str = "computed") -> Any:
    """A dispatch table for one concern over the node types of one ``role``.

    A ``functools.singledispatch`` function whose default refuses a node type without an
    entry. Each concern (formatting, evaluation, unparsing, ...) registers one function per
    node type of its role (``view``, ``computed`` or ``all``); a test checks that every
    node type has its entry in every table, as ibis checks every operation on every backend.

    Examples
    --------
    >>> shout = dispatch_table("shout example", role="all")
    >>> @shout.register
    ... def _(node: Node) -> str:
    ...     return node.op.upper()
    >>> shout(object())
    Traceback (most recent call last):
    TypeError: shout example: no entry for node type object
    """

    @functools.singledispatch
    def table(node: Any, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{concern}: no entry for node type {type(node).__name__}")

    TABLES[concern] = (table, role)
    return table


def entries(table: Any, types: Iterable[type]) -> Any:
    """A decorator that registers one function in ``table`` for each of ``types``.

    Examples
    --------
    >>> shout = dispatch_table("shout twice", role="all")
    >>> @entries(shout, (int, str))
    ... def _(value: object) -> str:
    ...     return repr(value) * 2
    >>> shout(3), shout("a")
    ('33', "'a''a'")
    >>> _ = TABLES.pop("shout twice")
    """

    def register(fn: Any) -> Any:
        for cls in types:
            table.register(cls, fn)
        return fn

    return register


def covers(table_role: str, node_role: str) -> bool:
    """Whether a table for ``table_role`` must have an entry for a node of ``node_role``.

    Examples
    --------
    >>> covers("computed", "verb"), covers("view", "verb"), covers("all", "view")
    (True, False, True)
    """
    if table_role == "all":
        return True
    if table_role == "computed":
        return node_role in ("computed", "verb")
    return table_role == node_role


def node_types() -> list[type[Node]]:
    """Every concrete node type (the subclasses of :class:`Node`), in definition order.

    Examples
    --------
    >>> import algebra
    >>> "Attribution" in [t.__name__ for t in node_types()]
    True
    """
    found: list[type[Node]] = []
    pending = list(Node.__subclasses__())
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
