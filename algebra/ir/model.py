"""What the logical layer knows of a model: plain data, never the user-facing ``Model``.

Nodes hold a :class:`ModelInfo`; the torch module itself sits behind an opaque
:class:`~algebra.ir.node.Ref` that only the runtime dereferences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .node import Ref


@dataclass(frozen=True, eq=False)
class ModelInfo:
    """A model as the nodes see it: name, class names, layer names and the module's ``Ref``.

    ``reference`` is the model whose outputs resolve ``pred`` and ``topk`` targets when it
    is not this one (the left model of a disagreement ``f - g``); ``parts`` are the two
    models of a disagreement. ``inputs`` is the layout of several inputs, token ids or
    extra forward arguments (:mod:`~algebra.ir.inputs`): the module is then the user's
    model called on packed rows of them.

    Examples
    --------
    >>> info = ModelInfo(Ref(object(), "model:1"), "net", ("a", "b"), ("0", "1"))
    >>> info.num_classes, info.token
    (2, 'model:1')
    """

    module: Ref
    name: str
    classes: tuple[str, ...] | None
    layer_names: tuple[str, ...]
    reference: ModelInfo | None = None
    parts: tuple[ModelInfo, ModelInfo] | None = None
    inputs: Any = None  # an InputLayout (ir.inputs), for packed inputs

    @property
    def token(self) -> str:
        """The model's identity in expression tokens (its module's token)."""
        return self.module.token

    @property
    def num_classes(self) -> int | None:
        """The number of classes when class names were given, else ``None``."""
        return None if self.classes is None else len(self.classes)

    def __hash__(self) -> int:
        return hash(self.token)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelInfo) and other.token == self.token

    @property
    def torch_module(self) -> Any:
        """The module itself (opaque to the logical layer; the runtime runs it)."""
        return self.module.value
