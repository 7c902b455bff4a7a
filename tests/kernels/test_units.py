"""Units of a layer as targets: Captum's Neuron* methods, every unit from one batched backward.

Scores ``[N, U]`` of the units are differentiated like logits, one target row per unit.
Parity: float64 models, ``rtol=1e-5`` and an ``atol`` of ``1e-5`` times the largest
magnitude of Captum's result.
"""

from __future__ import annotations

from contextlib import nullcontext

import captum.attr as ca
import pytest
import torch

from algebra.kernels.capture import captured
from algebra.kernels.gradients import target_gradients
from algebra.kernels.paths import alphas_and_weights, integrate, path_points
from algebra.kernels.plan import TargetSpec
from algebra.kernels.rules import relu_rules
from algebra.kernels.units import check_units, unit_rows, unit_scores

from .models import make_cnn

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning")

STEPS = 10


def images(n=3) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def assert_parity(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.detach()
    assert float(theirs.abs().max()) > 0, "degenerate reference: all zeros"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))


def unit_pass(net, points, layer, spec, rule=None):
    """Gradients ``[U, R, ...]`` of every unit with respect to the rows of ``points``."""
    points = points.detach().requires_grad_(True)
    with captured(net, (layer,)) as acts, relu_rules(rule) if rule else nullcontext():
        net(points)
    scores = unit_scores(acts[layer], spec, layer)
    rows = unit_rows(scores.shape[1], len(points))
    (grads,) = target_gradients(scores, (points,), rows, TargetSpec("all"), False)
    return grads


# What Captum calls each unit (its neuron selectors) --------------------------------------

SPECS = {
    "all": ("all", [(c, slice(None), slice(None)) for c in range(6)]),
    "int": (4, [(4, slice(None), slice(None))]),
    "tuple": ((2, 3, 5), [(2, 3, 5)]),
    "list": (
        [1, (0, 0, 7), (5, slice(2, 4), 1)],
        [(1, slice(None), slice(None)), (0, 0, 7), (5, slice(2, 4), 1)],
    ),
    "callable": (
        lambda a: a[:, :2].pow(2).sum((2, 3)),
        [lambda a, c=c: a[:, c].pow(2).sum((1, 2)) for c in range(2)],
    ),
}


@pytest.mark.parametrize("spec", SPECS)
def test_neuron_gradient(spec):
    net, x = make_cnn(), images()
    ours = unit_pass(net, x, "conv2", SPECS[spec][0])
    selectors = SPECS[spec][1]
    assert ours.shape == (len(selectors), *x.shape)
    for u, selector in enumerate(selectors):
        theirs = ca.NeuronGradient(net, net.conv2).attribute(x.clone(), selector)
        assert_parity(ours[u], theirs)


@pytest.mark.parametrize("spec", ["all", "list"])
@pytest.mark.parametrize("multiply", [True, False])
def test_neuron_integrated_gradients(spec, multiply):
    net, x = make_cnn(), images()
    baseline = 0.1
    alphas, weights = alphas_and_weights("gausslegendre", STEPS)
    points = path_points(torch.full_like(x, baseline), x, alphas)
    grads = unit_pass(net, points, "relu2", SPECS[spec][0])  # all units, all steps: one backward
    integrated = integrate(grads, torch.tensor(weights, dtype=x.dtype))
    ours = integrated * (x - baseline) if multiply else integrated
    for u, selector in enumerate(SPECS[spec][1]):
        theirs = ca.NeuronIntegratedGradients(
            net, net.relu2, multiply_by_inputs=multiply
        ).attribute(x.clone(), selector, baselines=baseline, n_steps=STEPS, method="gausslegendre")
        assert_parity(ours[u], theirs)


@pytest.mark.parametrize("rule", ["guided_backprop", "deconvolution"])
def test_neuron_guided_backprop_and_deconvolution(rule):
    net, x = make_cnn(), images()
    ours = unit_pass(net, x, "conv2", "all", rule)
    captum = ca.NeuronGuidedBackprop if rule == "guided_backprop" else ca.NeuronDeconvolution
    for c in range(6):
        theirs = captum(net, net.conv2).attribute(x.clone(), (c, slice(None), slice(None)))
        assert_parity(ours[c], theirs)


def test_units_of_a_flat_layer():
    net, x = make_cnn(), images()
    ours = unit_pass(net, x, "fc", "all")
    for c in range(5):
        assert_parity(ours[c], ca.NeuronGradient(net, net.fc).attribute(x.clone(), c))


def test_one_backward_equals_one_per_unit():
    net, x = make_cnn(), images()
    together = unit_pass(net, x, "conv2", "all")
    for c in range(6):
        torch.testing.assert_close(
            together[c], unit_pass(net, x, "conv2", c)[0], rtol=0, atol=1e-15
        )


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (6, "unit: index 6 is outside layer 'conv2''s dim 0 of size 6"),
        (-7, "unit: index -7 is outside"),
        ((0, 8, 0), "unit: index 8 is outside layer 'conv2''s dim 1 of size 8"),
        ((0, 0, 0, 0), "has 4 entries, but layer 'conv2''s activation has 3 dims"),
        ("every", "unit: expected 'all'"),
        ([], "at least one unit"),
        (1.5, "unit: expected an int"),
        ((0, "a"), "ints and slices"),
        (True, "unit: expected an int"),
    ],
)
def test_bad_units_are_named(spec, match):
    with pytest.raises(ValueError, match=match):
        check_units(spec, (6, 8, 8), "conv2")
    with pytest.raises(ValueError, match=match):
        unit_scores(torch.zeros(2, 6, 8, 8), spec, "conv2")


def test_callable_units_must_give_scores_per_sample():
    with pytest.raises(ValueError, match="unit: a callable unit must return \\[N\\] or \\[N, U\\]"):
        unit_scores(torch.zeros(2, 6, 8, 8), lambda a: a.sum(), "conv2")
    assert check_units(lambda a: a, (6,)) == -1
    assert check_units("all", (6, 8, 8)) == 6 and check_units([0, 1], (6, 8, 8)) == 2
