"""Parity with Captum: our attributions equal Captum's on small random float32 models.

Every comparison uses ``rtol=1e-5`` and an ``atol`` of ``1e-5`` times the largest magnitude
of Captum's result (see :func:`assert_parity`).
"""

from __future__ import annotations

from collections import OrderedDict

import captum.attr as ca
import pytest
import torch
from torch import nn

import algebra as ia

RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
STEPS = 16
SCALAR_BASELINE = 0.3


def make_cnn(inplace: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 4, 3, padding=1),
            relu1=nn.ReLU(inplace=inplace),
            conv2=nn.Conv2d(4, 6, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc=nn.Linear(6 * 4 * 4, 5),
        )
    ).eval()


def make_mlp(inplace: bool = False) -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(6, 16),
            act1=nn.ReLU(inplace=inplace),
            fc2=nn.Linear(16, 16),
            act2=nn.Tanh(),
            fc3=nn.Linear(16, 4),
        )
    ).eval()


# name -> (factory, input shape, number of classes, inner layers to attribute)
SPECS = {
    "cnn": (make_cnn, (4, 3, 8, 8), 5, ("relu1", "conv2")),
    "mlp": (make_mlp, (5, 6), 4, ("fc2", "act1")),
}
LAYER_CASES = [(kind, layer) for kind, spec in SPECS.items() for layer in spec[3]]


