"""Several inputs, token ids and extra forward arguments, as the logical layer knows them.

A model on such inputs runs on packed rows (``kernels/inputs.py``); its
:class:`~algebra.ir.model.ModelInfo` carries their :class:`InputLayout` (names, shapes,
dims and columns of the attributed inputs, plain data). An attribution at the inputs
covers all of them; :class:`InputPart` selects one input's share, with that input's own
dims. This module also says which methods such queries refuse, each with a clear message
(windows, edits and noise refuse them in :mod:`~algebra.ir.views`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import did_you_mean
from .attribution import METHODS
from .node import Node, Ref
from .views import layer_of, source_of

# Methods that move the inputs themselves (along a path, or by noise), even at a layer:
# token ids cannot follow them.
_MOVES_INPUTS = ("conductance", "internal_influence", "gradient_shap", "expected_gradients")
# Methods that map onto the inputs' grid: several inputs have no single grid.
_INPUT_GRID = ("score_cam", "guided_grad_cam")
# Methods that evaluate their baselines once for all samples (before drawing them).
_SHARED_BASELINES = ("gradient_shap", "expected_gradients")


@dataclass(frozen=True)
class InputSlot:
    """One attributed input: its name, per-sample shape, dims, columns ``start:stop`` in
    the packed rows, and whether it holds integers (token ids).

    Examples
    --------
    >>> InputSlot("ids", (6,), ("token",), 0, 6, True).size
    6
    """

    name: str
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    start: int
    stop: int
    integer: bool

    @property
    def size(self) -> int:
        """Columns of the packed rows this input takes."""
        return self.stop - self.start


@dataclass(frozen=True)
class InputLayout:
    """How a query's inputs reach the model: the attributed inputs (``slots``, in their
    packed order), the inputs passed through unchanged (``passed``), the extra forward
    arguments (``kwargs``), whether some argument follows the samples (``carried``), the
    tokens' text per sample (``tokens``), the model's embedding layers and ``kind``:
    ``"single"`` (one tensor), ``"tuple"`` or ``"dict"``. ``key`` identifies the tensors.

    Examples
    --------
    >>> slot = InputSlot("x", (4,), ("feature",), 0, 4, False)
    >>> layout = InputLayout("tuple", (slot,), ("y",), (), True, None, (), "k")
    >>> layout.describe(5), layout.token
    ('x [5, 4], y (passed)', 'inputs:k')
    """

    kind: str
    slots: tuple[InputSlot, ...]
    passed: tuple[str, ...]
    kwargs: tuple[str, ...]
    carried: bool
    tokens: tuple[tuple[str, ...], ...] | None
    embeddings: tuple[str, ...]
    key: str

    @property
    def token(self) -> str:
        """The layout's identity in tokens (its tensors' fingerprints)."""
        return f"inputs:{self.key}"

    @property
    def names(self) -> tuple[str, ...]:
        """The attributed inputs' names."""
        return tuple(s.name for s in self.slots)

    @property
    def integer(self) -> tuple[str, ...]:
        """The attributed inputs that hold token ids."""
        return tuple(s.name for s in self.slots if s.integer)

    def slot(self, name: str) -> InputSlot:
        """The attributed input ``name``, or a ``ValueError`` with close matches.

        Examples
        --------
        >>> layout = InputLayout("dict", (InputSlot("ids", (3,), ("token",), 0, 3, True),),
        ...                      (), (), False, None, (), "k")
        >>> layout.slot("idz")
        Traceback (most recent call last):
        ValueError: input: 'idz' is not an attributed input; they are 'ids'. Did you mean 'ids'?
        """
        for slot in self.slots:
            if slot.name == name:
                return slot
        shown = ", ".join(map(repr, self.names))
        raise ValueError(
            f"input: {name!r} is not an attributed input; they are {shown}."
            + did_you_mean(name, self.names)
        )

    def describe(self, n: int) -> str:
        """The inputs as a query shows them.

        Examples
        --------
        >>> slot = InputSlot("ids", (3,), ("token",), 0, 3, True)
        >>> InputLayout("single", (slot,), (), ("mask",), True, None, (), "k").describe(2)
        'ids [2, 3], forward_kwargs mask'
        """
        shown = [f"{s.name} {[n, *s.shape]}" for s in self.slots]
        shown += [f"{name} (passed)" for name in self.passed]
        if self.kwargs:
            shown.append("forward_kwargs " + ", ".join(self.kwargs))
        return ", ".join(shown)


@dataclass(frozen=True, eq=False)
class Shown(Ref):
    """A reference shown as ``text`` in plans and attributes (a baseline given per input,
    held packed).

    Examples
    --------
    >>> Shown(object(), "k", "(0.0, 1.0)").text
    '(0.0, 1.0)'
    """

    text: str = ""


def layout_of(view: Node) -> InputLayout | None:
    """The input layout of a view or expression's model, or ``None`` for one plain tensor.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> layout_of(ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4)).node) is None
    True
    """
    return source_of(view).model.inputs


