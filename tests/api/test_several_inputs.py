"""Several inputs: a tuple or a dict of tensors, one attribution per attributed input, equal
to Captum's tuple of attributions (float64, 1e-5) for the gradient methods, the layer
methods, NoiseTunnel, DeepLift(Shap), GradientSHAP and the perturbation methods; inputs not
attributed pass through unchanged."""

from __future__ import annotations

from collections import OrderedDict

import captum.attr as ca
import numpy as np
import pytest
import torch
from captum.attr._core.noise_tunnel import NoiseTunnel
from torch import nn

import algebra as ia


class TwoInputs(nn.Module):
    """Features and an image: a tanh branch and a convolution, joined by a linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.dense = nn.Linear(6, 8)
        self.tanh = nn.Tanh()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(8 + 2 * 4 * 4, 4)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        a = self.tanh(self.dense(features))
        b = self.relu(self.conv(image)).flatten(1)
        return self.head(torch.cat([a, b], 1))


@pytest.fixture
def net() -> TwoInputs:
    return TwoInputs().double().eval()


@pytest.fixture
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(3, 6, generator=g, dtype=torch.float64),
        torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64),
    )


def both(parity64, ours, theirs) -> None:
    assert len(ours) == len(theirs) == 2
    for o, t in zip(ours, theirs, strict=True):
        parity64(o, t)


GRADIENTS = {
    "saliency": (lambda q, t: q.saliency(t), lambda net, x, t: ca.Saliency(net).attribute(x, t)),
    "saliency_signed": (
        lambda q, t: q.saliency(t, abs=False),
        lambda net, x, t: ca.Saliency(net).attribute(x, t, abs=False),
    ),
    "input_x_gradient": (
        lambda q, t: q.input_x_gradient(t),
        lambda net, x, t: ca.InputXGradient(net).attribute(x, t),
    ),
    "guided_backprop": (
        lambda q, t: q.guided_backprop(t),
        lambda net, x, t: ca.GuidedBackprop(net).attribute(x, t),
    ),
    "deeplift": (
        lambda q, t: q.deeplift(t),
        lambda net, x, t: ca.DeepLift(net).attribute(x, target=t),
    ),
}


@pytest.mark.parametrize("method", GRADIENTS)
def test_gradient_methods_equal_captum(net, inputs, parity64, assert_untouched, method):
    ours, theirs = GRADIENTS[method]
    q = ia.model(net).on(inputs)
    for target in (0, 3):
        result = ours(q, target).compute()
        assert isinstance(result, tuple)
        assert [r.dims for r in result] == [("sample", "feature"), ("sample", "channel", "y", "x")]
        both(parity64, result, theirs(net, tuple(x.clone() for x in inputs), target))
    assert_untouched(net)


def test_integrated_gradients_with_a_baseline_per_input(net, inputs, parity64):
    features, image = inputs
    base_image = 0.1 * torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(4))
    base_image = base_image.double()
    q = ia.model(net).on(inputs)
    for rule in ("gausslegendre", "riemann_trapezoid"):
        ours = q.integrated_gradients(2, steps=24, method=rule, baseline=(0.25, base_image))
        result = ours.compute()
        theirs, delta = ca.IntegratedGradients(net).attribute(
            inputs,
            baselines=(torch.full_like(features, 0.25), base_image.expand_as(image)),
            target=2,
            n_steps=24,
            method=rule,
            return_convergence_delta=True,
        )
        both(parity64, result, theirs)
        # One delta for both inputs together, as Captum's: the sum over every input.
        for r in result:
            torch.testing.assert_close(
                torch.from_numpy(r.delta.values), delta, atol=1e-8, rtol=1e-5
            )


def test_baselines_as_a_dict_and_local_attributions(net, inputs, parity64):
    features, image = inputs
    q = ia.model(net).on({"features": features, "image": image})
    result = q.integrated_gradients(1, steps=16, baseline={"image": 0.5}).compute()
    assert list(result) == ["features", "image"]
    theirs = ca.IntegratedGradients(net).attribute(
        inputs, baselines=(0.0, 0.5), target=1, n_steps=16
    )
    both(parity64, list(result.values()), theirs)
    local = q.integrated_gradients(1, steps=16, multiply_by_inputs=False).compute()
    theirs = ca.IntegratedGradients(net, multiply_by_inputs=False).attribute(
        inputs, target=1, n_steps=16
    )
    both(parity64, list(local.values()), theirs)


LAYER = {
    "integrated_gradients": (
        lambda q: q.layer("conv").integrated_gradients(1, steps=16),
        lambda net, x: ca.LayerIntegratedGradients(net, net.conv).attribute(
            x, target=1, n_steps=16
        ),
    ),
    "conductance": (
        lambda q: q.layer("dense").conductance(1, steps=16),
        lambda net, x: ca.LayerConductance(net, net.dense).attribute(x, target=1, n_steps=16),
    ),
    "activation": (
        lambda q: q.layer("conv").activation(),
        lambda net, x: ca.LayerActivation(net, net.conv).attribute(x),
    ),
    "input_x_gradient": (
        lambda q: q.layer("tanh").input_x_gradient(1),
        lambda net, x: ca.LayerGradientXActivation(net, net.tanh).attribute(x, target=1),
    ),
    "grad_cam": (
        lambda q: q.layer("conv").grad_cam(1, relu=False, upsample=False),
        lambda net, x: ca.LayerGradCam(net, net.conv).attribute(x, target=1),
    ),
    "deeplift": (
        lambda q: q.layer("conv").deeplift(1),
        lambda net, x: ca.LayerDeepLift(net, net.conv).attribute(x, target=1),
    ),
}


@pytest.mark.parametrize("method", LAYER)
def test_layer_methods_equal_captum(net, inputs, parity64, method):
    ours, theirs = LAYER[method]
    result = ours(ia.model(net).on(inputs)).compute()
    expected = theirs(net, tuple(x.clone() for x in inputs))
    if method == "grad_cam":
        expected = expected[:, 0]  # Captum keeps a channel dim of 1
    parity64(result, expected)


def test_inputs_not_attributed_pass_through(net, inputs, parity64):
    features, image = inputs
    q = ia.model(net).on({"features": features, "image": image}, attribute="image")
    result = q.integrated_gradients(0, steps=16).compute()
    assert list(result) == ["image"]

    def on_image(image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return net(features, image)

    theirs = ca.IntegratedGradients(on_image).attribute(
        image, target=0, n_steps=16, additional_forward_args=(features,)
    )
    parity64(result["image"], theirs)
    # by position in a tuple, too
    by_position = ia.model(net).on(inputs, attribute=1).saliency(0).compute()
    assert len(by_position) == 1 and by_position[0].attrs["input"] == "image"


def test_noise_tunnel_with_a_draw_per_input(monkeypatch, net, inputs, parity64):
    samples = 4
    g = torch.Generator().manual_seed(7)
    draws = [0.2 * torch.randn(samples, *x.shape, generator=g, dtype=x.dtype) for x in inputs]

    def add(input, stdev, count):  # Captum's rows are sample-major, one draw per input
        noise = next(d for d in draws if d.shape[1:] == input.shape)
        return input.repeat_interleave(count, 0) + noise.transpose(0, 1).reshape(
            -1, *input.shape[1:]
        )

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add))
    q = ia.model(net).on(inputs).noise(noise=tuple(draws))
    result = q.saliency(2, abs=False).mean("noise").compute()
    theirs = NoiseTunnel(ca.Saliency(net)).attribute(
        tuple(x.clone() for x in inputs), nt_samples=samples, stdevs=0.2, target=2, abs=False
    )
    both(parity64, result, theirs)
    ig = q.integrated_gradients(2, steps=8).var("noise").compute()
    theirs = NoiseTunnel(ca.IntegratedGradients(net)).attribute(
        tuple(x.clone() for x in inputs), nt_type="vargrad", nt_samples=samples, target=2, n_steps=8
    )
    both(parity64, ig, theirs)


def test_drawn_noise_is_relative_to_each_inputs_own_range(net, inputs):
    features, image = inputs
    big = ia.model(net).on((features, 100 * image)).noise(64, 0.1, seed=0)
    small = ia.model(net).on(inputs).noise(64, 0.1, seed=0)
    conv = [q.layer("conv").activation().compute().std("noise") for q in (big, small)]
    dense = [q.layer("dense").activation().compute() for q in (big, small)]
    # The image's noise is a tenth of its own range: 100 times larger for 100 times the image.
    ratio = float(conv[0].mean() / conv[1].mean())
    assert 90 < ratio < 110
    # The features' noise follows the features' range only, whatever the image's.
    np.testing.assert_allclose(dense[0].values, dense[1].values, rtol=1e-12)


def test_deeplift_shap_and_gradient_shap(net, inputs, parity64):
    g = torch.Generator().manual_seed(9)
    references = tuple(torch.randn(2, *x.shape[1:], generator=g, dtype=x.dtype) for x in inputs)
    q = ia.model(net).on(inputs)
    result = q.deeplift_shap(3, references).compute()
    theirs = ca.DeepLiftShap(net).attribute(inputs, baselines=references, target=3)
    both(parity64, result, theirs)
    shap = q.gradient_shap(3, references, samples=6, seed=0).compute()
    # Completeness in expectation; each draw's points stay with their own sample.
    assert [r.dims for r in shap] == [("sample", "feature"), ("sample", "channel", "y", "x")]
    assert all(np.isfinite(r.values).all() for r in shap)


def test_gradient_shap_draws_the_same_points_as_one_packed_input(net, inputs, parity64):
    # GradientSHAP on (features, image) equals GradientSHAP of the model on the two
    # concatenated: the same draws, alphas and noise, one pinned index per row.
    features, image = inputs

    class Joined(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, flat: torch.Tensor) -> torch.Tensor:
            return self.inner(flat[:, :6], flat[:, 6:].reshape(-1, 3, 4, 4))

    joined = Joined(net).eval()
    g = torch.Generator().manual_seed(9)
    references = tuple(torch.randn(2, *x.shape[1:], generator=g, dtype=x.dtype) for x in inputs)
    flat = torch.cat([features, image.flatten(1)], 1)
    flat_refs = torch.cat([references[0], references[1].flatten(1)], 1)
    ours = ia.model(net).on(inputs).gradient_shap(1, references, samples=5, seed=3).compute()
    one = ia.model(joined).on(flat).gradient_shap(1, flat_refs, samples=5, seed=3).compute()
    parity64(ours[0], torch.from_numpy(one.values[:, :6]))
    parity64(ours[1], torch.from_numpy(one.values[:, 6:].reshape(-1, 3, 4, 4)))


def test_perturbation_of_several_inputs_equals_captum(net, inputs, parity64):
    mask = (
        torch.tensor([[0, 0, 1, 1, 2, 2]]),
        torch.tensor([3, 4, 4])[None, :, None, None].expand(1, 3, 4, 4).contiguous(),
    )
    q = ia.model(net).on(inputs)
    ablation = q.feature_ablation(1, groups=mask, baseline=(0.5, 0.0)).compute()
    theirs = ca.FeatureAblation(net).attribute(
        inputs, baselines=(0.5, 0.0), target=1, feature_mask=mask
    )
    both(parity64, ablation, theirs)
    exact = q.shapley(1, groups=mask, samples="exact").compute()
    theirs = ca.ShapleyValues(net).attribute(inputs, target=1, feature_mask=mask)
    both(parity64, exact, theirs)
    # players shared across inputs (the same id), as Captum's feature_mask allows
    shared = (torch.tensor([[0, 0, 1, 1, 2, 2]]), torch.full((1, 3, 4, 4), 2))
    result = q.feature_ablation(1, groups=shared).compute()
    theirs = ca.FeatureAblation(net).attribute(inputs, target=1, feature_mask=shared)
    both(parity64, result, theirs)
    assert result[1].player.dims == ("channel", "y", "x")


def test_default_players_of_several_inputs(net, inputs):
    result = ia.model(net).on(inputs).feature_ablation(0).compute()
    # every feature of the vector, an 8 x 8 grid (here 4 x 4 positions) of the image
    assert result[0].player.values.tolist() == [0, 1, 2, 3, 4, 5]
    assert int(result[1].player.min()) == 6 and int(result[1].player.max()) == 21
    assert result[0].attrs["players"] == 22


def test_dims_per_input_and_the_results_structure(net, inputs):
    q = ia.model(net).on(inputs, dims=(("f",), None), ids=["a", "b", "c"], labels=[0, 1, 2])
    sal = q.saliency("label")
    assert isinstance(sal, ia.AttributionTuple) and len(sal) == 2
    a, b = sal.compute()
    assert a.dims == ("sample", "f") and b.dims == ("sample", "channel", "y", "x")
    assert a.sample.values.tolist() == ["a", "b", "c"] and a.label.values.tolist() == [0, 1, 2]
    summed = sal.map(lambda e: e.abs().mean("sample"))
    assert [r.dims for r in summed.compute()] == [("f",), ("channel", "y", "x")]
    first = sal.where(ia.col.id == "b").compute()
    assert [r.sizes["sample"] for r in first] == [1, 1]
    named = ia.model(net).on({"features": inputs[0], "image": inputs[1]}).saliency(0)
    assert isinstance(named, ia.AttributionDict)
    results = ia.compute(named)  # a dict of expressions: a dict of results
    assert list(results) == ["features", "image"]


def test_one_plan_for_every_input(net, inputs):
    q = ia.model(net).on(inputs)
    with ia.Session(), ia.set_options(backward="batched"):
        plan = ia.explain(*q.saliency(0), *q.input_x_gradient(1))
    assert "on inputs (features [3, 6], image [3, 3, 4, 4])" in plan
    total = next(line for line in plan.splitlines() if line.startswith("total"))
    assert total == "total: 1 forward (3 rows), 1 backward"


def test_a_model_with_four_inputs_of_other_shapes():
    class Four(nn.Module):
        def forward(self, a, b, c, d):
            return torch.stack([a.sum(1) * b.sum((1, 2)), c.sum(1) + d, d], 1)

    g = torch.Generator().manual_seed(0)
    xs = (torch.randn(2, 3, generator=g), torch.randn(2, 2, 2, generator=g))
    xs += (torch.randn(2, 5, generator=g), torch.randn(2, generator=g))
    ours = ia.model(Four().eval()).on(xs).input_x_gradient(0).compute()
    theirs = ca.InputXGradient(Four().eval()).attribute(xs, target=0)
    assert [r.dims for r in ours] == [
        ("sample", "feature"),
        ("sample", "dim_1", "dim_2"),
        ("sample", "feature"),
        ("sample",),
    ]
    for o, t in zip(ours, theirs, strict=True):
        torch.testing.assert_close(torch.from_numpy(o.values), t.detach())


def test_modules_of_the_two_inputs_are_the_users(net, inputs):
    q = ia.model(net).on(inputs)
    assert q.layer("conv").node.name == "conv"
    assert ia.model(net).layer_names == tuple(n for n, _ in net.named_modules() if n)
    assert "head" in ia.model(net).layer_names
    assert OrderedDict(net.named_modules())["conv"] is net.conv
