"""Outputs of the gradient family, assembled from what their passes left in the state.

One function per :class:`~algebra.kernels.plan.Output` kind beyond the executor's own
(``gradient``, ``times_input``, ``grad_cam``, ``integrated``), each returning the values
``[T, N, ...]``, the classes attributed ``[T, N]`` (``None`` for callables and
target-free maps) and the convergence delta ``[T, N]`` (``None`` where there is none).
Options come from ``Output.params``: ``multiply`` (global, not local, attribution),
``cam`` (the CAM's name), ``grid`` (a transformer layer's grid), ``sign`` (EigenCAM's) and
``guided`` (the request of Guided GradCAM's guided backpropagation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .cams import cam_maps, eigen_cam, grid_grads, guided_grad_cam, weighted_sum
from .deltas import convergence_delta, target_scores
from .grids import to_grid
from .plan import Job, Output, Request
from .postprocess import upsample
from .score_cam import score_cam_weights
from .unit_targets import is_unit
from .windows import inside

Assembled = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]
_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _what(out: Output) -> str:
    return "the inputs" if out.layer is None else f"layer {out.layer!r}"


def _request(out: Output, job: Job) -> Request:
    return job.request(out.request)[1]


def finish_maps(maps: torch.Tensor, out: Output, size: tuple[int, ...]) -> torch.Tensor:
    """Maps ``[T, N, *grid]``: ReLU (``out.relu``), zero outside the window (on the grid),
    then interpolation to the inputs' ``size`` (``out.upsample``).

    Examples
    --------
    >>> out = Output("o", "r", "cam", layer="l", relu=True, upsample=True)
    >>> finish_maps(torch.tensor([[[-1.0, 2.0]]]), out, (4,))
    tensor([[[0.0000, 0.5000, 1.5000, 2.0000]]])
    """
    if out.relu:
        maps = maps.clamp(min=0)
    maps = inside(maps, out.window, f"layer {out.layer!r}")
    if not out.upsample:
        return maps
    return upsample(maps, size, _MODES.get(len(size), "nearest"))


def attributed(out: Output, job: Job, state: Any) -> Assembled:
    """DeepLift(Shap) and GradientSHAP: the global attribution (``multiply``, with its
    delta) or the local one (the averaged multipliers or gradients).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from algebra.kernels.plan import Group, Points, TargetSpec
    >>> job = Job(None, None, groups=(Group(Points("inputs"), (Request("r", TargetSpec("pred")),)),))
    >>> state = SimpleNamespace(grads={"r": torch.ones(1, 2, 3)}, rows={},
    ...     extra={("global", "r"): torch.full((1, 2, 3), 2.0), ("delta", "r"): torch.zeros(1, 2)})
    >>> values, _, delta = attributed(Output("o", "r", "deeplift", params=(("multiply", False),)), job, state)
    >>> float(values.sum()), delta
    (6.0, None)
    """
    req = _request(out, job)
    if out.option("multiply", True):
        values = state.extra[("global", req.key)]
        # A window on the inputs is DeepLift's reference outside it: still complete.
        whole = out.window is None or (out.kind == "deeplift" and out.layer is None)
        delta = state.extra.get(("delta", req.key)) if whole else None
    else:
        values, delta = state.grads[req.key], None
    return inside(values, out.window, _what(out)), state.rows.get(req.key), delta


def _cam(out: Output, job: Job, state: Any) -> Assembled:
    """GradCAM++, XGradCAM, LayerCAM, HiResCAM (and GradCAM on a grid) from the layer's
    gradients and activations of the inputs' pass (:func:`~algebra.kernels.cams.cam_maps`)."""
    req = _request(out, job)
    layer, grid = out.layer, out.option("grid")
    assert layer is not None
    acts = to_grid(state.acts[layer], grid, layer)
    grads = grid_grads(state.grads[req.key], grid, layer)
    maps = cam_maps(out.option("cam", "grad_cam"), grads, acts)
    return finish_maps(maps, out, tuple(state.x.shape[2:])), state.rows.get(req.key), None


