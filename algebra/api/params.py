"""Parameters of the gradient family, checked when a method is called (before any node).

Tensors are wrapped in a ``Ref`` with their fingerprint; baselines may be numbers, tensors
or another query's inputs; a layer's shape, needed for unit indices and CAM grids, comes
from a one-sample probe of the model (:mod:`~algebra.kernels.probes`).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import did_you_mean
from ..ir.inputs import layout_of
from ..ir.node import Node, Ref
from ..ir.views import base_of, layer_of, noise_of, source_of
from ..kernels.checks import as_baseline, fingerprint
from ..kernels.grids import to_grid
from ..kernels.noise import cpu_generator
from ..kernels.probes import layer_output
from ..kernels.shap import check_baselines
from .input_params import packed_baseline, packed_baselines


def tensor_ref(tensor: torch.Tensor) -> Ref:
    """A tensor as a node holds it: by reference, tokened by its fingerprint.

    Examples
    --------
    >>> tensor_ref(torch.zeros(2)).token.startswith("tensor:")
    True
    """
    return Ref(tensor, fingerprint(tensor))


def baseline_param(node: Node, baseline: Any) -> Any:
    """A baseline for a view's inputs: a number, a ``Ref`` tensor broadcastable to the
    inputs, or another query's (possibly edited) inputs of the same shape.

    Examples
    --------
    >>> import algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4))
    >>> baseline_param(q.node, 0), baseline_param(q.node, torch.zeros(4)).token[:7]
    (0.0, 'tensor:')
    >>> baseline_param(q.node, ia.model(torch.nn.Linear(5, 3)).on(torch.rand(2, 5)))
    Traceback (most recent call last):
    ValueError: baseline: the baseline query's inputs have shape [2, 5], but the inputs have shape [2, 4]
    """
    if layout_of(node) is not None:  # several inputs or token ids: packed per input
        return packed_baseline(node, baseline)
    view = getattr(baseline, "node", None)
    if isinstance(view, Node) and view.role == "view":  # another query's inputs, lazily
        if noise_of(view) is not None:
            raise ValueError("baseline: a baseline query cannot have noise")
        ref = base_of(view)
        shapes = source_of(ref).shape, source_of(node).shape
        if shapes[0] != shapes[1]:
            raise ValueError(
                f"baseline: the baseline query's inputs have shape {list(shapes[0])}, "
                f"but the inputs have shape {list(shapes[1])}"
            )
        return ref
    base = as_baseline(baseline, source_of(node).inputs.value)
    return base if isinstance(base, float) else tensor_ref(base)


def baselines_param(node: Node, baselines: Any, argument: str = "baselines") -> Ref:
    """A set of reference inputs ``[B, ...]`` shaped like the inputs' samples.

    Examples
    --------
    >>> import algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4))
    >>> baselines_param(q.node, torch.zeros(5, 4)).value.shape
    torch.Size([5, 4])
    >>> baselines_param(q.node, torch.zeros(5, 3))
    Traceback (most recent call last):
    ValueError: baselines: expected a tensor of shape [B, 4] (B reference inputs like the inputs' samples); got [5, 3]
    """
    if layout_of(node) is not None:  # several inputs or token ids: packed per input
        return packed_baselines(node, baselines, argument)
    try:
        tensor = check_baselines(baselines, source_of(node).inputs.value)
    except ValueError as error:
        raise ValueError(str(error).replace("baselines:", f"{argument}:", 1)) from None
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{argument}: values must be finite")
    return tensor_ref(tensor)


def seed_param(seed: Any) -> int | None:
    """A seed: an integer, or ``None`` (torch's global RNG at compute time).

    Examples
    --------
    >>> seed_param(3), seed_param(None)
    (3, None)
    >>> seed_param(1.5)
    Traceback (most recent call last):
    ValueError: seed: expected an integer or None; got 1.5
    """
    cpu_generator(seed)
    return seed


def selected_layer(node: Node, method: str) -> str:
    """The layer a layer method attributes; a clear error when none is selected.

    Examples
    --------
    >>> import algebra as ia
    >>> q = ia.model(torch.nn.Sequential(torch.nn.Linear(4, 3))).on(torch.rand(2, 4))
    >>> selected_layer(q.layer("0").node, "activation")
    '0'
    >>> selected_layer(q.node, "activation")
    Traceback (most recent call last):
    ValueError: activation: select a layer first, e.g. q.layer('0').activation(...); it attributes a layer's activation, not the input
    """
    layer = layer_of(node)
    if layer is None:
        names = source_of(node).model.layer_names
        raise ValueError(
            f"{method}: select a layer first, e.g. q.layer({names[-1] if names else 'name'!r})"
            f".{method}(...); it attributes a layer's activation, not the input"
        )
    return layer


def probe(node: Node, layer: str) -> torch.Tensor:
    """The layer's output for the view's first sample, ``[1, ...]`` (one probe per model,
    input shape and layer).

    Examples
    --------
    >>> import algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3))
    >>> tuple(probe(ia.model(net).on(torch.rand(2, 3, 8, 8)).node, "0").shape)
    (1, 5, 6, 6)
    """
    source = source_of(node)
    return layer_output(source.model.torch_module, source.inputs.value, layer)


GRID_HELP = "None, 'auto', (rows, cols) or a callable mapping activations to [N, K, h, w]"


def grid_param(node: Node, layer: str, grid: Any, method: str) -> tuple[Any, torch.Tensor]:
    """A CAM's grid checked against the layer: the value to store and the layer's
    activation on the grid ``[1, K, *grid]`` (from a one-sample probe).

    ``grid`` is ``None`` (channels first, ``[N, K, h, w]`` or ``[N, K, L]``; for square
    images, a layer of tokens ``[N, T, D]`` or channels-last ``[N, a, a, D]`` is read as
    ``"auto"``), ``"auto"`` (ViT tokens
    with a class token, Swin tokens or channels-last maps, by their shape), ``(rows, cols)``
    or a callable mapping the activations to ``[N, K, h, w]`` (held by ``Ref``).

    Examples
    --------
    >>> import algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 3))
    >>> q = ia.model(net).on(torch.rand(2, 17, 3))                # 17 tokens: class + 4 x 4
    >>> grid, acts = grid_param(q.node, "0", [4, 4], "grad_cam_pp")
    >>> grid, tuple(acts.shape)
    ((4, 4), (1, 3, 4, 4))
    >>> grid_param(ia.model(net).on(torch.rand(2, 3)).node, "0", None, "grad_cam_pp")
    Traceback (most recent call last):
    ValueError: grad_cam_pp: layer '0' outputs [N, 3]; a CAM needs channels over a spatial grid, [N, K, h, w] (or [N, K, L], tokens [N, T, D] with grid=...); choose a convolutional or transformer layer
    """
    acts = probe(node, layer)
    stored: Any = grid
    if isinstance(grid, list):
        grid = stored = tuple(grid)
    if callable(grid):
        name = getattr(grid, "__qualname__", type(grid).__name__)
        stored = Ref(grid, f"fn:{id(grid)}:{name}")
    elif not (grid is None or grid == "auto" or isinstance(grid, tuple)):
        raise ValueError(f"grid: expected {GRID_HELP}; got {grid!r}" + _hint(grid))
    if grid is None and acts.ndim < 3:
        shape = ", ".join(str(d) for d in acts.shape[1:])
        raise ValueError(
            f"{method}: layer {layer!r} outputs [N, {shape}]; a CAM needs channels over a "
            "spatial grid, [N, K, h, w] (or [N, K, L], tokens [N, T, D] with grid=...); "
            "choose a convolutional or transformer layer"
        )
    if grid is None and _transformer_like(acts, source_of(node).shape):
        grid = stored = "auto"
    return stored, to_grid(acts, grid, layer)


def _transformer_like(acts: torch.Tensor, shape: tuple[int, ...]) -> bool:
    """Square images through a layer of tokens ``[N, T, D]`` (ViT, Swin), or through
    ``[N, a, a, D]`` with ``D != a`` (a channels-last Swin stage: read channels first, its
    grid would be ``a x D``, not square like the images')."""
    if len(shape) != 4:
        return False
    if acts.ndim == 3:
        return True
    square = shape[2] == shape[3]
    return acts.ndim == 4 and square and acts.shape[1] == acts.shape[2] != acts.shape[3]


def _hint(grid: Any) -> str:
    return did_you_mean(grid, ["auto"]) if isinstance(grid, str) else ""
