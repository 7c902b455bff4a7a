"""GradientSHAP kernels: Captum parity with the same draws, layer form, deltas, validation.

Captum draws the baseline indices (``np.random.choice``) and the alphas
(``np.random.uniform``) from NumPy's global RNG and the noise from torch's, sample-major
(rows ``n * S + s``). The tests seed NumPy, replay the same draws into our noise-major
``[S, N]`` layout, and hand Captum our noise. Parity: float64 models, ``rtol=1e-5`` and
an ``atol`` of ``1e-5`` times the largest magnitude of Captum's result.
"""

from __future__ import annotations

from collections import OrderedDict

import captum.attr as ca
import numpy as np
import pytest
import torch
from captum.attr._core.noise_tunnel import NoiseTunnel
from torch import nn

from algebra.kernels.capture import captured
from algebra.kernels.deltas import convergence_delta, drawn_scores, target_scores
from algebra.kernels.gradients import target_gradients
from algebra.kernels.noise import noisy_copies
from algebra.kernels.plan import TargetSpec
from algebra.kernels.shap import check_baselines, shap_attribution, shap_draws, shap_points

from .models import make_cnn

SAMPLES = 5
SEED = 11


def make_mlp() -> nn.Module:
    torch.manual_seed(1)
    return (
        nn.Sequential(OrderedDict(fc1=nn.Linear(6, 16), act=nn.Tanh(), fc2=nn.Linear(16, 4)))
        .double()
        .eval()
    )


CASES = {"cnn": (make_cnn, (3, 3, 8, 8), "conv2"), "mlp": (make_mlp, (4, 6), "act")}


def randn(*shape, seed=2) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_parity(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.detach()
    assert float(theirs.abs().max()) > 0, "degenerate reference: all zeros"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))


def captum_draws(n: int, baselines: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Captum's baseline indices and alphas after ``np.random.seed(SEED)``, as ``[S, N]``."""
    np.random.seed(SEED)
    index = np.random.choice(baselines, SAMPLES * n)
    alpha = np.random.uniform(0.0, 1.0, n * SAMPLES)
    as_ours = lambda a: torch.from_numpy(a.reshape(n, SAMPLES).T.copy())  # noqa: E731
    return as_ours(index), as_ours(alpha)


def feed_noise(monkeypatch, noise: torch.Tensor) -> None:
    def add(input, stdev, samples):
        sample_major = noise.transpose(0, 1).reshape(-1, *input.shape[1:])
        return input.repeat_interleave(samples, dim=0) + sample_major

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add))


def grads_at(net, points, classes, layer=None):
    """Gradients ``[T, R, ...]`` at the rows of ``points``, and the logits ``[R, C]``."""
    points = points.detach().requires_grad_(layer is None)
    with captured(net, () if layer is None else (layer,)) as acts:
        out = net(points)
    wrt = points if layer is None else acts[layer]
    rows = torch.tensor(classes)[:, None].expand(-1, len(points))
    (grads,) = target_gradients(out, (wrt,), rows, TargetSpec("classes", tuple(classes)), False)
    return grads, out.detach()


def activations(net, points, layer):
    with torch.no_grad(), captured(net, (layer,)) as acts:
        net(points)
    return acts[layer]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stdev", [0.0, 0.2])
@pytest.mark.parametrize("multiply", [True, False])
def test_gradient_shap_parity(monkeypatch, case, stdev, multiply):
    factory, shape, _ = CASES[case]
    net, x = factory(), randn(*shape)
    baselines = check_baselines(randn(4, *shape[1:], seed=3), x)
    index, alpha = captum_draws(len(x), len(baselines))
    ends = noisy_copies(x, SAMPLES, stdev, relative=False, seed=5)  # [S, N, ...]
    points, starts = shap_points(ends, baselines, index, alpha)
    classes = [0, 2]
    grads, _ = grads_at(net, points.flatten(0, 1), classes)  # one forward, one backward
    ours = shap_attribution(grads, ends, starts, multiply)
    feed_noise(monkeypatch, ends - x)
    for i, c in enumerate(classes):
        np.random.seed(SEED)
        theirs = ca.GradientShap(net, multiply_by_inputs=multiply).attribute(
            x.clone(), baselines, n_samples=SAMPLES, stdevs=stdev, target=c
        )
        assert_parity(ours[i], theirs)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stdev", [0.0, 0.2])
