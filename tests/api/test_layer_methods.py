"""Layer methods and completeness through the public API: LayerActivation, LayerConductance
and InternalInfluence equal Captum (float64, rtol 1e-5); integrated gradients' delta and local
form equal Captum's, from the passes the method runs anyway."""

from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch

import algebra as ia

LAYERS = [
    ("cnn64", "images64", "relu1"),
    ("cnn64", "images64", "conv3"),
    ("mlp64", "features64", "act"),
]
IDS = [f"{net[:3]}-{layer}" for net, _, layer in LAYERS]


def _case(request, names):
    net, x, layer = names
    net, x = request.getfixturevalue(net), request.getfixturevalue(x)
    return net, x, layer, dict(net.named_modules())[layer]


@pytest.mark.parametrize("names", LAYERS, ids=IDS)
def test_layer_activation(request, parity64, names):
    net, x, layer, module = _case(request, names)
    result = ia.model(net).on(x).layer(layer).activation().compute()
    assert result.dims[0] == "sample" and "target" not in result.dims
    parity64(result, ca.LayerActivation(net, module).attribute(x.clone()))


@pytest.mark.parametrize("names", LAYERS, ids=IDS)
@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid", "riemann_left"])
def test_layer_conductance(request, parity64, names, rule):
    net, x, layer, module = _case(request, names)
    baseline = 0.5 * torch.randn(1, *x.shape[1:], generator=torch.Generator().manual_seed(3))
    baseline = baseline.double()
    result = (
        ia.model(net)
        .on(x)
        .layer(layer)
        .conductance(ia.classes([0, 2]), steps=9, method=rule, baseline=baseline)
        .compute()
    )
    for c in (0, 2):
        theirs = ca.LayerConductance(net, module).attribute(
            x.clone(), baseline, target=c, n_steps=9, method=rule
        )
        parity64(result.sel(target=c), theirs)


@pytest.mark.parametrize("names", LAYERS, ids=IDS)
@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_middle"])
def test_internal_influence(request, parity64, names, rule):
    net, x, layer, module = _case(request, names)
    result = (
        ia.model(net)
        .on(x)
        .layer(layer)
        .internal_influence("all", steps=9, method=rule, baseline=0.2)
    ).compute()
    for c in range(4):
        theirs = ca.InternalInfluence(net, module).attribute(
            x.clone(), 0.2, target=c, n_steps=9, method=rule
        )
        parity64(result.isel(target=c), theirs)


def test_chunked_conductance_equals_unchunked(cnn64, images64):
    e = ia.model(cnn64).on(images64).layer("conv2").conductance("all", steps=6)
    whole = e.compute(session=ia.Session())
    with ia.set_options(memory_budget=30_000):  # chunks of single steps over few samples
        plan = e.explain()
        chunked = e.compute(session=ia.Session())
    assert "chunks of up to" in plan
    np.testing.assert_allclose(chunked.values, whole.values, rtol=1e-10, atol=1e-14)


def test_internal_influence_shares_the_path_of_integrated_gradients(cnn, images, counting, passes):
    net = counting(cnn)
    q = ia.model(net).on(images)
    exprs = [
        q.integrated_gradients("all", steps=4),
        q.layer("net.relu1").internal_influence(0, steps=4),
        q.layer("net.conv2").internal_influence(ia.topk(2), steps=4),
        q.layer("net.conv2").conductance(0, steps=4),
    ]
    _, counted, planned = passes(net, exprs)
    # inputs; the path (4 x 4 rows and its start) differentiated wrt the input and both
    # layers in one backward; conductance's 5 x 4 points
    assert counted == planned == (3, 4 + 17 + 20, 2)


CASES = {"cnn": ("cnn64", "images64"), "mlp": ("mlp64", "features64")}
BASELINES = {
    "scalar": lambda x: 0.3,
    "one": lambda x: 0.4 * torch.randn(1, *x.shape[1:], dtype=x.dtype),
    "per_sample": lambda x: 0.4 * torch.randn(*x.shape, dtype=x.dtype),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("which", BASELINES)
@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_delta_and_local_form(request, parity64, case, which, rule):
    net, x = (request.getfixturevalue(name) for name in CASES[case])
    torch.manual_seed(4)
    baseline = BASELINES[which](x)
    q = ia.model(net).on(x)
    result, local = ia.compute(
        q.integrated_gradients("all", steps=10, method=rule, baseline=baseline),
        q.integrated_gradients(
            "all", steps=10, method=rule, baseline=baseline, multiply_by_inputs=False
        ),
    )
    assert result.delta.dims == ("sample", "target") and "delta" not in local.coords
    for c in range(4):
        theirs, delta = ca.IntegratedGradients(net).attribute(
            x.clone(), baseline, target=c, n_steps=10, method=rule, return_convergence_delta=True
        )
        parity64(result.isel(target=c), theirs)
        # Captum rounds its step sizes to float32: its delta carries ~1e-8 of the scores
        np.testing.assert_allclose(result.delta.isel(target=c).values, delta, rtol=1e-4, atol=1e-7)
        theirs_local = ca.IntegratedGradients(net, multiply_by_inputs=False).attribute(
            x.clone(), baseline, target=c, n_steps=10, method=rule
        )
        parity64(local.isel(target=c), theirs_local)


def test_layer_integrated_gradients_delta(cnn64, images64):
    result = ia.model(cnn64).on(images64).layer("conv2").integrated_gradients(1, steps=12).compute()
    _, delta = ca.LayerIntegratedGradients(cnn64, cnn64.conv2).attribute(
        images64.clone(), 0.0, target=1, n_steps=12, return_convergence_delta=True
    )
    np.testing.assert_allclose(result.delta.values, delta, rtol=1e-4, atol=1e-7)


def test_windowed_delta_explains_the_window(cnn64, images64):
    q = ia.model(cnn64).on(images64)
    windowed = q.window(2, 6, 2, 6).integrated_gradients(0, steps=64).compute()
    # the path starts at the baseline inside the window and the input outside it
    start = images64.clone()
    start[..., 2:6, 2:6] = 0.0
    with torch.no_grad():
        explained = (cnn64(images64) - cnn64(start))[:, 0].numpy()
    expected = windowed.sum(["channel", "y", "x"]).values - explained
    np.testing.assert_allclose(windowed.delta.values, expected, rtol=1e-9, atol=1e-12)
    assert float(abs(windowed.delta).max()) < 1e-3  # 64 Gauss-Legendre points: nearly complete


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda q: q.activation(), ValueError, "activation: select a layer first"),
        (lambda q: q.conductance(0), ValueError, "conductance: select a layer first"),
        (
            lambda q: q.layer("conv2").conductance(0, steps=0),
            ValueError,
            "steps: expected an integer >= 1",
        ),
        (
            lambda q: q.layer("conv2").internal_influence(0, method="gauss"),
            ValueError,
            "Did you mean 'gausslegendre'",
        ),
        (
            lambda q: q.layer("conv2").conductance(0, baseline=torch.zeros(5)),
            ValueError,
            "baseline: shape",
        ),
        (
            lambda q: q.integrated_gradients(0, multiply_by_inputs="no"),
            TypeError,
            "multiply_by_inputs",
        ),
    ],
)
def test_bad_parameters_are_refused_when_built(cnn, images, call, error, match):
    with pytest.raises(error, match=match):
        call(ia.model(cnn).on(images))
