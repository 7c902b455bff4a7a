"""Stage 1 for the gradient family: each method lowered to its point set, request and output.

Registered in :data:`~algebra.optimizer.simplify.LOWERINGS` (imported by
:mod:`algebra.optimizer.plan`). Every method on the same points shares its forward and,
through the request key (points, target, layer), its gradient: the CAMs of one layer and
target share one request; guided backpropagation and deconvolution are inputs passes
under their ReLU rule; DeepLift runs on paired inputs and references, GradientSHAP on its
random points, Score-CAM on masked inputs, conductance on an input path of ``steps + 1``
points, and internal influence on an ordinary input path (shared with integrated
gradients of the same path).
"""

from __future__ import annotations

from typing import Any

from ..config import OptimizerOptions
from ..ir.attribution import Attribution, method
from ..ir.node import Node, Ref
from ..ir.views import inputs_node, layer_of, window_of
from ..kernels.plan import Output, PathSpec, Points, Request
from ..kernels.point_specs import ConductanceSpec, MaskSpec, PairedSpec, ShapSpec
from .simplify import LOWERINGS, Lowered, inputs_of, target_spec


def _owner(node: Attribution, shared: bool) -> str:
    return "" if shared else node.token


def _request(
    node: Attribution, points: Points, layer: str | None, rules: OptimizerOptions
) -> Request:
    key = f"{points.key}|{node.target.token}|{layer}" if rules.simplify else f"{node.token}|grad"
    return Request(key, target_spec(node.target), layer)


def _baseline(node: Attribution, name: str = "baseline") -> tuple[Any, str]:
    """The baseline as the kernels take it, and its key."""
    value = dict(node.params)[name]
    if isinstance(value, Node):  # another query's inputs
        return inputs_of(value), value.token
    if isinstance(value, Ref):
        return value.value, value.token
    return value, repr(value)


def _lowered(
    node: Attribution,
    points: Points,
    request: Request | None,
    kind: str,
    capture: tuple[str, ...] = (),
    extra: tuple[tuple[Points, Request | None, tuple[str, ...]], ...] = (),
    params: tuple[tuple[str, Any], ...] = (),
    path_layer: str | None = None,
) -> Lowered:
    opts = node.options
    output = Output(
        node.token,
        "" if request is None else request.key,
        kind,  # type: ignore[arg-type]
        layer_of(node.view),
        relu=bool(opts.get("relu", False)),
        upsample=bool(opts.get("upsample", False)),
        window=window_of(node.view),
        params=params,
    )
    job = inputs_node(node.view).token
    return Lowered(node, job, points, request, output, capture, path_layer, extra)


