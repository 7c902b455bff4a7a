"""Noise as an operator: q.noise(...) composes with every method and verb, equals Captum's
NoiseTunnel given the same draws, shares one forward and one batched backward on the noisy
copies, is reproducible with a seed, and refuses bad input when built."""

from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch
from captum.attr._core.noise_tunnel import NoiseTunnel

import algebra as ia
from algebra.kernels.noise import draw_noise

SAMPLES = 5


def feed(monkeypatch, noise: torch.Tensor) -> None:
    """Make Captum's NoiseTunnel add ``noise`` ``[S, N, ...]`` (its rows are sample-major)."""

    def add(input, stdev, samples):
        assert samples == noise.shape[0]
        return input.repeat_interleave(samples, 0) + noise.transpose(0, 1).reshape(
            -1, *input.shape[1:]
        )

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add))


def draws(x: torch.Tensor, seed: int = 3) -> torch.Tensor:
    return 0.2 * torch.randn(
        SAMPLES, *x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype
    )


SMOOTHED = {
    "smoothgrad": lambda e: e.mean("noise"),
    "smoothgrad_sq": lambda e: e.square().mean("noise"),
    "vargrad": lambda e: e.var("noise"),
}


@pytest.mark.parametrize("kind", SMOOTHED)
@pytest.mark.parametrize("abs_", [True, False])
def test_noise_tunnel_over_saliency(monkeypatch, cnn64, images64, parity64, kind, abs_):
    noise = draws(images64)
    feed(monkeypatch, noise)
    noisy = ia.model(cnn64).on(images64).noise(noise=noise)
    result = SMOOTHED[kind](noisy.saliency("all", abs=abs_)).compute()
    assert result.dims == ("sample", "target", "channel", "y", "x")
    for c in range(5):
        theirs = NoiseTunnel(ca.Saliency(cnn64)).attribute(
            images64.clone(), nt_type=kind, nt_samples=SAMPLES, stdevs=0.2, target=c, abs=abs_
        )
        parity64(result.isel(target=c), theirs)


@pytest.mark.parametrize("case", ["cnn", "mlp"])
def test_noise_tunnel_over_integrated_gradients_and_its_deltas(
    monkeypatch, cnn64, images64, mlp64, features64, parity64, case
):
    net, x = (cnn64, images64) if case == "cnn" else (mlp64, features64)
    noise = draws(x)
    feed(monkeypatch, noise)
    per_copy = ia.model(net).on(x).noise(noise=noise).integrated_gradients(1, steps=8).compute()
    assert per_copy.delta.dims == ("sample", "noise")
    theirs, delta = NoiseTunnel(ca.IntegratedGradients(net)).attribute(
        x.clone(),
        nt_type="smoothgrad",
        nt_samples=SAMPLES,
        stdevs=0.2,
        target=1,
        n_steps=8,
        return_convergence_delta=True,
    )
    parity64(per_copy.mean("noise"), theirs)
    # Captum's deltas are per noisy copy, sample-major; IG's own error, not rounding
    ours = torch.from_numpy(per_copy.delta.values.reshape(-1))
    torch.testing.assert_close(ours, delta, rtol=1e-4, atol=1e-8)


def test_smoothgrad_shorthand_builds_the_composition(cnn, images):
    q = ia.model(cnn).on(images)
    noisy = q.noise(6, 0.1, seed=4).saliency(0, abs=False)
    cases = {
        "smoothgrad": noisy.mean("noise"),
        "smoothgrad_sq": noisy.square().mean("noise"),
        "vargrad": noisy.var("noise"),
    }
    for kind, expected in cases.items():
        got = q.smoothgrad(0, samples=6, stdev=0.1, kind=kind, seed=4, abs=False)
        assert got.node == expected.node, kind
    ig = q.smoothgrad("pred", base="integrated_gradients", samples=3, seed=0, steps=4)
    assert ig.node == q.noise(3, seed=0).integrated_gradients("pred", steps=4).mean("noise").node
    # VarGrad is E[a^2] - E[a]^2 of the same copies
    var, sq, mean = ia.compute(cases["vargrad"], cases["smoothgrad_sq"], cases["smoothgrad"])
    np.testing.assert_allclose(var.values, sq.values - mean.values**2, rtol=1e-4, atol=1e-9)


