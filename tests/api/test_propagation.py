"""Propagation rules through the public API: guided backpropagation, deconvolution, DeepLift
and DeepLiftShap equal Captum (float64, rtol 1e-5), functional ReLUs equal nn.ReLU modules,
deltas are complete at no extra forward, unsupported nonlinearities are refused when the
method is called, and the model comes back unmodified."""

from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import algebra as ia

pytestmark = pytest.mark.filterwarnings(
    "ignore:Setting (forward, )?backward hooks:UserWarning",
    "ignore:.*has been deprecated:UserWarning",
)


class Functional(nn.Module):
    """The float64 CNN of conftest written with functional, method and in-place ReLUs."""

    def __init__(self, modules: nn.Sequential):
        super().__init__()
        self.conv1, self.conv2, self.conv3, self.fc = (
            modules.conv1,
            modules.conv2,
            modules.conv3,
            modules.fc,
        )

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(self.conv2(h), 2)
        h = self.conv3(h).relu_()
        return self.fc(h.flatten(1))


@pytest.mark.parametrize("rule", ["guided_backprop", "deconvolution"])
def test_relu_rules_equal_captum(cnn64, images64, parity64, assert_untouched, rule):
    result = getattr(ia.model(cnn64).on(images64), rule)("all").compute()
    captum = ca.GuidedBackprop if rule == "guided_backprop" else ca.Deconvolution
    for c in range(5):
        parity64(result.isel(target=c), captum(cnn64).attribute(images64.clone(), target=c))
    assert_untouched(cnn64)


@pytest.mark.parametrize("rule", ["guided_backprop", "deconvolution"])
def test_functional_relus_equal_relu_modules(cnn64, images64, rule):
    modules = getattr(ia.model(cnn64).on(images64), rule)("all").compute()
    functional_net = Functional(cnn64).eval()
    functional = getattr(ia.model(functional_net).on(images64), rule)("all").compute()
    np.testing.assert_allclose(functional.values, modules.values, rtol=1e-12, atol=1e-15)
    plain = ia.model(functional_net).on(images64).saliency("all", abs=False).compute()
    assert not np.allclose(plain.values, functional.values)  # the rule changed the map
    assert_no_mode(functional_net)


def assert_no_mode(net: nn.Module) -> None:
    assert torch._C._len_torch_function_stack() == 0
    assert all(p.requires_grad and p.grad is None for p in net.parameters())


BASELINES = {
    "scalar": lambda x: 0.2,
    "one": lambda x: 0.5 * torch.randn(1, *x.shape[1:], dtype=x.dtype),
    "per_sample": lambda x: 0.5 * torch.randn(*x.shape, dtype=x.dtype),
}


@pytest.mark.parametrize("which", BASELINES)
def test_deeplift_equals_captum_with_complete_deltas(cnn64, images64, parity64, which):
    torch.manual_seed(5)
    baseline = BASELINES[which](images64)
    q = ia.model(cnn64).on(images64)
    result, local = ia.compute(
        q.deeplift("all", baseline=baseline),
        q.deeplift("all", baseline=baseline, multiply_by_inputs=False),
    )
    reference = baseline if isinstance(baseline, torch.Tensor) else torch.full_like(images64, 0.2)
    for c in range(5):
        theirs, delta = ca.DeepLift(cnn64).attribute(
            images64.clone(), reference, target=c, return_convergence_delta=True
        )
        parity64(result.isel(target=c), theirs)
        np.testing.assert_allclose(result.delta.isel(target=c).values, delta, atol=1e-10)
        theirs_local = ca.DeepLift(cnn64, multiply_by_inputs=False).attribute(
            images64.clone(), reference, target=c
        )
        parity64(local.isel(target=c), theirs_local)
    assert float(abs(result.delta).max()) < 1e-10
    assert "delta" not in local.coords  # local attributions explain no score difference


def test_softmax_deltas_equal_captums_per_sample():
    # The softmax rule is not complete: the delta is Captum's (one sample per call, where
    # Captum's normalisation over its batch is the per-pair rule).
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.Softmax(dim=1))
    net = net.double().eval()
    x = torch.randn(3, 6, dtype=torch.float64)
    result = ia.model(net).on(x).deeplift("all", 0.1).compute()
    for n in range(3):
        for c in range(4):
            _, delta = ca.DeepLift(net).attribute(
                x[n : n + 1].clone(), 0.1, target=c, return_convergence_delta=True
            )
            np.testing.assert_allclose(result.delta.values[n, c], float(delta), atol=1e-12)
    assert float(abs(result.delta).min()) > 1e-4