def _eigen(out: Output, job: Job, state: Any) -> Assembled:
    """EigenCAM: the layer's activations on their first principal component (no target)."""
    layer = out.layer
    assert layer is not None
    acts = to_grid(state.acts[layer], out.option("grid"), layer)
    maps = eigen_cam(acts, out.option("sign", "svd"))[None]
    return finish_maps(maps, out, tuple(state.x.shape[2:])), None, None


def _score(out: Output, job: Job, state: Any) -> Assembled:
    """Score-CAM: channels weighted by the softmax of the masked inputs' scores."""
    req = _request(out, job)
    layer = out.layer
    assert layer is not None
    acts = to_grid(state.acts[layer], out.option("grid"), layer)
    weights = score_cam_weights(state.extra[("scores", req.key)])
    maps = weighted_sum(weights, acts)
    return finish_maps(maps, out, tuple(state.x.shape[2:])), state.rows.get(req.key), None


def _guided(out: Output, job: Job, state: Any) -> Assembled:
    """Guided GradCAM: guided backpropagation times the rectified GradCAM map, resized
    (nearest) to the inputs (Captum's GuidedGradCam)."""
    req = _request(out, job)
    layer, grid = out.layer, out.option("grid")
    assert layer is not None
    acts = to_grid(state.acts[layer], grid, layer)
    maps = cam_maps("grad_cam", grid_grads(state.grads[req.key], grid, layer), acts)
    maps = inside(maps, out.window, f"layer {layer!r}")
    values = guided_grad_cam(state.grads[out.option("guided")], maps)
    return values, state.rows.get(req.key), None


def _activation(out: Output, job: Job, state: Any) -> Assembled:
    """The layer's activation itself (Captum's LayerActivation), ``[1, N, ...]``."""
    assert out.layer is not None
    values = state.acts[out.layer][None]
    return inside(values, out.window, _what(out)), None, None


def _conducted(out: Output, job: Job, state: Any) -> Assembled:
    """Layer conductance, summed over the path as its chunks ran."""
    req = _request(out, job)
    return inside(state.grads[req.key], out.window, _what(out)), state.rows.get(req.key), None


ASSEMBLERS: dict[str, Callable[[Output, Job, Any], Assembled]] = {
    "deeplift": attributed,
    "shap": attributed,
    "cam": _cam,
    "eigen_cam": _eigen,
    "score_cam": _score,
    "guided_grad_cam": _guided,
    "activation": _activation,
    "conductance": _conducted,
}


def path_delta(
    out: Output, req: Request, values: torch.Tensor, at: Any, state: Any
) -> torch.Tensor | None:
    """Integrated gradients' convergence delta ``[T, N]``: the attribution's sum minus
    ``f(x) - f(x0)``, from the inputs' logits and the start's (``state.extra[at]``, kept by
    the path's own forward, :mod:`~algebra.kernels.path_starts`, or the baseline's pass).

    ``None`` for callable targets, units, a window at a layer (the path's start is then
    not the baseline's activation) and when the start was not evaluated (a compiled path).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from algebra.kernels.plan import TargetSpec
    >>> state = SimpleNamespace(rows={"r": torch.tensor([[1]])},
    ...     extra={"inputs_logits": torch.tensor([[0.0, 3.0]]), "at": torch.tensor([[0.0, 1.0]])})
    >>> req = Request("r", TargetSpec("index", 1))
    >>> path_delta(Output("o", "r", "integrated"), req, torch.ones(1, 1, 2), "at", state)
    tensor([[0.]])
    """
    rows = state.rows.get(req.key)
    start = state.extra.get(at)
    layer_window = out.window is not None and out.layer is not None
    if rows is None or is_unit(req.target) or layer_window or start is None:
        return None
    end = state.extra["inputs_logits"]
    return convergence_delta(values, target_scores(end, rows), target_scores(start, rows))