def test_seeded_noise_is_reproducible(cnn, images):
    q = ia.model(cnn).on(images)
    first = q.noise(4, seed=7).saliency(1).compute(session=ia.Session())
    again = q.noise(4, seed=7).saliency(1).compute(session=ia.Session())
    other = q.noise(4, seed=8).saliency(1).compute(session=ia.Session())
    assert np.array_equal(first.values, again.values)
    assert not np.allclose(first.values, other.values)
    # the copies are the inputs plus draw_noise's draws (relative to each sample's range)
    given = q.noise(noise=draw_noise(images, 4, 0.15, seed=7)).saliency(1).compute()
    np.testing.assert_array_equal(first.values, given.values)


def test_unseeded_noise_follows_torchs_global_rng(cnn, images):
    q = ia.model(cnn).on(images)
    torch.manual_seed(11)
    a = q.noise(3).saliency(0).compute(session=ia.Session())
    torch.manual_seed(11)
    b = q.noise(3).saliency(0).compute(session=ia.Session())
    c = q.noise(3).saliency(0).compute(session=ia.Session())
    assert np.array_equal(a.values, b.values) and not np.array_equal(b.values, c.values)


def test_absolute_noise(cnn, images):
    q = ia.model(cnn).on(images)
    given = draw_noise(images, 4, 0.3, relative=False, seed=2)
    a = q.noise(4, 0.3, relative=False, seed=2).input_x_gradient(0).compute()
    b = q.noise(noise=given).input_x_gradient(0).compute()
    np.testing.assert_array_equal(a.values, b.values)


def test_targets_resolve_at_the_clean_inputs(cnn, images):
    q = ia.model(cnn).on(images, labels=[0, 1, 2, 3])
    clean = q.saliency("pred").compute()
    noisy = q.noise(6, 1.0, seed=0).saliency("pred").compute()
    assert noisy.dims == ("sample", "noise", "channel", "y", "x")
    assert noisy["class"].values.tolist() == clean["class"].values.tolist()
    assert noisy.pred.values.tolist() == clean.pred.values.tolist()
    per_sample = q.noise(6, seed=0).saliency([4, 3, 2, 1], abs=False).compute()
    assert per_sample["class"].values.tolist() == [4, 3, 2, 1]
    # each noisy copy is differentiated for its own sample's class
    one = q.noise(6, seed=0).saliency(ia.classes([4, 3, 2, 1]), abs=False).compute()
    for n, c in enumerate([4, 3, 2, 1]):
        np.testing.assert_array_equal(per_sample.values[n], one.sel(target=c).values[n])


def test_each_copy_explains_its_samples_clean_prediction(mlp, features):
    q = ia.model(mlp).on(features)
    clean = q.saliency("pred").compute()
    preds = clean["class"].values.tolist()
    # noise large enough to change the copies' own predictions
    noisy = q.noise(16, 3.0, seed=0)
    by_pred, by_class = ia.compute(noisy.saliency("pred"), noisy.saliency(preds))
    np.testing.assert_array_equal(by_pred.values, by_class.values)
    with torch.no_grad():
        copies = features + draw_noise(features, 16, 3.0, seed=0)
        flipped = mlp(copies.flatten(0, 1)).argmax(1).reshape(16, -1) != torch.tensor(preds)
    assert bool(flipped.any())  # the test would see copies resolving their own prediction
    assert by_pred.pred.values.tolist() == clean.pred.values.tolist()


def test_every_method_composes_with_noise(cnn, images):
    q = ia.model(cnn).on(images)
    noisy = q.noise(3, seed=1)
    exprs = {
        "ig_layer": noisy.layer("relu1").integrated_gradients(0, steps=3),
        "cam": noisy.layer("relu2").grad_cam_pp(ia.topk(2)),
        "deeplift": noisy.deeplift(1),
        "window": noisy.window(0, 4, 0, 4).saliency(0),
        "units": noisy.saliency(ia.units("conv2")),
        "baseline_per_sample": noisy.integrated_gradients(0, steps=3, baseline=images * 0.5),
    }
    results = dict(zip(exprs, ia.compute(*exprs.values()), strict=True))
    assert results["ig_layer"].sizes["noise"] == 3
    assert results["cam"].dims == ("sample", "target", "noise", "y", "x")
    assert results["units"].dims == ("sample", "unit", "noise", "channel", "y", "x")
    assert results["deeplift"].delta.dims == ("sample", "noise")
    window = results["window"].values
    assert np.all(window[..., 4:, :] == 0) and np.any(window[..., :4, :4] != 0)
    # a noisy copy's integrated gradients from a per-sample baseline: that sample's baseline
    copy = images[1] + draw_noise(images, 3, 0.15, seed=1)[2, 1]
    alone = (
        ia.model(cnn).on(copy[None]).integrated_gradients(0, steps=3, baseline=images[1:2] * 0.5)
    )
    np.testing.assert_allclose(
        results["baseline_per_sample"].values[1, 2], alone.compute().values[0], rtol=1e-5, atol=1e-7
    )


