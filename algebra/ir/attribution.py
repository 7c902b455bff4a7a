"""Attribution: the node that explains a target through a view, and the method registry.

The registry holds each method's name, how its result comes from gradients and whether it
needs a layer; parameters are validated here, no computation happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import did_you_mean, positive_integer, unknown_name
from ..kernels.path_steps import INTEGRATION_RULES, check_path_steps
from .node import Node, Ref
from .targets import Target
from .views import layer_of, source_of


@dataclass(frozen=True)
class Method:
    """An attribution method: how its gradient is used and which parameters it takes.

    ``output`` says how the result comes from the gradient (the kernel's ``Output.kind``):
    ``gradient``, ``times_input`` (times the input or activation), ``grad_cam`` or
    ``integrated`` (along a path from a baseline), and the gradient family's own
    (``deeplift``, ``shap``, ``cam``, ...); ``perturbation`` methods evaluate perturbed
    copies by forward passes only. ``needs_layer`` methods attribute a layer's activation
    only; methods without ``at_layer`` attribute the input only; ``grid_map`` ones give a
    map over the layer's grid, channels summed.
    """

    name: str
    output: str
    summary: str
    needs_layer: bool = False
    grid_map: bool = False
    at_layer: bool = True

    @property
    def path(self) -> bool:
        """Whether the method integrates along a path of points."""
        return self.output == "integrated"

    @property
    def perturbs(self) -> bool:
        """Whether the method evaluates perturbed copies (forwards only, no gradient)."""
        return self.output == "perturbation"


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("saliency", "gradient", "gradient of the target score"),
        Method("input_x_gradient", "times_input", "gradient times input"),
        Method(
            "integrated_gradients",
            "integrated",
            "path-integrated gradient times (input - baseline)",
        ),
        Method(
            "grad_cam",
            "grad_cam",
            "layer channels weighted by their mean gradient",
            needs_layer=True,
            grid_map=True,
        ),
        Method(
            "guided_backprop",
            "gradient",
            "gradient passed by ReLUs where input and gradient are positive",
        ),
        Method(
            "deconvolution", "gradient", "gradient passed by ReLUs where the gradient is positive"
        ),
        Method("deeplift", "deeplift", "DeepLift multipliers times (input - reference)"),
        Method("deeplift_shap", "deeplift", "DeepLift averaged over a set of references"),
        Method(
            "gradient_shap",
            "shap",
            "mean gradient times (input - baseline) at random points from baselines to noisy inputs",
        ),
        Method("expected_gradients", "shap", "GradientSHAP with a data set as the baselines"),
        Method(
            "grad_cam_pp", "cam", "GradCAM++: channels weighted by positive gradients", True, True
        ),
        Method(
            "xgrad_cam",
            "cam",
            "XGradCAM: channels weighted by activation-normalised gradients",
            True,
            True,
        ),
        Method("layer_cam", "cam", "LayerCAM: activations times positive gradients", True, True),
        Method("hires_cam", "cam", "HiResCAM: activations times gradients", True, True),
        Method(
            "eigen_cam", "eigen_cam", "first principal component of the activations", True, True
        ),
        Method(
            "score_cam",
            "score_cam",
            "channels weighted by scores of inputs masked by them",
            True,
            True,
        ),
        Method("guided_grad_cam", "guided_grad_cam", "guided backpropagation times GradCAM", True),
        Method("activation", "activation", "the layer's activation itself", needs_layer=True),
        Method(
            "conductance",
            "conductance",
            "gradient along an input path times the layer's change",
            True,
        ),
        Method(
            "internal_influence", "gradient", "layer gradient integrated along an input path", True
        ),
        Method("shapley", "perturbation", "Shapley values of the players (permutation sampling)"),
        Method("kernel_shap", "perturbation", "KernelSHAP: a Shapley-kernel weighted linear fit"),
        Method("lime", "perturbation", "LIME: a locally weighted linear fit of the players"),
        Method(
            "occlusion",
            "perturbation",
            "score drop when a sliding window is set to the baseline",
            at_layer=False,
        ),
        Method("feature_ablation", "perturbation", "score drop when one player is removed"),
        Method(
            "feature_permutation",
            "perturbation",
            "score drop when one player is shuffled across the batch",
        ),
    )
}


def method(name: str) -> Method:
    """Look up a method by name; unknown names get close matches.

    Examples
    --------
    >>> method("saliency").output
    'gradient'
    >>> method("integrated_gradient")
    Traceback (most recent call last):
    ValueError: method: unknown value 'integrated_gradient'; expected one of 'saliency', 'input_x_gradient', 'integrated_gradients', 'grad_cam', 'guided_backprop', 'deconvolution', 'deeplift', 'deeplift_shap', 'gradient_shap', 'expected_gradients', 'grad_cam_pp', 'xgrad_cam', .... Did you mean 'integrated_gradients' or 'expected_gradients' or 'input_x_gradient'?
    """
    if name not in METHODS:
        raise unknown_name("method", name, METHODS)
    return METHODS[name]


def check_steps(steps: Any, rule: str) -> int:
    """Validate the number of integration steps.

    Examples
    --------
    >>> check_steps(0, "gausslegendre")
    Traceback (most recent call last):
    ValueError: steps: expected an integer >= 1; got 0
    >>> check_steps(10**100, "riemann_left")
    Traceback (most recent call last):
    ValueError: steps: about 10^100 is more than the 1000000 steps the riemann_left rule is built for; use at most 1000000 steps
    """
    steps = check_path_steps(positive_integer(steps, "steps"), rule)
    if rule == "riemann_trapezoid" and steps < 2:
        raise ValueError("steps: riemann_trapezoid needs at least 2 steps (both end points)")
    return steps


def check_rule(rule: Any) -> str:
    """Validate an integration rule name (the ``method`` of integrated gradients).

    Examples
    --------
    >>> check_rule("riemann_middle")
    'riemann_middle'
    """
    if not isinstance(rule, str) or rule not in INTEGRATION_RULES:
        raise unknown_name("method", str(rule), INTEGRATION_RULES)
    return rule


def check_flag(value: Any, argument: str) -> bool:
    """Validate a boolean parameter.

    Examples
    --------
    >>> check_flag(1, "abs")
    Traceback (most recent call last):
    TypeError: abs: expected True or False; got 1
    """
    if not isinstance(value, bool):
        raise TypeError(f"{argument}: expected True or False; got {value!r}")
    return value


@dataclass(frozen=True, eq=False)
class Attribution(Node):
    """An attribution ``method`` of ``target`` over the view's input or layer."""

    view: Node
    method: str
    target: Target
    params: tuple[tuple[str, Any], ...]
    op = "attribution"

    def validate(self) -> None:
        spec = method(self.method)
        source = source_of(self.view)
        if not spec.at_layer and layer_of(self.view) is not None:
            raise ValueError(
                f"{self.method}: its windows slide over the input's pixels, so it cannot "
                "attribute a layer; at a layer use feature_ablation (or shapley) with "
                "groups=ia.grid(rows, cols) or ia.patches(size)"
            )
        if spec.needs_layer and layer_of(self.view) is None:
            names = source.model.layer_names
            raise ValueError(
                f"{self.method}: select a layer first, e.g. q.layer({names[-1] if names else 'name'!r})"
                f".{self.method}(...); it attributes a layer's activation, not the input"
            )
        model = source.model
        self.target.check(source.n, model.num_classes, source.labels is not None)
        unit_layer = self.target.layer
        if unit_layer is not None and unit_layer not in model.layer_names:
            raise ValueError(
                f"unit: the model has no layer {unit_layer!r}."
                + did_you_mean(unit_layer, model.layer_names)
                + " Layers are named as in model.named_modules()."
            )

    @property
    def options(self) -> dict[str, Any]:
        """The method's parameters, with tensors unwrapped."""
        return {k: v.value if isinstance(v, Ref) else v for k, v in self.params}
