"""GradientSHAP and expected gradients through the public API: equal to Captum's GradientShap
and LayerGradientShap given the same draws (float64, rtol 1e-5), deltas equal to the mean of
Captum's per-draw deltas, seeded draws reproducible, baselines checked when built."""

from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch
from captum.attr._core.noise_tunnel import NoiseTunnel

import algebra as ia
from algebra.kernels.shap_runs import gradient_shap_draws

SAMPLES, SEED = 6, 11


def feed_draws(monkeypatch, x, baselines, stdev):
    """Make Captum draw what ours draws from ``SEED``: NumPy's baseline indices and alphas,
    and NoiseTunnel's noise (Captum's rows are sample-major, ``n * S + s``)."""
    index, alpha, noise = gradient_shap_draws(x, len(baselines), SAMPLES, stdev, SEED)
    sample_major = {
        "choice": index.T.reshape(-1).numpy(),
        "uniform": alpha.T.reshape(-1).numpy(),
    }
    monkeypatch.setattr(np.random, "choice", lambda *a, **k: sample_major["choice"])
    monkeypatch.setattr(np.random, "uniform", lambda *a, **k: sample_major["uniform"])
    if noise is not None:

        def add(input, stdev, samples):
            rows = noise.transpose(0, 1).reshape(-1, *input.shape[1:])
            return input.repeat_interleave(samples, 0) + rows

        monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add))


CASES = {"cnn": ("cnn64", "images64", "conv2"), "mlp": ("mlp64", "features64", "act")}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stdev", [0.0, 0.2])
def test_gradient_shap_equals_captum_with_the_same_draws(
    request, monkeypatch, parity64, case, stdev
):
    net, x = (request.getfixturevalue(name) for name in CASES[case][:2])
    baselines = torch.randn(4, *x.shape[1:], generator=torch.Generator().manual_seed(3)).double()
    q = ia.model(net).on(x)
    kw = {"samples": SAMPLES, "stdev": stdev, "seed": SEED}
    result, local = ia.compute(
        q.gradient_shap(ia.classes([0, 2]), baselines, **kw),
        q.gradient_shap(ia.classes([0, 2]), baselines, multiply_by_inputs=False, **kw),
    )
    feed_draws(monkeypatch, x, baselines, stdev)
    for c in (0, 2):
        theirs, delta = ca.GradientShap(net).attribute(
            x.clone(),
            baselines,
            n_samples=SAMPLES,
            stdevs=stdev,
            target=c,
            return_convergence_delta=True,
        )
        parity64(result.sel(target=c), theirs)
        per_draw = delta.reshape(len(x), SAMPLES).mean(1)
        np.testing.assert_allclose(result.delta.sel(target=c).values, per_draw, atol=1e-10)
        theirs_local = ca.GradientShap(net, multiply_by_inputs=False).attribute(
            x.clone(), baselines, n_samples=SAMPLES, stdevs=stdev, target=c
        )
        parity64(local.sel(target=c), theirs_local)
    assert float(abs(result.delta).max()) > 1e-6  # sampled points: not complete


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("stdev", [0.0, 0.1])
def test_layer_gradient_shap_equals_captum(request, monkeypatch, parity64, case, stdev):
    net_name, x_name, layer = CASES[case]
    net, x = request.getfixturevalue(net_name), request.getfixturevalue(x_name)
    baselines = torch.randn(4, *x.shape[1:], generator=torch.Generator().manual_seed(3)).double()
    result = (
        ia.model(net)
        .on(x)
        .layer(layer)
        .gradient_shap(3, baselines, samples=SAMPLES, stdev=stdev, seed=SEED)
        .compute()
    )
    feed_draws(monkeypatch, x, baselines, stdev)
    module = dict(net.named_modules())[layer]
    theirs = ca.LayerGradientShap(net, module).attribute(
        x.clone(), baselines, n_samples=SAMPLES, stdevs=stdev, target=3
    )
    parity64(result, theirs)


def test_expected_gradients_is_gradient_shap_over_a_data_set(mlp64, features64):
    data = torch.randn(32, 6, generator=torch.Generator().manual_seed(8)).double()
    q = ia.model(mlp64).on(features64)
    expected, shap = ia.compute(
        q.expected_gradients(1, data, samples=20, seed=2),
        q.gradient_shap(1, data, samples=20, stdev=0.0, seed=2),
    )
    np.testing.assert_array_equal(expected.values, shap.values)
    np.testing.assert_array_equal(expected.delta.values, shap.delta.values)
    assert expected.attrs["method"] == "expected_gradients"


def test_seeded_draws_are_reproducible_and_unseeded_follow_torch(mlp64, features64):
    q = ia.model(mlp64).on(features64)
    data = torch.zeros(2, 6, dtype=torch.float64)
    run = lambda seed: q.gradient_shap(0, data, 8, 0.1, seed).compute(session=ia.Session())  # noqa: E731
    assert np.array_equal(run(4).values, run(4).values)
    assert not np.allclose(run(4).values, run(5).values)
    torch.manual_seed(1)
    first = run(None)
    torch.manual_seed(1)
    assert np.array_equal(first.values, run(None).values)


def test_all_targets_and_layers_from_one_forward_and_backward(cnn, images, counting, passes):
    net = counting(cnn)
    q = ia.model(net).on(images)
    data = torch.rand(5, 3, 8, 8)
    exprs = [
        q.gradient_shap("all", data, samples=4, seed=0),
        q.gradient_shap(ia.topk(2), data, samples=4, seed=0, multiply_by_inputs=False),
        q.layer("net.conv2").gradient_shap(0, data, samples=4, seed=0),
    ]
    _, counted, planned = passes(net, exprs)
    # the inputs (4 rows, capturing conv2), the 5 baselines, the 4 x 4 points: one backward
    # over every class to the input and conv2
    assert counted == planned == (3, 4 + 5 + 16, 1)
    with_noise = [q.gradient_shap("all", data, samples=4, stdev=0.1, seed=0)]
    _, counted, planned = passes(net, with_noise)
    assert counted == planned == (4, 4 + 5 + 16 + 16, 1)  # and the noisy inputs' scores


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda q: q.gradient_shap(0, torch.zeros(3, 5)),
            ValueError,
            "baselines: expected a tensor of shape \\[B, 6\\]",
        ),
        (
            lambda q: q.gradient_shap(0, torch.zeros(6)),
            ValueError,
            "baselines: expected a tensor of shape",
        ),
        (lambda q: q.gradient_shap(0, torch.zeros(0, 6)), ValueError, "baselines: expected"),
        (
            lambda q: q.gradient_shap(0, torch.zeros(2, 6), samples=0),
            ValueError,
            "samples: expected an integer >= 1",
        ),
        (
            lambda q: q.gradient_shap(0, torch.zeros(2, 6), stdev=-1.0),
            ValueError,
            "stdev: expected a finite number >= 0",
        ),
        (
            lambda q: q.gradient_shap(0, torch.zeros(2, 6), seed="a"),
            ValueError,
            "seed: expected an integer or None",
        ),
        (
            lambda q: q.expected_gradients(0, torch.zeros(2, 7)),
            ValueError,
            "data: expected a tensor of shape \\[B, 6\\]",
        ),
        (
            lambda q: q.gradient_shap(0, torch.full((2, 6), float("nan"))),
            ValueError,
            "baselines: values must be finite",
        ),
    ],
)
def test_bad_parameters_are_refused_when_built(mlp, features, call, error, match):
    with pytest.raises(error, match=match):
        call(ia.model(mlp).on(features))