def _integrated(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """Integrated gradients; local (the integrated gradient alone) without multiply_by_inputs."""
    opts, layer = node.options, layer_of(node.view)
    start, key = _baseline(node)
    path = PathSpec(opts["steps"], opts["method"], start, key, window_of(node.view))
    owner = _owner(node, rules.share_paths)
    points = Points("path", path, layer, owner=owner)
    request = _request(node, points, layer, rules)
    # Local attribution: the integrated gradient alone. The delta needs no other point set:
    # the path's first step carries the start (kernels.path_starts); a layer path's
    # baseline pass gives f(x0).
    kind = "integrated" if opts.get("multiply_by_inputs", True) else "gradient"
    return _lowered(node, points, request, kind, path_layer=layer)


def _rule(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """Guided backpropagation and deconvolution: an inputs pass under the method's ReLU rule."""
    points = Points("inputs", owner=_owner(node, rules.share_forward), rule=node.method)
    layer = layer_of(node.view)
    return _lowered(node, points, _request(node, points, layer, rules), "gradient")


def _paired(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """DeepLift (one reference per sample) and DeepLiftShap (``B`` references)."""
    layer = layer_of(node.view)
    name = "baseline" if node.method == "deeplift" else "baselines"
    reference, key = _baseline(node, name)
    count = 0 if node.method == "deeplift" else int(reference.shape[0])
    window = None if layer is not None else window_of(node.view)  # references: input grid
    path = PathSpec(1, "", reference, key, window)
    points = Points("paired", path, owner=_owner(node, rules.share_forward), spec=PairedSpec(count))
    multiply = (("multiply", node.options["multiply_by_inputs"]),)
    return _lowered(node, points, _request(node, points, layer, rules), "deeplift", params=multiply)


def _shap(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """GradientSHAP and expected gradients: random points between baselines and inputs."""
    opts, layer = node.options, layer_of(node.view)
    name = "baselines" if node.method == "gradient_shap" else "data"
    baselines, key = _baseline(node, name)
    spec = ShapSpec(baselines, key, opts["samples"], opts.get("stdev", 0.0), opts["seed"])
    points = Points("shap", owner=_owner(node, rules.share_forward), spec=spec)
    ends = (layer,) if layer is not None and spec.stdev == 0 else ()  # the layer at the inputs
    extra = ((Points("inputs"), None, ends),) if ends else ()
    multiply = (("multiply", opts["multiply_by_inputs"]),)
    request = _request(node, points, layer, rules)
    return _lowered(node, points, request, "shap", extra=extra, params=multiply)


def _grid(node: Attribution) -> tuple[tuple[str, Any], ...]:
    grid = node.options.get("grid")
    return () if grid is None else (("grid", grid),)


def _cam(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """The gradient CAMs: the layer's gradient on the inputs, shared by every CAM of it."""
    layer = layer_of(node.view)
    points = Points("inputs", owner=_owner(node, rules.share_forward))
    request = _request(node, points, layer, rules)
    if node.method == "grad_cam" and "grid" not in node.options:
        return _lowered(node, points, request, "grad_cam", capture=(layer,))  # type: ignore[arg-type]
    params = (("cam", node.method), *_grid(node))
    return _lowered(node, points, request, "cam", capture=(layer,), params=params)  # type: ignore[arg-type]


def _captured(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """EigenCAM and a layer's activation: the inputs' pass captures the layer; no gradient."""
    layer = layer_of(node.view)
    points = Points("inputs", owner=_owner(node, rules.share_forward))
    kind = method(node.method).output
    params = _grid(node) + ((("sign", node.options["sign"]),) if "sign" in node.options else ())
    return _lowered(node, points, None, kind, capture=(layer,), params=params)  # type: ignore[arg-type]


def _score_cam(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """Score-CAM: the inputs masked by each channel, scored without gradients."""
    layer = layer_of(node.view)
    grid = node.options.get("grid")
    spec = MaskSpec(node.options["channels"], grid, _grid_key(dict(node.params).get("grid")))
    points = Points("masks", layer=layer, owner=_owner(node, rules.share_forward), spec=spec)
    extra = ((Points("inputs"), None, (layer,)),)  # the masks come from the activations
    request = _request(node, points, None, rules)
    return _lowered(node, points, request, "score_cam", extra=extra, params=_grid(node))  # type: ignore[arg-type]


def _grid_key(grid: Any) -> str:
    return grid.token if isinstance(grid, Ref) else repr(grid)


def _guided_grad_cam(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """Guided GradCAM: GradCAM's request on the inputs and guided backpropagation's."""
    layer = layer_of(node.view)
    owner = _owner(node, rules.share_forward)
    points = Points("inputs", owner=owner)
    guided = Points("inputs", owner=owner, rule="guided_backprop")
    guided_request = _request(node, guided, None, rules)
    if not rules.simplify:
        guided_request = Request(f"{node.token}|guided", guided_request.target)
    params = (("guided", guided_request.key), *_grid(node))
    extra = ((guided, guided_request, ()),)
    request = _request(node, points, layer, rules)
    return _lowered(node, points, request, "guided_grad_cam", (layer,), extra, params)  # type: ignore[arg-type]


def _conductance(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """Layer conductance: ``steps + 1`` points on the input path, the layer at each."""
    opts, layer = node.options, layer_of(node.view)
    start, key = _baseline(node)
    path = PathSpec(opts["steps"], opts["method"], start, key)
    spec = ConductanceSpec(opts["steps"], opts["method"])
    points = Points("conductance", path, owner=_owner(node, rules.share_paths), spec=spec)
    return _lowered(node, points, _request(node, points, layer, rules), "conductance")


def _internal_influence(node: Attribution, rules: OptimizerOptions) -> Lowered:
    """Internal influence: the layer's gradient integrated along an input path."""
    opts, layer = node.options, layer_of(node.view)
    start, key = _baseline(node)
    path = PathSpec(opts["steps"], opts["method"], start, key)
    points = Points("path", path, owner=_owner(node, rules.share_paths))
    return _lowered(node, points, _request(node, points, layer, rules), "gradient")


LOWERINGS.update(
    {
        "integrated_gradients": _integrated,
        "guided_backprop": _rule,
        "deconvolution": _rule,
        "deeplift": _paired,
        "deeplift_shap": _paired,
        "gradient_shap": _shap,
        "expected_gradients": _shap,
        "grad_cam": _cam,
        "grad_cam_pp": _cam,
        "xgrad_cam": _cam,
        "layer_cam": _cam,
        "hires_cam": _cam,
        "eigen_cam": _captured,
        "activation": _captured,
        "score_cam": _score_cam,
        "guided_grad_cam": _guided_grad_cam,
        "conductance": _conductance,
        "internal_influence": _internal_influence,
    }
)
