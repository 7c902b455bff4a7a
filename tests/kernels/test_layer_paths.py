"""Layer methods along input paths, and IG's local form and delta: Captum parity.

Conductance, internal influence and integrated gradients are composed from the kernels
(path points, one forward over all steps capturing the layer, one batched backward over
all targets) and compared with Captum on float64 models: ``rtol=1e-5`` and an ``atol`` of
``1e-5`` times the largest magnitude of Captum's result.
"""

from __future__ import annotations

from collections import OrderedDict

import captum.attr as ca
import pytest
import torch
from torch import nn

from algebra.kernels.capture import captured
from algebra.kernels.deltas import convergence_delta, target_scores
from algebra.kernels.gradients import target_gradients
from algebra.kernels.layer_paths import conductance, conductance_alphas, internal_influence
from algebra.kernels.path_steps import INTEGRATION_RULES
from algebra.kernels.paths import alphas_and_weights, integrate, path_points
from algebra.kernels.plan import TargetSpec

from .models import make_cnn

STEPS = 12
CLASSES = [0, 2, 3]


def make_mlp() -> nn.Module:
    torch.manual_seed(1)
    return (
        nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(6, 16),
                act1=nn.ReLU(),
                fc2=nn.Linear(16, 16),
                act2=nn.Tanh(),
                fc3=nn.Linear(16, 4),
            )
        )
        .double()
        .eval()
    )


LAYER_CASES = [
    (make_cnn, (3, 3, 8, 8), "relu1"),
    (make_cnn, (3, 3, 8, 8), "conv2"),
    (make_mlp, (4, 6), "fc2"),
    (make_mlp, (4, 6), "act2"),
]
IDS = [f"{f.__name__[5:]}-{layer}" for f, _, layer in LAYER_CASES]


def randn(*shape, seed=2) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_parity(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.detach()
    assert float(theirs.abs().max()) > 0, "degenerate reference: all zeros"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))


def path_pass(net, x, baseline, alphas, layer=None, classes=CLASSES):
    """Gradients ``[T, S N, ...]`` at the step-major path points (input, or ``layer``),
    the layer's activations there, and the logits ``[S N, C]``: one forward, one backward."""
    start = torch.full_like(x, baseline) if not isinstance(baseline, torch.Tensor) else baseline
    points = path_points(start.expand_as(x), x, alphas).requires_grad_(layer is None)
    with captured(net, () if layer is None else (layer,)) as acts:
        out = net(points)
    wrt = points if layer is None else acts[layer]
    rows = torch.tensor(classes)[:, None].expand(-1, len(points))
    (grads,) = target_gradients(out, (wrt,), rows, TargetSpec("classes", tuple(classes)), False)
    return grads, wrt.detach(), out.detach()


@pytest.mark.parametrize(("factory", "shape", "layer"), LAYER_CASES, ids=IDS)
@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid", "riemann_left"])
def test_layer_conductance(factory, shape, layer, rule):
    net, x = factory(), randn(*shape)
    baseline = randn(1, *shape[1:], seed=3) * 0.5
    grads, acts, _ = path_pass(net, x, baseline, conductance_alphas(rule, STEPS), layer)
    ours = conductance(grads, acts, len(x))
    module = dict(net.named_modules())[layer]
    for i, c in enumerate(CLASSES):
        theirs = ca.LayerConductance(net, module).attribute(
            x.clone(), baseline, target=c, n_steps=STEPS, method=rule
        )
        assert_parity(ours[i], theirs)


@pytest.mark.parametrize(("factory", "shape", "layer"), LAYER_CASES, ids=IDS)
@pytest.mark.parametrize("rule", INTEGRATION_RULES)
def test_internal_influence(factory, shape, layer, rule):
    net, x = factory(), randn(*shape)
    alphas, weights = alphas_and_weights(rule, STEPS)
    grads, _, _ = path_pass(net, x, 0.2, alphas, layer)
    ours = internal_influence(grads, torch.tensor(weights, dtype=x.dtype))
    module = dict(net.named_modules())[layer]
    for i, c in enumerate(CLASSES):
        theirs = ca.InternalInfluence(net, module).attribute(
            x.clone(), 0.2, target=c, n_steps=STEPS, method=rule
        )
        assert_parity(ours[i], theirs)


@pytest.mark.parametrize(("factory", "shape", "layer"), LAYER_CASES, ids=IDS)
def test_layer_activation(factory, shape, layer):
    net, x = factory(), randn(*shape)
    with torch.no_grad(), captured(net, (layer,)) as acts:
        net(x)
    module = dict(net.named_modules())[layer]
    assert_parity(acts[layer], ca.LayerActivation(net, module).attribute(x.clone()))


@pytest.mark.parametrize("factory, shape", [(make_cnn, (3, 3, 8, 8)), (make_mlp, (4, 6))])
@pytest.mark.parametrize("rule", ["riemann_trapezoid", "gausslegendre"])
def test_integrated_gradients_local_form_and_delta(factory, shape, rule):
    net, x = factory(), randn(*shape)
    baseline = randn(1, *shape[1:], seed=4) * 0.3
    alphas, weights = alphas_and_weights(rule, STEPS)
    grads, _, logits = path_pass(net, x, baseline, alphas)
    integrated = integrate(grads, torch.tensor(weights, dtype=x.dtype))
    ours = integrated * (x - baseline)
    rows = torch.tensor(CLASSES)[:, None].expand(-1, len(x))
    if rule == "riemann_trapezoid":
        # the path's first and last steps are the baseline and the input: no extra forward
        start, end = logits[: len(x)], logits[-len(x) :]
    else:
        with torch.no_grad():
            start, end = net(baseline), net(x)  # one baseline row, and the inputs' logits
    delta = convergence_delta(ours, target_scores(end, rows), target_scores(start, rows))
    for i, c in enumerate(CLASSES):
        theirs, their_delta = ca.IntegratedGradients(net).attribute(
            x.clone(),
            baseline,
            target=c,
            n_steps=STEPS,
            method=rule,
            return_convergence_delta=True,
        )
        assert_parity(ours[i], theirs)
        # Captum rounds IG's step sizes to float32: its delta carries ~1e-8 relative error.
        torch.testing.assert_close(delta[i], their_delta, rtol=1e-4, atol=1e-8)
        local = ca.IntegratedGradients(net, multiply_by_inputs=False).attribute(
            x.clone(), baseline, target=c, n_steps=STEPS, method=rule
        )
        assert_parity(integrated[i], local)


def test_conductance_needs_two_points_per_sample():
    with pytest.raises(ValueError, match="conductance: expected step-major activations"):
        conductance(torch.zeros(1, 3, 2), torch.zeros(3, 2), 3)