@dataclass(frozen=True, eq=False)
class InputPart(Node):
    """One attributed input's share of an attribution at the inputs, with its own dims."""

    child: Node
    name: str
    op = "input"
    role = "computed"

    def validate(self) -> None:
        layout = layout_of(self.child)
        if layout is None:
            raise ValueError("input: the query has one input tensor; there is no part to select")
        layout.slot(self.name)

    @property
    def slot(self) -> InputSlot:
        """The selected input."""
        layout = layout_of(self.child)
        assert layout is not None
        return layout.slot(self.name)


def check_method(view: Node, method: str) -> None:
    """Refuse a method the view's inputs cannot take, naming what to do instead.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Flatten(),
    ...                           torch.nn.Linear(12, 2))
    >>> q = ia.model(net).on(torch.tensor([[1, 2, 3]]))
    >>> check_method(q.layer("0").node, "integrated_gradients")
    >>> check_method(q.node, "saliency")
    Traceback (most recent call last):
    ValueError: saliency: the inputs hold token ids (input), which have no gradient; select an embedding layer first, e.g. q.layer('0').saliency(...) (the model's embeddings: '0'), or any later layer
    """
    layout = layout_of(view)
    if layout is None:
        return
    layer = layer_of(view)
    ids = layout.integer
    perturbs = METHODS[method].perturbs if method in METHODS else False
    if ids and layer is None and not perturbs:
        example = layout.embeddings[0] if layout.embeddings else "embeddings"
        known = (
            f" (the model's embeddings: {', '.join(map(repr, layout.embeddings))})"
            if layout.embeddings
            else " (the model has no nn.Embedding; select the layer that embeds the ids)"
        )
        raise ValueError(
            f"{method}: the inputs hold token ids ({', '.join(ids)}), which have no gradient; "
            f"select an embedding layer first, e.g. q.layer({example!r}).{method}(...)"
            f"{known}, or any later layer"
        )
    if ids and method in _MOVES_INPUTS:
        raise ValueError(
            f"{method}: it moves the inputs themselves (along a path or by noise), which token "
            f"ids ({', '.join(ids)}) cannot follow; use integrated_gradients at an embedding "
            "layer, or a perturbation method"
        )
    if method == "occlusion" and layer is None:
        raise ValueError(
            "occlusion: its windows slide over one input's grid, and the packed inputs "
            f"({', '.join(layout.names)}) have none; use feature_ablation with groups= per "
            "input"
        )
    if method in _INPUT_GRID:
        raise ValueError(
            f"{method}: its map lies on the inputs' grid, and a query on several inputs, token "
            "ids or forward_kwargs has none; use grad_cam (upsample=False) or the other CAMs"
        )
    if layout.carried and method in _SHARED_BASELINES:
        raise ValueError(
            f"{method}: its baselines are evaluated once for every sample, but some forward "
            f"arguments follow the samples ({_carried(layout)}); not supported yet: use "
            "integrated_gradients or deeplift_shap"
        )


def refuse_upsample(view: Node, upsample: bool) -> None:
    """Refuse resizing a CAM to the inputs' grid when there are several inputs.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Embedding(5, 2), torch.nn.Flatten())
    >>> refuse_upsample(ia.model(net).on(torch.tensor([[1, 2]])).layer("0").node, True)
    Traceback (most recent call last):
    ValueError: upsample: the map is resized to the inputs' grid, and a query on several inputs, token ids or forward_kwargs (input [1, 2]) has none; pass upsample=False
    """
    layout = layout_of(view)
    if layout is not None and upsample:
        raise ValueError(
            "upsample: the map is resized to the inputs' grid, and a query on several inputs, "
            f"token ids or forward_kwargs ({layout.describe(source_of(view).n)}) has none; "
            "pass upsample=False"
        )


def token_dims(layout: InputLayout | None, shape: tuple[int, ...]) -> tuple[str, ...] | None:
    """Dims of a layer's activation (per-sample ``shape``) over the tokens of the one
    token input: ``token, embedding`` for ``[L, D]``; ``None`` when it is not over them.

    Examples
    --------
    >>> slot = InputSlot("ids", (6,), ("token",), 0, 6, True)
    >>> layout = InputLayout("single", (slot,), (), (), False, None, (), "k")
    >>> token_dims(layout, (6, 16)), token_dims(layout, (2, 6, 6)), token_dims(None, (6,))
    (('token', 'embedding'), None, None)
    """
    if layout is None:
        return None
    tokens = [s for s in layout.slots if s.integer and len(s.shape) == 1]
    if len(tokens) != 1 or not shape or shape[0] != tokens[0].shape[0]:
        return None
    if len(shape) == 1:
        return ("token",)
    if len(shape) == 2:
        return ("token", "embedding")
    return ("token", *(f"dim_{i}" for i in range(2, len(shape) + 1)))


def _carried(layout: InputLayout) -> str:
    return ", ".join([*layout.passed, *layout.kwargs])
