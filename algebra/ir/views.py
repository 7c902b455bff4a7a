"""Views: what an attribution reads. A data source, its what-if edits, noisy copies of
its inputs, a layer, a window.

Each is an immutable :class:`~algebra.ir.node.Node`, validated when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import did_you_mean
from .layer_keys import check_layer_options, layer_key
from .model import ModelInfo
from .node import Node, Ref, dispatch_table
from .windows import check_on_grid, check_window

RESERVED_DIMS = ("sample", "target")


def default_dims(ndim: int) -> tuple[str, ...]:
    """Names of the non-batch dimensions of an ``ndim``-D batch.

    Examples
    --------
    >>> default_dims(4), default_dims(2), default_dims(3)
    (('channel', 'y', 'x'), ('feature',), ('dim_1', 'dim_2'))
    """
    if ndim == 4:
        return ("channel", "y", "x")
    if ndim == 2:
        return ("feature",)
    return tuple(f"dim_{i}" for i in range(1, ndim))


@dataclass(frozen=True, eq=False)
class Source(Node):
    """A batch of inputs (with optional labels and ids) fed to one model."""

    model: ModelInfo
    inputs: Ref
    labels: Ref | None
    shape: tuple[int, ...]
    dims: tuple[str, ...]
    ids: tuple[Any, ...] | None
    op = "source"
    role = "view"

    @property
    def n(self) -> int:
        """The number of samples."""
        return self.shape[0]

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
    """Selection: attribute the output activation of the named layer instead of the input.

    ``call`` picks one call of a module called more than once in a forward (from 0), or
    every call (``"all"``, a ``call`` dim); ``output`` an element of a tuple (or a key of a
    dict) output; ``input`` the layer's input instead of its output.
    """

    view: Node
    name: str
    call: int | str | None = None
    output: int | str | None = None
    input: bool = False
    op = "layer"
    role = "view"

    @property
    def key(self) -> str:
        """What the plan calls the selected tensor (:func:`layer_key`)."""
        return layer_key(self.name, self.call, self.output, self.input)

    def validate(self) -> None:
        if isinstance(self.view, Window):
            raise ValueError(
                "layer: select the layer before the window, e.g. q.layer(name).window(...); "
                "the window then lies on the layer's grid"
            )
        if not isinstance(self.view, (Source, Edit, Noise)):
            raise ValueError(
                f"layer: a layer is already selected ({layer_of(self.view)!r}); select one layer per query"
            )
        names = source_of(self.view).model.layer_names
        if self.name not in names:
            raise ValueError(
                f"layer: the model has no layer {self.name!r}."
                + did_you_mean(self.name, names)
                + " Layers are named as in model.named_modules(); see Model.layer_names."
            )
        check_layer_options(self.call, self.output, self.input)


def refuse_packed(view: Node, argument: str, what: str) -> None:
    """Refuse ``what`` at the inputs of a query on several inputs, token ids or
    forward_kwargs (they have no single grid, and edits would change them all).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> class Two(torch.nn.Module):
    ...     def forward(self, a, b):
    ...         return a + b
    >>> q = ia.model(Two().eval()).on((torch.rand(2, 2), torch.rand(2, 2)))
    >>> refuse_packed(q.node, "window", "has no single input grid")
    Traceback (most recent call last):
    ValueError: window: a query on several inputs, token ids or forward_kwargs (a [2, 2], b [2, 2]) has no single input grid; select a layer first, or query one input tensor
    """
    source = source_of(view)
    layout = source.model.inputs
    if layout is not None:
        raise ValueError(
            f"{argument}: a query on several inputs, token ids or forward_kwargs "
            f"({layout.describe(source.n)}) {what}; select a layer first, or query one "
            "input tensor"
        )


@dataclass(frozen=True, eq=False)
class Edit(Node):
    """What-if inputs: the view's inputs with a window patched or replaced, or mapped by a function.

    ``value`` is a number or ``Ref`` tensor (``patch``), the base node of the other inputs
    (``replace``) or a ``Ref`` callable (``fn``).
    """

    view: Node
    kind: str
    window: tuple[int, int, int, int] | None
    value: Any
    op = "edit"
    role = "view"

    def validate(self) -> None:
        if not isinstance(self.view, (Source, Edit)):
            raise ValueError("edit: edits apply to the inputs, below any layer or window")
        if self.kind not in ("patch", "replace", "fn"):
            raise ValueError(f"edit: unknown kind {self.kind!r}")
        refuse_packed(self.view, "edit", "cannot be edited (what-if edits are not supported yet)")
        shape = source_of(self.view).shape
        if self.window is not None:
            check_on_grid(self.window, shape, "window")
        if self.kind == "replace":
            other = source_of(self.value).shape
            if other != shape:
                raise ValueError(
                    f"with_: the replacement inputs have shape {list(other)}, but the inputs "
                    f"have shape {list(shape)}"
                )


@dataclass(frozen=True, eq=False)
class Window(Node):
    """Projection: attribute only the features in rows ``r0:r1``, columns ``c0:c1``.

    The window lies on the grid of what is attributed: the input's last two dims, or the
    selected layer's. Outside it, features are held at their values (context) and get zero.
    """

    view: Node
    window: tuple[int, int, int, int]
    op = "window"
    role = "view"

    def validate(self) -> None:
        check_window(self.window)
        r0, r1, c0, c1 = self.window
        if isinstance(self.view, Window):
            p0, p1, q0, q1 = self.view.window
            if not (p0 <= r0 and r1 <= p1 and q0 <= c0 and c1 <= q1):
                raise ValueError(
                    f"window: {list(self.window)} does not lie inside its parent window "
                    f"{list(self.view.window)}; a drill-down narrows the window"
                )
        if layer_of(self.view) is None:
            refuse_packed(self.view, "window", "has no single input grid")
            check_on_grid(self.window, source_of(self.view).shape, "window")


@dataclass(frozen=True, eq=False)
class Noise(Node):
    """``samples`` noisy copies of the view's inputs, along a ``noise`` dim.

    Gaussian noise of standard deviation ``stdev`` (times each sample's value range when
    ``relative``, as in the SmoothGrad paper), drawn from ``seed`` (torch's global RNG
    without one), or the given draws ``noise`` (a ``Ref`` to a tensor ``[S, N, ...]`` or
    ``[S, ...]``). Every method reads the copies as one point set; targets resolve at the
    clean inputs.
    """

    view: Node
    samples: int
    stdev: float
    relative: bool
    seed: int | None
    noise: Ref | None
    op = "noise"
    role = "view"

    def validate(self) -> None:
        if not isinstance(self.view, (Source, Edit)):
            raise ValueError("noise: noise applies to the inputs, below any layer or window")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"samples: expected an integer >= 1; got {self.samples!r}")
        if not isinstance(self.stdev, float) or not self.stdev >= 0:
            raise ValueError(f"stdev: expected a finite number >= 0; got {self.stdev!r}")
        layout = source_of(self.view).model.inputs
        if layout is not None and layout.integer:
            raise ValueError(
                f"noise: the inputs hold token ids ({', '.join(layout.integer)}), which noise "
                "cannot move; attribute an embedding layer without noise, or noise "
                "floating-point inputs only (attribute=...)"
            )

    def describe(self) -> str:
        """The noise as the user asked for it.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> q = ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4))
        >>> noise_of(q.noise(8, 0.2, seed=1).node).describe()
        'noise(samples=8, stdev=0.2, seed=1)'
        """
        if self.noise is not None:
            return f"noise(noise=tensor{list(self.noise.value.shape)})"
        scale = "" if self.relative else ", relative=False"
        seed = "" if self.seed is None else f", seed={self.seed}"
        return f"noise(samples={self.samples}, stdev={self.stdev}{scale}{seed})"


def noise_of(view: Node) -> Noise | None:
    """The noise of a view (its noisy copies), or ``None``.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> q = ia.model(net).on(torch.rand(2, 4))
    >>> noise_of(q.noise(4).layer("0").node).samples, noise_of(q.node)
    (4, None)
    """
    while not isinstance(view, (Source, Edit)):
        if isinstance(view, Noise):
            return view
        view = view.children[0]
    return None


def inputs_node(view: Node) -> Node:
    """What a view's points are made from: its noise, else its source or last edit (the
    identity of the inputs an attribution runs on).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4))
    >>> inputs_node(q.noise(4).node).op, inputs_node(q.node).op
    ('noise', 'source')
    """
    return noise_of(view) or base_of(view)


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


def base_of(view: Node) -> Node:
    """The node that gives a view its inputs: its :class:`Source` or its last :class:`Edit`.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Conv2d(1, 1, 1).eval()).on(torch.rand(2, 1, 4, 4))
    >>> base_of(q.patch((0, 2, 0, 2), 0.0).window(0, 2, 0, 2).node).op
    'edit'
    """
    while not isinstance(view, (Source, Edit)):
        view = view.children[0]
    return view


def window_of(view: Node) -> tuple[int, int, int, int] | None:
    """The innermost window of a view (drill-downs narrow it), or ``None``.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Conv2d(1, 1, 1).eval()).on(torch.rand(2, 1, 8, 8))
    >>> window_of(q.window(0, 8, 0, 8).window(2, 6, 2, 4).node)
    (2, 6, 2, 4)
    """
    while not isinstance(view, (Source, Edit)):
        if isinstance(view, Window):
            return view.window
        view = view.children[0]
    return None


def rebased(view: Node, base: Node) -> Node:
    """``view`` with its base (source or edits) swapped for ``base``, layer and windows kept.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> m = ia.model(torch.nn.Conv2d(1, 1, 1).eval())
    >>> a, b = m.on(torch.rand(2, 1, 4, 4)), m.on(torch.rand(2, 1, 4, 4))
    >>> source_of(rebased(a.window(0, 2, 0, 2).node, b.node)) == b.node
    True
    """
    return _rebased(view, base)


_rebased = dispatch_table("rebased", role="view")


@_rebased.register(Source)
@_rebased.register(Edit)
def _(view: Node, base: Node) -> Node:
    return base


@_rebased.register
def _(view: Layer, base: Node) -> Node:
    return replace(view, view=rebased(view.view, base))


@_rebased.register
def _(view: Window, base: Node) -> Node:
    return Window(rebased(view.view, base), view.window)


@_rebased.register
def _(view: Noise, base: Node) -> Node:
    return Noise(
        rebased(view.view, base), view.samples, view.stdev, view.relative, view.seed, view.noise
    )


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
            return view.key
        view = view.children[0]
    return None


def layer_node(view: Node) -> Layer | None:
    """The selected :class:`Layer` of a view, or ``None``.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()).on(torch.rand(2, 4))
    >>> layer_node(q.layer("0", input=True).window(0, 1, 0, 1).node).input
    True
    """
    while not isinstance(view, Source):
        if isinstance(view, Layer):
            return view
        view = view.children[0]
    return None