def test_noisy_copies_share_one_forward_and_one_batched_backward(
    cnn, images, counting, passes, assert_untouched
):
    net = counting(cnn)
    noisy = ia.model(net, classes=list("abcde")).on(images).noise(8, seed=0)
    exprs = [
        noisy.saliency("all").mean("noise"),
        noisy.input_x_gradient(ia.topk(2)).var("noise"),
        noisy.layer("net.relu2").grad_cam("all"),
        noisy.layer("net.relu2").layer_cam(0),
        noisy.guided_backprop(0),
    ]
    _, counted, planned = passes(net, exprs)
    # the clean inputs (4 rows: targets, labels), the copies (32 rows, one batched backward
    # over all classes to the input and the layer), the copies under guided rules (32 rows)
    assert counted == planned == (3, 4 + 32 + 32, 2)
    # on a CPU, a CNN's targets are faster one backward each (kernels.backward_strategy):
    # all 5 classes (the top-2 and class 0 among them), then guided backprop's class 0
    sequential, counted, planned = passes(net, exprs, backward="sequential")
    assert counted == planned == (3, 4 + 32 + 32, 5 + 1)
    batched, _, _ = passes(net, exprs)
    for a, b in zip(sequential, batched, strict=True):
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-7)
    assert_untouched(cnn)


def test_chunked_noisy_copies_equal_unchunked(cnn, images, counting, passes):
    net = counting(cnn)
    e = ia.model(net).on(images).noise(8, seed=0).integrated_gradients(ia.topk(2), steps=4)
    (whole,), _, _ = passes(net, [e])
    with ia.set_options(memory_budget=60_000):
        (chunked,), counted, planned = passes(net, [e])
    assert counted == planned and counted[0] > 3
    np.testing.assert_allclose(chunked.values, whole.values, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(chunked.delta.values, whole.delta.values, rtol=1e-4, atol=1e-6)


def test_noise_has_no_query_text(cnn, images):
    e = ia.model(cnn).on(images).noise(4).saliency(0)
    with pytest.raises(ValueError, match=r"to_query: noise on the inputs .* has no form"):
        e.to_query()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda q: q.noise(0), ValueError, "samples: expected an integer >= 1; got 0"),
        (lambda q: q.noise(4, -0.1), ValueError, "stdev: expected a finite number >= 0; got -0.1"),
        (lambda q: q.noise(4, float("nan")), ValueError, "stdev: expected a finite number"),
        (lambda q: q.noise(4, seed=1.5), ValueError, "seed: expected an integer or None"),
        (lambda q: q.noise(4, relative=1), TypeError, "relative: expected True or False"),
        (
            lambda q: q.noise(noise=torch.zeros(3, 5)),
            ValueError,
            "noise: expected a tensor of shape",
        ),
        (lambda q: q.noise(2).noise(2), ValueError, "noise: the query already has noise"),
        (lambda q: q.smoothgrad(0, kind="vargard"), ValueError, "kind: .* Did you mean 'vargrad'"),
        (lambda q: q.smoothgrad(0, base="saliancy"), ValueError, "Did you mean 'saliency'"),
        (lambda q: q.smoothgrad(0, step=3), TypeError, "saliency: unknown parameter 'step'"),
        (lambda q: q.smoothgrad(0, samples=0), ValueError, "samples: expected an integer >= 1"),
    ],
)
def test_bad_noise_is_refused_when_built(cnn, images, call, error, match):
    with pytest.raises(error, match=match):
        call(ia.model(cnn).on(images))