def test_gradient_shap_deltas(monkeypatch, case, stdev):
    factory, shape, _ = CASES[case]
    net, x = factory(), randn(*shape)
    baselines = randn(4, *shape[1:], seed=3)
    index, alpha = captum_draws(len(x), len(baselines))
    ends = noisy_copies(x, SAMPLES, stdev, relative=False, seed=5)
    points, starts = shap_points(ends, baselines, index, alpha)
    grads, _ = grads_at(net, points.flatten(0, 1), [1])
    per_draw = shap_attribution(grads, ends, starts, per_draw=True)  # [T, S, N, ...]
    with torch.no_grad():
        # scores at the noisy inputs (the inputs' logits when stdev = 0) and the B baselines
        end_logits = net(ends.flatten(0, 1)).reshape(SAMPLES, len(x), -1)
        base_logits = net(baselines)
    rows = torch.ones(1, len(x), dtype=torch.long)
    end_scores = torch.stack([target_scores(end_logits[s], rows) for s in range(SAMPLES)], 1)
    delta = convergence_delta(per_draw, end_scores, drawn_scores(base_logits, rows, index))
    feed_noise(monkeypatch, ends - x)
    np.random.seed(SEED)
    _, theirs = ca.GradientShap(net).attribute(
        x.clone(),
        baselines,
        n_samples=SAMPLES,
        stdevs=stdev,
        target=1,
        return_convergence_delta=True,
    )
    torch.testing.assert_close(delta[0], theirs.reshape(len(x), SAMPLES).T, rtol=0, atol=1e-10)
    assert float(delta.abs().max()) > 1e-6  # a sampled path: not complete


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("multiply", [True, False])
def test_layer_gradient_shap_parity(monkeypatch, case, multiply):
    factory, shape, layer = CASES[case]
    net, x = factory(), randn(*shape)
    baselines = randn(4, *shape[1:], seed=3)
    index, alpha = captum_draws(len(x), len(baselines))
    ends = noisy_copies(x, SAMPLES, 0.1, relative=False, seed=5)
    points, _ = shap_points(ends, baselines, index, alpha)
    grads, _ = grads_at(net, points.flatten(0, 1), [3], layer=layer)
    end_acts = activations(net, ends.flatten(0, 1), layer)
    end_acts = end_acts.reshape(SAMPLES, len(x), *end_acts.shape[1:])
    start_acts = activations(net, baselines, layer)[index]  # B rows evaluated once
    ours = shap_attribution(grads, end_acts, start_acts, multiply)
    feed_noise(monkeypatch, ends - x)
    np.random.seed(SEED)
    module = dict(net.named_modules())[layer]
    theirs = ca.LayerGradientShap(net, module, multiply_by_inputs=multiply).attribute(
        x.clone(), baselines, n_samples=SAMPLES, stdevs=0.1, target=3
    )
    assert_parity(ours[0], theirs)


def test_expected_gradients_with_a_data_set_as_baselines():
    # Expected gradients: GradientSHAP without noise, the baselines a sample of the data.
    net, x = make_mlp(), randn(4, 6)
    data = randn(32, 6, seed=8)
    index, alpha = shap_draws(200, len(x), len(data), seed=0, dtype=x.dtype)
    points, starts = shap_points(x, data, index, alpha)
    grads, _ = grads_at(net, points.flatten(0, 1), [0])
    ours = shap_attribution(grads, x, starts)[0]
    # An independent Monte Carlo estimate over the same draws, one draw at a time.
    total = torch.zeros_like(x)
    for s in range(200):
        b = data[index[s]]
        p = (b + alpha[s, :, None] * (x - b)).requires_grad_(True)
        (g,) = torch.autograd.grad(net(p)[:, 0].sum(), p)
        total += g * (x - b)
    torch.testing.assert_close(ours, total / 200, rtol=1e-10, atol=1e-12)


def test_draws_are_seeded_uniform_and_on_the_device():
    index, alpha = shap_draws(1000, 3, baselines=4, seed=1, dtype=torch.float64)
    again = shap_draws(1000, 3, baselines=4, seed=1, dtype=torch.float64)
    assert torch.equal(index, again[0]) and torch.equal(alpha, again[1])
    assert not torch.equal(index, shap_draws(1000, 3, baselines=4, seed=2)[0])
    assert set(index.unique().tolist()) == {0, 1, 2, 3}
    assert alpha.dtype == torch.float64 and float(alpha.min()) >= 0 and float(alpha.max()) < 1
    assert abs(float(alpha.mean()) - 0.5) < 0.03
    with pytest.raises(ValueError, match="samples: expected an integer >= 1"):
        shap_draws(0, 3, 4)


@pytest.mark.parametrize(
    "baselines", [torch.zeros(3, 5), torch.zeros(6), torch.zeros(0, 6), [[0.0] * 6]]
)
def test_baselines_of_the_wrong_shape(baselines):
    with pytest.raises(ValueError, match="baselines: expected a tensor of shape \\[B, 6\\]"):
        check_baselines(baselines, torch.zeros(2, 6))