def test_deeplift_shap_equals_captum(mlp64, features64, parity64):
    baselines = torch.randn(3, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    q = ia.model(mlp64).on(features64)
    result, local = ia.compute(
        q.deeplift_shap([0, 3, 1, 2], baselines),
        q.deeplift_shap(2, baselines, multiply_by_inputs=False),
    )
    for n, c in enumerate([0, 3, 1, 2]):
        theirs, delta = ca.DeepLiftShap(mlp64).attribute(
            features64.clone(), baselines, target=c, return_convergence_delta=True
        )
        parity64(result[n], theirs[n])
        # Captum's deltas are per (sample, baseline) pair: ours is their mean per sample
        pair = delta.reshape(len(features64), 3).mean(1)[n]
        np.testing.assert_allclose(result.delta.values[n], pair, atol=1e-10)
    theirs = ca.DeepLiftShap(mlp64, multiply_by_inputs=False).attribute(
        features64.clone(), baselines, target=2
    )
    parity64(local, theirs)


@pytest.mark.parametrize("layer", ["conv2", "relu1", "fc"])
@pytest.mark.parametrize("multiply", [True, False])
def test_layer_deeplift_equals_captum(cnn64, images64, parity64, layer, multiply):
    baseline = 0.3 * torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(8)).double()
    q = ia.model(cnn64).on(images64).layer(layer)
    result = q.deeplift(ia.classes([1, 3]), baseline, multiply_by_inputs=multiply).compute()
    module = dict(cnn64.named_modules())[layer]
    for c in (1, 3):
        theirs = ca.LayerDeepLift(cnn64, module, multiply_by_inputs=multiply).attribute(
            images64.clone(), baseline, target=c
        )
        parity64(result.sel(target=c), theirs)


def test_deeplift_in_a_window_is_complete_for_the_window(cnn64, images64):
    q = ia.model(cnn64).on(images64)
    full = q.deeplift(0).compute()
    window = q.window(2, 6, 1, 5).deeplift(0).compute()
    assert np.all(window.values[..., :2, :] == 0) and not np.allclose(window.values, full.values)
    # the reference is the baseline inside the window and the input outside: complete for it
    assert float(abs(window.delta).max()) < 1e-10


def test_deeplift_with_another_querys_inputs_as_baseline(cnn64, images64):
    m = ia.model(cnn64)
    other = torch.randn(*images64.shape, generator=torch.Generator().manual_seed(9)).double()
    by_query = m.on(images64).deeplift(2, baseline=m.on(other)).compute()
    by_tensor = m.on(images64).deeplift(2, baseline=other).compute()
    np.testing.assert_array_equal(by_query.values, by_tensor.values)


class WithGelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class WithProduct(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * h.sigmoid())


@pytest.mark.parametrize(
    ("net", "match"),
    [
        (WithGelu(), "deeplift: the model applies gelu, which has no DeepLift rule"),
        (WithProduct(), "deeplift: the model applies mul of two activations"),
        (nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 3)), "layer_norm"),
    ],
    ids=["gelu", "product", "layer_norm"],
)
def test_unsupported_nonlinearities_are_refused_when_built(features, assert_untouched, net, match):
    net = net.eval()
    q = ia.model(net).on(features)
    with pytest.raises(ValueError, match=match):
        q.deeplift(0)
    with pytest.raises(ValueError, match=match):
        q.deeplift_shap(0, torch.zeros(2, 6))
    assert_untouched(net)


def test_scripted_models_are_refused_by_the_rules(mlp, features):
    scripted = torch.jit.script(mlp)
    with pytest.raises(ValueError, match="guided_backprop: a TorchScript model"):
        ia.model(scripted).on(features).guided_backprop(0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda q: q.deeplift(0, baseline="zero"), TypeError, "baseline: expected a number"),
        (lambda q: q.deeplift(0, torch.zeros(7)), ValueError, "baseline: shape \\(7,\\)"),
        (lambda q: q.deeplift(0, multiply_by_inputs=1), TypeError, "multiply_by_inputs"),
        (
            lambda q: q.deeplift_shap(0, torch.zeros(2, 5)),
            ValueError,
            "baselines: expected a tensor of shape \\[B, 6\\]",
        ),
        (lambda q: q.deeplift_shap(0, [0.0] * 6), ValueError, "baselines: expected a tensor"),
    ],
)
def test_bad_parameters_are_refused_when_built(mlp, features, call, error, match):
    with pytest.raises(error, match=match):
        call(ia.model(mlp).on(features))


def test_rules_and_plain_gradients_share_nothing_but_the_inputs(cnn, images, counting, passes):
    net = counting(cnn)
    q = ia.model(net).on(images)
    exprs = [q.guided_backprop("all"), q.deconvolution(0), q.saliency(0), q.deeplift(ia.topk(2))]
    _, counted, planned = passes(net, exprs)
    # inputs (plain), inputs under each ReLU rule, the paired batch (2 x 4 rows)
    assert counted == planned == (4, 4 * 3 + 8, 4)
