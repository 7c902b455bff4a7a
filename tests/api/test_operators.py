"""Windows (projection), anti-joins of inputs and of models, what-if edits and identity.

Every check compares with plain torch: the attributions outside a window, completeness of
integrated gradients against forward passes computed by hand, gradients of ``f - g`` by
``torch.autograd``, and edited inputs built by hand.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import algebra as ia

WINDOW = (2, 6, 1, 5)  # rows 2:6, columns 1:5 of an 8 x 8 grid
STEPS = 16  # gausslegendre on a smooth model: completeness to ~1e-12
IG = "integrated_gradients"  # anti-joins whose completeness these tests check


def smooth_cnn(seed: int = 0, classes: int = 5) -> nn.Sequential:
    """A float64 CNN with smooth activations, so Gauss-Legendre IG is exact to rounding."""
    torch.manual_seed(seed)
    return (
        nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 4, 3, padding=1),
                act1=nn.Tanh(),
                conv2=nn.Conv2d(4, 4, 3, padding=1),
                act2=nn.Softplus(),
                flat=nn.Flatten(),
                fc=nn.Linear(4 * 8 * 8, classes),
            )
        )
        .double()
        .eval()
    )


def smooth_mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return (
        nn.Sequential(OrderedDict(fc1=nn.Linear(6, 16), act=nn.Tanh(), fc2=nn.Linear(16, 4)))
        .double()
        .eval()
    )


def _pair(seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(4, 3, 8, 8, generator=g, dtype=torch.float64),
        torch.rand(4, 3, 8, 8, generator=g, dtype=torch.float64),
    )


def _hooks(module: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in module.modules()
    )


def _state(module: nn.Module) -> tuple:
    return (
        [(name, m.training) for name, m in module.named_modules()],
        [(name, p.requires_grad, p.grad is None) for name, p in module.named_parameters()],
        _hooks(module),
    )


def _score(net: nn.Module, x: torch.Tensor, c: int) -> np.ndarray:
    with torch.no_grad():
        return net(x)[:, c].numpy()


def _outside(values: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    r0, r1, c0, c1 = window
    out = np.array(values, copy=True)
    out[..., r0:r1, c0:c1] = 0
    return out


def _inside(values: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    r0, r1, c0, c1 = window
    return np.asarray(values)[..., r0:r1, c0:c1]


def _feature_sum(result) -> np.ndarray:
    return result.sum([d for d in result.dims if d not in ("sample", "side")]).values


# ---------------------------------------------------------------------------------------
# Projection: windows
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [
        lambda q: q.saliency(1, abs=False),
        lambda q: q.input_x_gradient(1),
        lambda q: q.integrated_gradients(1, steps=8),
    ],
    ids=["saliency", "input_x_gradient", "integrated_gradients"],
)
def test_window_attributions_are_zero_outside_and_not_inside(method):
    x, _ = _pair()
    q = ia.model(smooth_cnn()).on(x)
    r = method(q.window(*WINDOW)).compute()
    assert r.dims == ("sample", "channel", "y", "x")
    assert not _outside(r.values, WINDOW).any()
    assert (np.abs(_inside(r.values, WINDOW)) > 0).mean() > 0.9


def test_window_at_a_layer_is_zero_outside_for_grad_cam_and_integrated_gradients():
    x, _ = _pair()
    q = ia.model(smooth_cnn()).on(x)
    cam = q.layer("act1").window(*WINDOW).grad_cam(1, relu=False, upsample=False).compute()
    full_cam = q.layer("act1").grad_cam(1, relu=False, upsample=False).compute()
    assert cam.dims == ("sample", "y", "x")
    assert not _outside(cam.values, WINDOW).any()
    np.testing.assert_allclose(_inside(cam.values, WINDOW), _inside(full_cam.values, WINDOW))
    ig = q.layer("conv1").window(*WINDOW).integrated_gradients(1, steps=8).compute()
    assert ig.sizes == {"sample": 4, "channel": 4, "y": 8, "x": 8}
    assert not _outside(ig.values, WINDOW).any()
    assert np.abs(_inside(ig.values, WINDOW)).sum() > 0


def test_window_gradients_equal_the_unwindowed_ones_inside():
    x, _ = _pair()
    q = ia.model(smooth_cnn()).on(x)
    windowed, full = ia.compute(
        q.window(*WINDOW).saliency(ia.topk(2), abs=False), q.saliency(ia.topk(2), abs=False)
    )
    np.testing.assert_array_equal(_inside(windowed.values, WINDOW), _inside(full.values, WINDOW))
    ixg_w, ixg = ia.compute(q.window(*WINDOW).input_x_gradient(3), q.input_x_gradient(3))
    np.testing.assert_array_equal(_inside(ixg_w.values, WINDOW), _inside(ixg.values, WINDOW))


@pytest.mark.parametrize("kind", ["scalar", "tensor", "batch_tensor"])
def test_window_integrated_gradients_complete_against_the_window_at_the_baseline(kind):
    net = smooth_cnn()
    x, other = _pair()
    baseline = {"scalar": 0.25, "tensor": other[0], "batch_tensor": other}[kind]
    r = ia.model(net).on(x).window(*WINDOW).integrated_gradients(2, steps=STEPS, baseline=baseline)
    r = r.compute()
    r0, r1, c0, c1 = WINDOW
    at_baseline = x.clone()
    fill = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    at_baseline[..., r0:r1, c0:c1] = fill[..., r0:r1, c0:c1]
    expected = _score(net, x, 2) - _score(net, at_baseline, 2)
    np.testing.assert_allclose(_feature_sum(r), expected, rtol=1e-7, atol=1e-10)
    # Not the unwindowed difference: the outside of the window is context, held at x.
    whole = _score(net, x, 2) - _score(net, fill.contiguous(), 2)
    assert np.abs(_feature_sum(r) - whole).max() > 1e-4


def test_window_integrated_gradients_at_a_layer_complete_against_the_patched_activation():
    net = smooth_cnn()
    x, _ = _pair()
    r = ia.model(net).on(x).layer("conv1").window(*WINDOW).integrated_gradients(0, steps=STEPS)
    r = r.compute()
    with torch.no_grad():
        start = net.conv1(torch.zeros_like(x))  # the baseline's activation

    def patched(module, inputs, output):
        out = output.clone()
        r0, r1, c0, c1 = WINDOW
        out[..., r0:r1, c0:c1] = start[..., r0:r1, c0:c1]
        return out

    handle = net.conv1.register_forward_hook(patched)
    try:
        at_baseline = _score(net, x, 0)
    finally:
        handle.remove()
    np.testing.assert_allclose(_feature_sum(r), _score(net, x, 0) - at_baseline, rtol=1e-7)


def test_nested_windows_equal_the_innermost_window():
    x, _ = _pair()
    q = ia.model(smooth_cnn()).on(x)
    inner = (3, 5, 2, 4)
    nested = q.window(*WINDOW).window(*inner)
    for make in (
        lambda v: v.integrated_gradients(1, steps=8),
        lambda v: v.saliency(1, abs=False),
    ):
        a, b = ia.compute(make(nested), make(q.window(*inner)))
        np.testing.assert_array_equal(a.values, b.values)
        assert not _outside(a.values, inner).any()
    at_layer = q.layer("conv2").window(0, 8, 0, 8).window(*inner).input_x_gradient(1)
    direct = q.layer("conv2").window(*inner).input_x_gradient(1)
    a, b = ia.compute(at_layer, direct)
    np.testing.assert_array_equal(a.values, b.values)


def test_window_errors():
    x, _ = _pair()
    net = smooth_cnn()
    q = ia.model(net).on(x)
    with pytest.raises(ValueError, match="does not lie inside its parent window"):
        q.window(*WINDOW).window(1, 4, 1, 3)
    with pytest.raises(ValueError, match="8 x 8 grid"):
        q.window(0, 9, 0, 4)
    with pytest.raises(ValueError, match="8 x 8 grid"):
        q.window(0, 4, 6, 9)
    with pytest.raises(ValueError, match="0 <= r0 < r1"):
        q.window(4, 4, 0, 2)
    with pytest.raises(TypeError, match="four integers"):
        q.patch((0, 1.5, 0, 2))
    vector = ia.model(smooth_mlp(1)).on(torch.rand(3, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="spatial grid"):
        vector.window(0, 1, 0, 1)
    with pytest.raises(ValueError, match="spatial grid"):
        vector.patch((0, 1, 0, 1), 0.0)
    with pytest.raises(ValueError, match="select the layer before the window"):
        q.window(*WINDOW).layer("conv1")
    with pytest.raises(ValueError, match="select the layer before the window"):
        q.layer("conv1").window(*WINDOW).layer("conv2")


@pytest.mark.parametrize(
    "make",
    [
        lambda q: q.layer("fc").window(0, 1, 0, 1).saliency(0),
        lambda q: q.layer("conv1").window(0, 9, 0, 2).integrated_gradients(0, steps=2),
        lambda q: q.layer("conv1").window(0, 2, 0, 9).grad_cam(0, upsample=False),
        lambda q: q.layer("conv1").window(0, 2, 7, 9).input_x_gradient(0),
    ],
    ids=["vector-layer", "ig-rows", "gradcam-cols", "ixg-cols"],
)
def test_window_beyond_a_layer_grid_raises_at_compute_and_leaves_the_model_clean(make):
    net = smooth_cnn()
    net.train()
    net.conv2.eval()
    net.fc.weight.requires_grad_(False)
    before = _state(net)
    x, _ = _pair()
    expr = make(ia.model(net).on(x))  # built fine: the layer's grid is known only when run
    with (
        pytest.warns(UserWarning, match="training mode"),
        pytest.raises(ValueError, match=r"window: \[.*(grid|layer 'fc')"),
    ):
        expr.compute()
    assert _state(net) == before


# ---------------------------------------------------------------------------------------
# Anti-join of two inputs through one model
# ---------------------------------------------------------------------------------------


def test_antijoin_of_two_inputs_pairs_each_side_with_the_other_as_baseline():
    net = smooth_cnn()
    x, x2 = _pair()
    m = ia.model(net)
    a, b = m.on(x), m.on(x2)
    r, left, right = ia.compute(
        a.antijoin(b, 3, method=IG, steps=STEPS),
        a.integrated_gradients(3, steps=STEPS, baseline=x2),
        b.integrated_gradients(3, steps=STEPS, baseline=x),
    )
    assert r.dims == ("side", "sample", "channel", "y", "x")
    assert r.side.values.tolist() == ["left", "right"]
    np.testing.assert_allclose(r.sel(side="left").values, left.values, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r.sel(side="right").values, right.values, rtol=1e-12, atol=1e-15)
    gap = _score(net, x, 3) - _score(net, x2, 3)
    sums = _feature_sum(r)
    np.testing.assert_allclose(sums[0], gap, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(sums[1], -gap, rtol=1e-7, atol=1e-12)
    assert r.attrs["antijoin"] == "inputs" and "baseline" not in r.attrs


def test_antijoin_keeps_each_sides_prediction_and_target():
    net = smooth_mlp(1)
    g = torch.Generator().manual_seed(3)
    x, x2 = (3 * torch.randn(6, 6, generator=g, dtype=torch.float64) for _ in range(2))
    m = ia.model(net)
    r = m.on(x).antijoin(m.on(x2), "pred", method=IG, steps=STEPS).compute()
    with torch.no_grad():
        p, p2 = net(x).argmax(1).numpy(), net(x2).argmax(1).numpy()
    assert (p != p2).any()  # the check below can tell the sides apart
    assert r.pred.dims == ("side", "sample")
    np.testing.assert_array_equal(r.pred.values, np.stack([p, p2]))
    np.testing.assert_array_equal(r["class"].values, np.stack([p, p2]))
    with torch.no_grad():
        gap_left = net(x).gather(1, torch.as_tensor(p)[:, None]) - net(x2).gather(
            1, torch.as_tensor(p)[:, None]
        )
    np.testing.assert_allclose(
        r.sel(side="left").sum("feature").values, gap_left[:, 0].numpy(), rtol=1e-5
    )


def test_antijoin_in_a_window_and_at_a_layer():
    net = smooth_cnn()
    x, x2 = _pair()
    m = ia.model(net)
    a, b = m.on(x), m.on(x2)
    windowed, expected = ia.compute(
        a.window(*WINDOW).antijoin(b.window(*WINDOW), 1, method=IG, steps=8),
        a.window(*WINDOW).integrated_gradients(1, steps=8, baseline=x2),
    )
    np.testing.assert_allclose(windowed.sel(side="left").values, expected.values, rtol=1e-12)
    assert not _outside(windowed.values, WINDOW).any()
    layer, left, right = ia.compute(
        a.layer("act1").antijoin(b.layer("act1"), 1, method=IG, steps=STEPS),
        a.layer("act1").integrated_gradients(1, steps=STEPS, baseline=x2),
        b.layer("act1").integrated_gradients(1, steps=STEPS, baseline=x),
    )
    assert layer.sizes == {"side": 2, "sample": 4, "channel": 4, "y": 8, "x": 8}
    np.testing.assert_allclose(layer.sel(side="left").values, left.values, rtol=1e-12)
    np.testing.assert_allclose(layer.sel(side="right").values, right.values, rtol=1e-12)
    # completeness at the layer: the path runs between the two inputs' activations
    gap = _score(net, x, 1) - _score(net, x2, 1)
    np.testing.assert_allclose(_feature_sum(layer)[0], gap, rtol=1e-7, atol=1e-12)


def test_antijoin_of_two_inputs_errors():
    net = smooth_cnn()
    x, x2 = _pair()
    m = ia.model(net)
    a, b = m.on(x), m.on(x2)
    with pytest.raises(ValueError, match="takes no baseline"):
        a.antijoin(b, 0, method="saliency")
    with pytest.raises(ValueError, match="takes no baseline"):
        a.antijoin(b, 0, method="input_x_gradient")
    with pytest.raises(ValueError, match="different layers"):
        a.layer("conv1").antijoin(b.layer("act1"), 0, method=IG, steps=2)
    with pytest.raises(ValueError, match="different layers"):
        a.layer("conv1").antijoin(b, 0, method=IG, steps=2)
    with pytest.raises(ValueError, match="same shape"):
        a.antijoin(m.on(x2[:3]), 0, method=IG, steps=2)
    with pytest.raises(ValueError, match="same model on the same inputs"):
        a.antijoin(m.on(x), 0, method=IG, steps=2)
    with pytest.raises(TypeError, match="baseline"):
        a.antijoin(b, 0, method=IG, steps=2, baseline=0.0)
    with pytest.raises(TypeError, match="Did you mean 'steps'"):
        a.antijoin(b, 0, method=IG, step=2)
    with pytest.raises(TypeError, match="expected a Query"):
        a.antijoin(b.saliency(0), 0)


# ---------------------------------------------------------------------------------------
# Anti-join of one input through two models: the disagreement f - g
# ---------------------------------------------------------------------------------------


def test_disagreement_is_the_gradient_of_f_minus_g_at_fs_prediction():
    f, g = smooth_mlp(1), smooth_mlp(7)
    x = 3 * torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    F, G = ia.model(f, name="f"), ia.model(g, name="g")
    r = F.on(x).antijoin(G.on(x), "pred", method="saliency", abs=False).compute()
    with torch.no_grad():
        pred_f, diff_pred = f(x).argmax(1), (f(x) - g(x)).argmax(1)
    assert (pred_f != diff_pred).any()  # 'pred' must be f's, not that of f - g
    xx = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((f(xx) - g(xx)).gather(1, pred_f[:, None]).sum(), xx)
    assert r.dims == ("sample", "feature")
    np.testing.assert_allclose(r.values, grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(r.pred.values, pred_f.numpy())
    np.testing.assert_array_equal(r["class"].values, pred_f.numpy())
    assert r.attrs["antijoin"] == "models 'f' - 'g'"


def test_disagreement_integrated_gradients_complete_on_f_minus_g():
    f, g = smooth_cnn(0), smooth_cnn(5)
    x, _ = _pair()
    r = ia.model(f).on(x).antijoin(ia.model(g).on(x), 2, method=IG, steps=STEPS).compute()
    zero = torch.zeros_like(x)
    expected = (_score(f, x, 2) - _score(g, x, 2)) - (_score(f, zero, 2) - _score(g, zero, 2))
    np.testing.assert_allclose(_feature_sum(r), expected, rtol=1e-7, atol=1e-12)
    # the same through ia.options.identity when it is saliency: plain gradients of f_c - g_c
    with ia.set_options(identity="saliency"):
        s = ia.model(f).on(x).antijoin(ia.model(g).on(x), 2, abs=False).compute()
    xx = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((f(xx) - g(xx))[:, 2].sum(), xx)
    np.testing.assert_allclose(s.values, grad.numpy(), rtol=1e-12, atol=1e-15)


def test_disagreement_leaves_both_models_unmodified():
    f, g = smooth_mlp(1), smooth_mlp(7)
    g.train()
    f.fc2.weight.requires_grad_(False)
    before = _state(f), _state(g)
    weights = [p.detach().clone() for p in [*f.parameters(), *g.parameters()]]
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    F, G = ia.model(f), ia.model(g)
    with pytest.warns(UserWarning, match="training mode"):
        ia.compute(
            F.on(x).antijoin(G.on(x), ia.topk(2), method=IG, steps=4),
            F.on(x).antijoin(G.on(x), "pred", method="saliency"),
        )
    assert (_state(f), _state(g)) == before
    for w, p in zip(weights, [*f.parameters(), *g.parameters()], strict=True):
        assert torch.equal(w, p)
    assert dict(f.named_children()).keys() == {"fc1", "act", "fc2"}


def test_disagreement_errors():
    f, g = smooth_cnn(0), smooth_cnn(5)
    x, x2 = _pair()
    F, G = ia.model(f), ia.model(g)
    with pytest.raises(ValueError, match="layers of two different models"):
        F.on(x).layer("conv1").antijoin(G.on(x).layer("conv1"), 0, method=IG, steps=2)
    with pytest.raises(ValueError, match="layers of two different models"):
        F.on(x).layer("conv1").antijoin(G.on(x), 0, method=IG, steps=2)
    with pytest.raises(ValueError, match="differ in both"):
        F.on(x).antijoin(G.on(x2), 0, method=IG, steps=2)
    with pytest.raises(ValueError, match="same window"):
        F.on(x).window(*WINDOW).antijoin(G.on(x), 0, method=IG, steps=2)
    named = ia.model(smooth_cnn(5), classes=list("abcde"))
    with pytest.raises(ValueError, match="name their classes differently"):
        ia.model(f, classes=list("vwxyz")).on(x).antijoin(named.on(x), 0, method=IG, steps=2)
    three = ia.model(smooth_cnn(5, classes=3))
    with pytest.raises(ValueError, match="outputs differ in shape"):
        F.on(x).antijoin(three.on(x), 0, method="saliency").compute()
    assert _hooks(f) == 0


# ---------------------------------------------------------------------------------------
# What-if: patch, replace, edit
# ---------------------------------------------------------------------------------------


def _same_as_by_hand(query: ia.Query, by_hand: torch.Tensor, model: ia.Model) -> None:
    for make in (
        lambda q: q.saliency("pred", abs=False),
        lambda q: q.integrated_gradients(1, steps=4),
    ):
        got, expected = ia.compute(make(query), make(model.on(by_hand)))
        np.testing.assert_allclose(got.values, expected.values, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(got.pred.values, expected.pred.values)


@pytest.mark.parametrize("kind", ["scalar", "patch_shaped", "batch_patch", "broadcast", "full"])
def test_patch_equals_the_patched_tensor_built_by_hand(kind):
    x, other = _pair()
    m = ia.model(smooth_cnn())
    r0, r1, c0, c1 = WINDOW
    g = torch.Generator().manual_seed(9)
    value = {
        "scalar": 0.75,
        "patch_shaped": torch.rand(3, r1 - r0, c1 - c0, generator=g, dtype=torch.float64),
        "batch_patch": torch.rand(4, 3, r1 - r0, c1 - c0, generator=g, dtype=torch.float64),
        "broadcast": torch.rand(3, 1, 1, generator=g, dtype=torch.float64),
        "full": other,
    }[kind]
    by_hand = x.clone()
    if isinstance(value, float):
        by_hand[..., r0:r1, c0:c1] = value
    elif kind == "full":
        by_hand[..., r0:r1, c0:c1] = other[..., r0:r1, c0:c1]
    else:
        by_hand[..., r0:r1, c0:c1] = value
    _same_as_by_hand(m.on(x).patch(WINDOW, value), by_hand, m)
    assert torch.equal(x, _pair()[0])  # the inputs themselves are untouched


def test_replace_and_edit_equal_the_tensors_built_by_hand():
    x, x2 = _pair()
    m = ia.model(smooth_cnn())
    r0, r1, c0, c1 = WINDOW
    by_hand = x.clone()
    by_hand[..., r0:r1, c0:c1] = x2[..., r0:r1, c0:c1]
    _same_as_by_hand(m.on(x).replace(WINDOW, with_=m.on(x2)), by_hand, m)
    # the replacement's own edits apply first
    edited_other = x2.clone()
    edited_other[..., 0:4, 0:4] = 1.0
    by_hand = x.clone()
    by_hand[..., r0:r1, c0:c1] = edited_other[..., r0:r1, c0:c1]
    replaced = m.on(x).replace(WINDOW, with_=m.on(x2).patch((0, 4, 0, 4), 1.0))
    _same_as_by_hand(replaced, by_hand, m)
    _same_as_by_hand(m.on(x).edit(lambda t: t.flip(-1) * 0.5), x.flip(-1) * 0.5, m)
    # edits chain in order: patch, then the function
    by_hand = x.clone()
    by_hand[..., r0:r1, c0:c1] = 0.0
    _same_as_by_hand(
        m.on(x).patch(WINDOW).edit(lambda t: t.transpose(-1, -2)), by_hand.transpose(-1, -2), m
    )


@pytest.mark.parametrize("order", ["edit_then_layer", "layer_then_edit"])
def test_edits_with_a_selected_layer_equal_by_hand(order):
    x, x2 = _pair()
    m = ia.model(smooth_cnn())
    r0, r1, c0, c1 = WINDOW
    by_hand = x.clone()
    by_hand[..., r0:r1, c0:c1] = x2[..., r0:r1, c0:c1]
    if order == "edit_then_layer":
        view = m.on(x).replace(WINDOW, with_=m.on(x2)).layer("act1").window(1, 7, 1, 7)
    else:
        view = m.on(x).layer("act1").window(1, 7, 1, 7).replace(WINDOW, with_=m.on(x2))
    expected_view = m.on(by_hand).layer("act1").window(1, 7, 1, 7)
    got, expected, cam, cam_expected = ia.compute(
        view.input_x_gradient(0),
        expected_view.input_x_gradient(0),
        view.grad_cam(1, upsample=False),
        expected_view.grad_cam(1, upsample=False),
    )
    np.testing.assert_allclose(got.values, expected.values, rtol=1e-12)
    np.testing.assert_allclose(cam.values, cam_expected.values, rtol=1e-12)
    assert not _outside(got.values, (1, 7, 1, 7)).any()


def test_edits_are_lazy(counting):
    calls = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape)
        return t.flip(-1)

    net = counting(smooth_cnn())
    x, _ = _pair()
    q = ia.model(net).on(x).edit(fn)
    exprs = [q.saliency(0), q.patch(WINDOW, 1.0).window(*WINDOW).integrated_gradients(0, steps=2)]
    for e in exprs:
        repr(e)
        e.graph()
    assert calls == [] and net.calls == 0
    ia.compute(*exprs)
    assert calls and net.calls > 0


def test_explain_does_not_call_the_edit_function():
    calls = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return t + 1

    x, _ = _pair()
    ia.model(smooth_cnn()).on(x).edit(fn).saliency(0).explain()
    assert calls == []


@pytest.mark.parametrize("use", ["antijoin", "layer_baseline"])
def test_edit_function_runs_once_per_compute(use):
    calls = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return t.flip(-1)

    x, _ = _pair()
    q = ia.model(smooth_cnn()).on(x)
    if use == "antijoin":
        q.edit(fn).antijoin(q, 0, method=IG, steps=2).compute()
    else:  # the baseline's forward and the path each materialize it
        q.layer("conv1").integrated_gradients(0, steps=2, baseline=q.edit(fn)).compute()
    assert len(calls) == 1


def test_patch_antijoin_is_zero_outside_the_patch_and_complete():
    net = smooth_cnn()
    x, _ = _pair()
    q = ia.model(net).on(x)
    r = q.patch(WINDOW, 0.0).antijoin(q, 4, method=IG, steps=STEPS).compute()
    assert not _outside(r.values, WINDOW).any()
    assert np.abs(_inside(r.values, WINDOW)).sum() > 0
    patched = x.clone()
    r0, r1, c0, c1 = WINDOW
    patched[..., r0:r1, c0:c1] = 0.0
    gap = _score(net, patched, 4) - _score(net, x, 4)
    np.testing.assert_allclose(_feature_sum(r)[0], gap, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(_feature_sum(r)[1], -gap, rtol=1e-7, atol=1e-12)


def test_edit_errors():
    x, _ = _pair()
    net = smooth_cnn()
    net.train()
    before = _state(net)
    q = ia.model(net).on(x)
    for fn in (lambda t: t[:2], lambda t: t.float(), lambda t: t.numpy()):
        with pytest.raises(ValueError, match=r"^fn: "):
            q.edit(fn).saliency(0).compute()
    assert _state(net) == before
    with pytest.raises(TypeError, match="fn: expected a callable"):
        q.edit(3)
    with pytest.raises(TypeError, match="with_: expected a Query"):
        q.replace(WINDOW, with_=x)
    with pytest.raises(ValueError, match="with_: the replacement inputs have shape"):
        q.replace(WINDOW, with_=ia.model(net).on(x[:2]))
    with pytest.raises(TypeError, match="value: expected a number or a tensor"):
        q.patch(WINDOW, "red")
    with pytest.raises(ValueError, match="finite"):
        q.patch(WINDOW, torch.tensor(float("nan")))


def test_patch_value_of_a_wrong_shape_raises_value_error():
    x, _ = _pair()
    q = ia.model(smooth_cnn()).on(x)
    with pytest.raises(ValueError, match="value"):
        q.patch(WINDOW, torch.ones(5, 5, dtype=torch.float64)).saliency(0).compute()


# ---------------------------------------------------------------------------------------
# identity
# ---------------------------------------------------------------------------------------


def test_identity_uses_the_option():
    x, _ = _pair()
    q = ia.model(smooth_cnn()).on(x)
    assert ia.options.identity == "shapley"
    assert q.identity("pred").node == q.shapley("pred").node
    assert q.identity(1, samples=3, seed=0).node == q.shapley(1, samples=3, seed=0).node
    assert (
        q.identity(1, IG, steps=8, integration="riemann_left").node
        == q.integrated_gradients(1, steps=8, method="riemann_left").node
    )
    with ia.set_options(identity="saliency"):
        assert q.identity("pred").node == q.saliency("pred").node
        r = q.identity(2, abs=False).compute()
    assert ia.options.identity == "shapley"
    xx = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(smooth_cnn()(xx)[:, 2].sum(), xx)
    np.testing.assert_allclose(r.values, grad.numpy(), rtol=1e-12)
    assert q.identity(0, "input_x_gradient").node == q.input_x_gradient(0).node
    assert q.layer("act1").identity(0, "grad_cam").node == q.layer("act1").grad_cam(0).node


def test_identity_errors():
    q = ia.model(smooth_cnn()).on(_pair()[0])
    with pytest.raises(TypeError, match=r"unknown parameter 'sampels'.*Did you mean 'samples'"):
        q.identity(0, sampels=3)
    with pytest.raises(TypeError, match=r"unknown parameter 'stpes'.*Did you mean 'steps'"):
        q.identity(0, IG, stpes=3)
    with pytest.raises(TypeError, match=r"saliency: unknown parameter 'steps'"):
        q.identity(0, "saliency", steps=3)
    with pytest.raises(ValueError, match=r"unknown value 'salency'.*Did you mean 'saliency'"):
        q.identity(0, "salency")
    with pytest.raises(TypeError, match="method"):
        q.identity(0, 3)
    with pytest.raises(ValueError, match="salincy"), ia.set_options(identity="salincy"):
        pass
    assert ia.options.identity == "shapley"


# ---------------------------------------------------------------------------------------
# Laziness and plans of the new operators
# ---------------------------------------------------------------------------------------


def _totals(plan: str) -> tuple[int, int]:
    forwards, rows = re.search(r"total: (\d+) forwards? \((\d+) rows\)", plan).groups()
    return int(forwards), int(rows)


def test_new_operators_run_nothing_until_compute_and_explain_matches(counting):
    net = counting(smooth_cnn())
    x, x2 = _pair()
    m = ia.model(net)
    a, b = m.on(x), m.on(x2)
    exprs = [
        a.window(*WINDOW).integrated_gradients(0, steps=3),
        a.layer("net.conv1").window(*WINDOW).saliency(1),
        a.antijoin(b, "pred", method=IG, steps=2),
        a.patch(WINDOW, 0.5).saliency(0),
        a.replace(WINDOW, with_=b).integrated_gradients(0, steps=2, baseline=b),
        a.identity(1, method=IG, steps=2),
    ]
    text = ia.explain(*exprs)
    for e in exprs:
        e.explain()
        repr(e)
    assert net.calls == 0
    ia.compute(*exprs)
    assert (net.calls, net.rows) == _totals(text)


def test_identical_new_operator_chains_are_equal_nodes():
    x, x2 = _pair()
    m = ia.model(smooth_cnn())

    def build(m: ia.Model) -> list[ia.Expr]:
        a, b = m.on(x), m.on(x2)
        return [
            a.window(*WINDOW).window(3, 5, 2, 4).integrated_gradients(0, steps=4),
            a.antijoin(b, 0, method=IG, steps=4),
            a.patch(WINDOW, 0.5).replace((0, 2, 0, 2), with_=b).saliency(0),
            a.identity(0, method=IG, steps=4),
        ]

    first, second = build(m), build(m)
    assert [e.node for e in first] == [e.node for e in second]
    a, b = m.on(x), m.on(x2)
    others = [  # one change each
        a.window(*WINDOW).integrated_gradients(0, steps=4),
        b.antijoin(a, 0, method=IG, steps=4),
        a.patch(WINDOW, 0.25).replace((0, 2, 0, 2), with_=b).saliency(0),
        a.identity(1, method=IG, steps=4),
    ]
    assert all(e.node != o.node for e, o in zip(first, others, strict=True))


def test_model_disagreement_runs_nothing_until_compute(counting):
    f, g = counting(smooth_mlp(1)), counting(smooth_mlp(7))
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    e = ia.model(f).on(x).antijoin(ia.model(g).on(x), "pred", method=IG, steps=4)
    e.explain()
    repr(e)
    assert f.calls == g.calls == 0
    e.compute()
    assert f.calls > 0 and g.calls > 0


def test_model_disagreement_explain_total_includes_the_reference_pass(counting):
    f, g = counting(smooth_mlp(1)), counting(smooth_mlp(7))
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    e = ia.model(f).on(x).antijoin(ia.model(g).on(x), "pred", method=IG, steps=4)
    forwards, rows = _totals(e.explain())
    e.compute()
    # f takes part in every pass of the plan (and resolves 'pred'); g in no more than those
    assert (f.calls, f.rows) == (forwards, rows)
    assert g.calls <= forwards
