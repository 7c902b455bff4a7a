"""The logical operators: a data source, layer selection, and attribution.

Each is an immutable :class:`~algebra.nodes.Node`, validated when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import did_you_mean
from .methods import method as lookup_method
from .nodes import Node, Ref
from .targets import Target

if TYPE_CHECKING:
    from .model import Model

RESERVED_DIMS = ("sample", "target")


@dataclass(frozen=True, eq=False)
class Source(Node):
    """A batch of inputs (with optional labels and ids) fed to one model."""

    model: Ref
    inputs: Ref
    labels: Ref | None
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    ids: tuple[Any, ...] | None
    op = "source"

    @property
    def n(self) -> int:
        """The number of samples."""
        return self.shape[0]

    @property
    def wrapped_model(self) -> Model:
        return self.model.value

    def validate(self) -> None:
        if len(self.dims) != len(self.shape) - 1:
            raise ValueError(
                f"dims: expected {len(self.shape) - 1} names for the input's non-batch dimensions "
                f"{self.shape[1:]}; got {list(self.dims)}"
            )
        if len(set(self.dims)) != len(self.dims) or set(self.dims) & set(RESERVED_DIMS):
            raise ValueError(
                f"dims: names must be unique and not 'sample' or 'target'; got {list(self.dims)}"
            )
        if self.ids is not None:
            if len(self.ids) != self.n:
                raise ValueError(f"ids: expected {self.n} ids, one per sample; got {len(self.ids)}")
            if len(set(self.ids)) != len(self.ids):
                raise ValueError("ids: sample ids must be unique")


@dataclass(frozen=True, eq=False)
class Layer(Node):
    """Selection: attribute the output activation of the named layer instead of the input."""

    view: Node
    name: str
    op = "layer"

    def validate(self) -> None:
        if not isinstance(self.view, Source):
            raise ValueError(
                f"layer: a layer is already selected ({layer_of(self.view)!r}); select one layer per query"
            )
        names = self.view.wrapped_model.layer_names
        if self.name not in names:
            raise ValueError(
                f"layer: the model has no layer {self.name!r}."
                + did_you_mean(self.name, names)
                + " Layers are named as in model.named_modules(); see Model.layer_names."
            )


@dataclass(frozen=True, eq=False)
class Attribution(Node):
    """An attribution ``method`` of ``target`` over the view's input or layer."""

    view: Node
    method: str
    target: Target
    params: tuple[tuple[str, Any], ...]
    op = "attribution"

    def validate(self) -> None:
        spec = lookup_method(self.method)
        source = source_of(self.view)
        if spec.needs_layer and layer_of(self.view) is None:
            names = source.wrapped_model.layer_names
            raise ValueError(
                f"{self.method}: select a layer first, e.g. q.layer({names[-1] if names else 'name'!r})"
                f".{self.method}(...); it attributes a layer's activation, not the input"
            )
        model = source.wrapped_model
        self.target.check(source.n, model.num_classes, source.labels is not None)

    @property
    def options(self) -> dict[str, Any]:
        """The method's parameters, with tensors unwrapped."""
        return {k: v.value if isinstance(v, Ref) else v for k, v in self.params}


def source_of(view: Node) -> Source:
    """The :class:`Source` a view or expression reads from.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
    >>> source_of(ia.model(net).on(torch.rand(2, 4)).layer("0").saliency(0).node).shape
    (2, 4)
    """
    while not isinstance(view, Source):
        view = view.children[0]
    return view


def layer_of(view: Node) -> str | None:
    """The selected layer of a view, or ``None`` for the input.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()).on(torch.rand(2, 4))
    >>> layer_of(q.layer("0").saliency(0).node), layer_of(q.saliency(0).node)
    ('0', None)
    """
    while not isinstance(view, Source):
        if isinstance(view, Layer):
            return view.name
        view = view.children[0]
    return None