def make_case(kind: str, inplace: bool = False) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A seeded model, inputs and labels, all float32 (labels int64)."""
    factory, shape, n_classes, _ = SPECS[kind]
    net = factory(inplace)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(shape, generator=gen, dtype=torch.float32)
    labels = torch.randint(0, n_classes, (shape[0],), generator=gen)
    return net, x, labels


def per_sample_targets(n: int, n_classes: int) -> list[int]:
    return [(3 * i + 1) % n_classes for i in range(n)]


def make_baseline(which: str, x: torch.Tensor):
    gen = torch.Generator().manual_seed(3)
    if which == "zero":
        return None  # our default (0.0) and Captum's default (zeros)
    if which == "scalar":
        return SCALAR_BASELINE
    if which == "tensor1":
        return torch.randn((1, *x.shape[1:]), generator=gen)
    assert which == "tensorN"
    return torch.randn(x.shape, generator=gen)


BASELINES = ("zero", "scalar", "tensor1", "tensorN")


def assert_untouched(net: nn.Module, training: bool) -> None:
    for name, m in net.named_modules():
        assert m.training == training, name
        assert not m._forward_hooks, name
        assert not m._forward_pre_hooks, name
        assert not m._backward_hooks, name
    for p in net.parameters():
        assert p.requires_grad and p.grad is None


# 1. Saliency -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("absolute", [True, False])
@pytest.mark.parametrize("target_kind", ["int", "per_sample"])
def test_saliency(kind, absolute, target_kind, captum_parity):
    net, x, _ = make_case(kind)
    n_classes = SPECS[kind][2]
    target = 2 if target_kind == "int" else per_sample_targets(len(x), n_classes)
    ours = ia.model(net).on(x).saliency(target, abs=absolute).compute()
    theirs = ca.Saliency(net).attribute(x.clone(), target=target, abs=absolute)
    assert ours.dims[0] == "sample" and "target" not in ours.dims
    expected_class = [target] * len(x) if isinstance(target, int) else target
    assert ours["class"].values.tolist() == expected_class
    captum_parity(ours, theirs)


# 2. InputXGradient -------------------------------------------------------------------


@pytest.mark.parametrize("kind", SPECS)
def test_input_x_gradient(kind, captum_parity):
    net, x, _ = make_case(kind)
    target = per_sample_targets(len(x), SPECS[kind][2])
    ours = ia.model(net).on(x).input_x_gradient(target).compute()
    theirs = ca.InputXGradient(net).attribute(x.clone(), target=target)
    captum_parity(ours, theirs)


# 3. Integrated gradients -------------------------------------------------------------


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("which", BASELINES)
def test_integrated_gradients(kind, rule, which, captum_parity):
    net, x, _ = make_case(kind)
    baseline = make_baseline(which, x)
    q = ia.model(net).on(x)
    kwargs = {} if baseline is None else {"baseline": baseline}
    ours = q.integrated_gradients(1, steps=STEPS, method=rule, **kwargs).compute()
    assert ours.attrs["integration"] == rule and ours.attrs["steps"] == STEPS
    theirs = ca.IntegratedGradients(net).attribute(
        x.clone(), baselines=baseline, target=1, n_steps=STEPS, method=rule
    )
    captum_parity(ours, theirs)


# 4. Layer attributions ---------------------------------------------------------------


@pytest.mark.parametrize(("kind", "layer"), LAYER_CASES)
def test_layer_saliency(kind, layer, captum_parity):
    net, x, _ = make_case(kind)
    target = per_sample_targets(len(x), SPECS[kind][2])
    ours = ia.model(net).on(x).layer(layer).saliency(target, abs=False).compute()
    module = dict(net.named_modules())[layer]
    theirs = ca.LayerGradientXActivation(net, module, multiply_by_inputs=False).attribute(
        x.clone(), target=target
    )
    assert ours.attrs["layer"] == layer
    captum_parity(ours, theirs)


@pytest.mark.parametrize(("kind", "layer"), LAYER_CASES)
def test_layer_saliency_abs(kind, layer, captum_parity):
    net, x, _ = make_case(kind)
    ours = ia.model(net).on(x).layer(layer).saliency(0).compute()
    module = dict(net.named_modules())[layer]
    theirs = ca.LayerGradientXActivation(net, module, multiply_by_inputs=False).attribute(
        x.clone(), target=0
    )
    captum_parity(ours, theirs.abs())


@pytest.mark.parametrize(("kind", "layer"), LAYER_CASES)
def test_layer_input_x_gradient(kind, layer, captum_parity):
    net, x, _ = make_case(kind)
    ours = ia.model(net).on(x).layer(layer).input_x_gradient(3).compute()
    module = dict(net.named_modules())[layer]
    theirs = ca.LayerGradientXActivation(net, module, multiply_by_inputs=True).attribute(
        x.clone(), target=3
    )
    captum_parity(ours, theirs)


@pytest.mark.parametrize(("kind", "layer"), LAYER_CASES)
@pytest.mark.parametrize(
    ("rule", "which"),
    [
        ("gausslegendre", "zero"),
        ("riemann_trapezoid", "scalar"),
        ("riemann_middle", "tensor1"),
        ("riemann_right", "tensorN"),
    ],
)
def test_layer_integrated_gradients(kind, layer, rule, which, captum_parity):
    net, x, _ = make_case(kind)
    baseline = make_baseline(which, x)
    kwargs = {} if baseline is None else {"baseline": baseline}
    q = ia.model(net).on(x).layer(layer)
    ours = q.integrated_gradients(2, steps=STEPS, method=rule, **kwargs).compute()
    module = dict(net.named_modules())[layer]
    theirs = ca.LayerIntegratedGradients(net, module).attribute(
        x.clone(), baselines=baseline, target=2, n_steps=STEPS, method=rule
    )
    captum_parity(ours, theirs)


# 5. Expanding targets: "all" and topk ------------------------------------------------


def _methods(net: nn.Module, kind: str):
    """name -> (our expression builder, Captum call(inputs, target)) for the expansion tests."""
    layer = SPECS[kind][3][0]
    module = dict(net.named_modules())[layer]
    return {
        "saliency": (
            lambda q, t: q.saliency(t, abs=False),
            lambda x, t: ca.Saliency(net).attribute(x.clone(), target=t, abs=False),
        ),
        "integrated_gradients": (
            lambda q, t: q.integrated_gradients(t, steps=STEPS),
            lambda x, t: ca.IntegratedGradients(net).attribute(
                x.clone(), target=t, n_steps=STEPS, method="gausslegendre"
            ),
        ),
        "layer_input_x_gradient": (
            lambda q, t: q.layer(layer).input_x_gradient(t),
            lambda x, t: ca.LayerGradientXActivation(net, module).attribute(x.clone(), target=t),
        ),
        "layer_integrated_gradients": (
            lambda q, t: q.layer(layer).integrated_gradients(
                t, steps=STEPS, method="riemann_trapezoid", baseline=SCALAR_BASELINE
            ),
            lambda x, t: ca.LayerIntegratedGradients(net, module).attribute(
                x.clone(),
                baselines=SCALAR_BASELINE,
                target=t,
                n_steps=STEPS,
                method="riemann_trapezoid",
            ),
        ),
    }


METHODS = (
    "saliency",
    "integrated_gradients",
    "layer_input_x_gradient",
    "layer_integrated_gradients",
)


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("method", METHODS)
def test_target_all(kind, method, captum_parity):
    net, x, _ = make_case(kind)
    n_classes = SPECS[kind][2]
    build, captum = _methods(net, kind)[method]
    ours = build(ia.model(net).on(x), "all").compute()
    assert ours.dims[:2] == ("sample", "target")
    assert ours.sizes["target"] == n_classes
    assert ours["class"].dims == ("target",)
    assert ours["class"].values.tolist() == list(range(n_classes))
    for c in range(n_classes):
        captum_parity(ours.sel(target=c), captum(x, c))


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("method", METHODS)
def test_target_topk(kind, method, captum_parity):
    net, x, _ = make_case(kind)
    k = 2
    build, captum = _methods(net, kind)[method]
    ours = build(ia.model(net).on(x), ia.topk(k)).compute()
    assert ours.dims[:2] == ("sample", "target")
    assert ours.sizes["target"] == k
    assert ours["class"].dims == ("sample", "target")
    with torch.no_grad():
        logits = net(x)
    top = logits.topk(k, dim=1)
    # the classes are the k highest scores of each sample, ranked in descending order
    assert ours["class"].values.tolist() == top.indices.tolist()
    assert (top.values[:, :-1] > top.values[:, 1:]).all()
    for r in range(k):
        classes = ours["class"].isel(target=r).values.tolist()
        captum_parity(ours.isel(target=r), captum(x, classes))


# 6. "pred" and "label" ---------------------------------------------------------------


@pytest.mark.parametrize("kind", SPECS)
@pytest.mark.parametrize("method", METHODS)
def test_pred_and_label(kind, method, captum_parity):
    net, x, labels = make_case(kind)
    build, captum = _methods(net, kind)[method]
    q = ia.model(net).on(x, labels=labels)
    pred, label = ia.compute(build(q, "pred"), build(q, "label"))
    with torch.no_grad():
        argmax = net(x).argmax(dim=1).tolist()
    assert pred["class"].values.tolist() == argmax
    assert pred["pred"].values.tolist() == argmax
    assert label["class"].values.tolist() == labels.tolist()
    captum_parity(pred, captum(x, argmax))
    captum_parity(label, captum(x, labels.tolist()))


# 7. In-place ReLU right after the attributed layer -----------------------------------


def manual_layer_gradient(net: nn.Module, layer: str, x: torch.Tensor, target: int):
    """Gradient of ``net(x)[:, target]`` w.r.t. the output of ``layer`` (a direct child),
    by plain autograd: the rest of the network runs on a clone, so the in-place ReLU
    cannot overwrite the activation."""
    names = list(net._modules)
    cut = names.index(layer) + 1
    with torch.enable_grad():
        act = net[:cut](x)
        out = net[cut:](act.clone())
        (grad,) = torch.autograd.grad(out[:, target].sum(), act)
    return grad, act.detach()


@pytest.mark.parametrize(("kind", "layer"), [("cnn", "conv1"), ("mlp", "fc1")])
def test_inplace_relu_after_layer(kind, layer, captum_parity):
    net, x, _ = make_case(kind, inplace=True)
    q = ia.model(net).on(x).layer(layer)
    sal, ixg, ig = ia.compute(
        q.saliency(1, abs=False),
        q.input_x_gradient(1),
        q.integrated_gradients(1, steps=STEPS, method="gausslegendre"),
    )
    module = dict(net.named_modules())[layer]
    # Captum's LayerGradientXActivation handles the in-place ReLU: compare with it directly.
    captum_parity(
        sal,
        ca.LayerGradientXActivation(net, module, multiply_by_inputs=False).attribute(
            x.clone(), target=1
        ),
    )
    captum_parity(
        ixg,
        ca.LayerGradientXActivation(net, module, multiply_by_inputs=True).attribute(
            x.clone(), target=1
        ),
    )
    # ... and with plain autograd, the activation protected by a clone.
    grad, act = manual_layer_gradient(net, layer, x, 1)
    captum_parity(sal, grad)
    captum_parity(ixg, grad * act)
    # Captum's LayerIntegratedGradients raises on this net ("a leaf Variable that requires
    # grad is being used in an in-place operation"), so integrated gradients are compared
    # with Captum on the same weights without the in-place op.
    twin, _, _ = make_case(kind, inplace=False)
    for a, b in zip(net.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    captum_parity(
        ig,
        ca.LayerIntegratedGradients(twin, dict(twin.named_modules())[layer]).attribute(
            x.clone(), target=1, n_steps=STEPS, method="gausslegendre"
        ),
    )


# Model state -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SPECS)
def test_model_unmodified(kind, captum_parity):
    net, x, _ = make_case(kind)
    layer = SPECS[kind][3][0]
    net.train()
    q = ia.model(net).on(x)
    with pytest.warns(UserWarning, match="training mode"):
        sal, lig = ia.compute(
            q.saliency("pred"),
            q.layer(layer).integrated_gradients("pred", steps=STEPS),
        )
    assert_untouched(net, training=True)
    net.eval()
    (again,) = ia.compute(q.saliency("pred"))
    assert_untouched(net, training=False)
    argmax = net(x).argmax(dim=1).tolist()
    theirs = ca.Saliency(net).attribute(x.clone(), target=argmax)
    captum_parity(sal, theirs)
    captum_parity(again, theirs)
    module = dict(net.named_modules())[layer]
    captum_parity(
        lig,
        ca.LayerIntegratedGradients(net, module).attribute(
            x.clone(), target=argmax, n_steps=STEPS, method="gausslegendre"
        ),
    )
