"""What the perturbation methods compute, through the public API: exact Shapley values
against brute force, additive models, efficiency, KernelSHAP convergence, LIME on a linear
model, projection (players inside the window only) and layers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

import algebra as ia
from algebra.kernels.coalitions import generator


def tiny_mlp(classes: int = 3) -> nn.Sequential:
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, classes))
    return net.double().eval()


def per_player(result, n: int) -> np.ndarray:
    """A result's value per player ``[..., P]``: one feature of each player (all agree)."""
    ids = np.asarray(result.player.values)
    feature_dims = [d for d in result.dims if d not in ("sample", "target")]
    flat = result.transpose(..., *feature_dims).values.reshape(
        *result.shape[: -len(feature_dims)], -1
    )
    ids = ids.reshape(-1) if ids.ndim == len(feature_dims) else ids.reshape(n, -1)[0]
    first = [int(np.flatnonzero(ids == p)[0]) for p in range(int(ids.max()) + 1)]
    return flat[..., first]


def brute_shapley(f, x: torch.Tensor, base: torch.Tensor, groups: torch.Tensor, c: int):
    """Shapley values of each player by the definition (a loop over all coalitions)."""
    p = int(groups.max()) + 1
    values = torch.zeros(x.shape[0], p, dtype=torch.float64)
    for i in range(p):
        others = [j for j in range(p) if j != i]
        for size in range(p):
            weight = math.factorial(size) * math.factorial(p - size - 1) / math.factorial(p)
            for coalition in itertools.combinations(others, size):
                keep = torch.isin(groups, torch.tensor(coalition, dtype=torch.long))
                with_i = keep | (groups == i)
                without = torch.where(keep, x, base)
                added = torch.where(with_i, x, base)
                with torch.no_grad():
                    values[:, i] += weight * (f(added)[:, c] - f(without)[:, c])
    return values


def test_exact_shapley_equals_brute_force():
    net = tiny_mlp()
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    groups = torch.tensor([0, 1, 1, 2, 3])
    r = ia.model(net).on(x).shapley("all", groups=groups, samples="exact", baseline=0.2).compute()
    values = per_player(r, 3)  # [N, T, P]
    for c in range(3):
        want = brute_shapley(net, x, torch.full_like(x, 0.2), groups, c)
        np.testing.assert_allclose(values[:, c], want.numpy(), rtol=1e-10, atol=1e-12)


def test_every_estimator_is_exact_on_an_additive_model():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3).double().eval()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    baseline = torch.linspace(-1, 1, 6, dtype=torch.float64)
    groups = torch.tensor([0, 0, 1, 2, 2, 3])
    contrib = lin.weight.detach()[:, None, :] * (x - baseline)[None]  # [C, N, F]
    want = torch.stack([contrib[..., groups == p].sum(-1) for p in range(4)], -1)  # [C, N, P]
    q = ia.model(lin).on(x)
    exprs = {
        "shapley": q.shapley("all", groups, samples=3, baseline=baseline, seed=0),
        "antithetic": q.shapley("all", groups, samples=2, baseline=baseline, antithetic=True),
        "exact": q.shapley("all", groups, samples="exact", baseline=baseline),
        "kernel_shap": q.kernel_shap("all", groups, samples=30, baseline=baseline, seed=1),
        "lime": q.lime("all", groups, samples=40, baseline=baseline, seed=2),
        "feature_ablation": q.feature_ablation("all", groups, baseline=baseline),
    }
    results = ia.compute(exprs)
    for name, r in results.items():
        got = per_player(r, 4).transpose(1, 0, 2)  # [C, N, P]
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-7, atol=1e-9, err_msg=name)
    occ = q.occlusion("all", size=1, stride=1, baseline=baseline).compute()
    np.testing.assert_allclose(
        occ.transpose("target", "sample", "feature").values, contrib.numpy(), atol=1e-12
    )


@pytest.mark.parametrize("antithetic", [False, True])
def test_sampled_shapley_is_efficient_for_every_sample_and_target(cnn, images, antithetic):
    net, x = cnn.double(), images.double()
    q = ia.model(net).on(x)
    r = q.shapley("all", samples=3, baseline=0.1, seed=4, antithetic=antithetic).compute()
    total = per_player(r, 4).sum(-1)  # [N, T]
    with torch.no_grad():
        gap = net(x) - net(torch.full_like(x, 0.1))
    np.testing.assert_allclose(total, gap.numpy(), rtol=1e-5, atol=1e-9)
    assert r.attrs["players"] == 64 and r.player.dims == ("channel", "y", "x")


def test_kernel_shap_converges_to_exact_shapley_values():
    net = tiny_mlp()
    x = torch.randn(2, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    q = ia.model(net).on(x)
    exact, approx = ia.compute(
        q.shapley("all", samples="exact"), q.kernel_shap("all", samples=3000, seed=0)
    )
    corr = np.corrcoef(exact.values.ravel(), approx.values.ravel())[0, 1]
    assert corr > 0.99
    # and with the same draws, more samples get closer
    few = q.kernel_shap("all", samples=30, seed=0).compute()
    assert np.abs(few - exact).max() > np.abs(approx - exact).max()


def test_lime_recovers_the_weights_of_a_linear_model():
    torch.manual_seed(1)
    lin = nn.Linear(6, 2).double().eval()
    x = 1.0 + torch.rand(3, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    r = ia.model(lin).on(x).lime("all", samples=100, seed=0).compute()
    weights = r.transpose("target", "sample", "feature").values / x.numpy()[None]
    np.testing.assert_allclose(
        weights, lin.weight.detach().numpy()[:, None].repeat(3, 1), rtol=1e-8
    )


def test_projection_zero_outside_and_efficient_inside(cnn, images):
    net, x = cnn.double(), images.double()
    q = ia.model(net).on(x)
    window = (2, 6, 1, 7)
    r = q.window(*window).shapley("pred", groups=ia.grid(2, 3), samples=4, seed=0).compute()
    inside = np.zeros((8, 8), dtype=bool)
    inside[2:6, 1:7] = True
    assert (r.values[..., ~inside] == 0).all() and (r.player.values[:, ~inside] == -1).all()
    assert r.attrs["players"] == 6
    total = per_player(r, 4).sum(-1)
    gone = x.clone()
    gone[..., 2:6, 1:7] = 0.0
    with torch.no_grad():
        pred = net(x).argmax(1)
        gap = (net(x) - net(gone)).gather(1, pred[:, None])[:, 0]
    np.testing.assert_allclose(total, gap.numpy(), rtol=1e-5, atol=1e-9)


def test_nested_windows_lay_players_over_the_innermost(cnn, images):
    q = ia.model(cnn).on(images)
    r = q.window(0, 8, 0, 8).window(4, 8, 4, 8).feature_ablation(0).compute()
    assert r.attrs["players"] == 16  # the 4 x 4 window is smaller than the 8 x 8 default grid
    ids = r.player.values[0]
    assert (ids[:4] == -1).all() and (ids[:, :4] == -1).all() and ids[4:, 4:].max() == 15


def test_a_mask_is_cut_to_the_window(cnn, images):
    mask = torch.arange(4).repeat_interleave(2)[None, :].expand(8, 8)  # four column bands
    r = ia.model(cnn).on(images).window(0, 8, 3, 8).feature_ablation(0, groups=mask).compute()
    assert sorted(np.unique(r.player.values).tolist()) == [-1, 0, 1, 2]  # bands 1-3 remain


def test_feature_ablation_at_a_layer_replaces_its_activation(cnn, images):
    net = cnn.double()
    x = images.double()
    q = ia.model(net).on(x)
    r = q.layer("relu1").feature_ablation("pred", groups=ia.grid(2, 2), baseline=0.0).compute()
    assert r.sizes == {"sample": 4, "channel": 4, "y": 8, "x": 8}
    # by hand: ablate one quarter of relu1's output to its value at the zero input
    acts = {}
    with torch.no_grad():
        hook = net.relu1.register_forward_hook(lambda m, i, o: acts.setdefault("h", o.clone()))
        net(torch.zeros(1, 3, 8, 8, dtype=torch.float64))
        hook.remove()
        base, full = acts["h"], net(x)
        pred = full.argmax(1)
        quarter = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
        quarter[..., :4, 4:] = True  # player 1
        hook = net.relu1.register_forward_hook(lambda m, i, o: torch.where(quarter, base, o))
        ablated = net(x)
        hook.remove()
    want = (full - ablated).gather(1, pred[:, None])[:, 0]
    np.testing.assert_allclose(r.values[:, 0, 0, 7], want.numpy(), rtol=1e-10)
    assert not net.relu1._forward_hooks


def test_shapley_over_a_layers_channels(cnn, images):
    channels = torch.arange(6)[:, None, None]  # conv2 has 6 channels: one player each
    q = ia.model(cnn.double()).on(images.double())
    r = q.layer("conv2").shapley(1, groups=channels, samples="exact").compute()
    assert r.attrs["players"] == 6 and r.player.dims == ("channel", "y", "x")
    with torch.no_grad():
        full = cnn.double()(images.double())[:, 1]
    # efficiency at the layer: players add up to f(x) - f(x with conv2 at its baseline value)
    acts = {}
    hook = cnn.conv2.register_forward_hook(lambda m, i, o: acts.setdefault("b", o.clone()))
    with torch.no_grad():
        cnn(torch.zeros(1, 3, 8, 8, dtype=torch.float64))
    hook.remove()
    hook = cnn.conv2.register_forward_hook(lambda m, i, o: acts["b"].expand_as(o))
    with torch.no_grad():
        empty = cnn(images.double())[:, 1]
    hook.remove()
    total = r.isel(y=0, x=0).sum("channel").values
    np.testing.assert_allclose(total, (full - empty).numpy(), rtol=1e-8, atol=1e-10)


def test_occlusion_in_a_window_slides_over_the_window_only(cnn, images):
    q = ia.model(cnn.double()).on(images.double())
    r = q.window(0, 4, 0, 8).occlusion(0, size=(3, 2, 4), stride=(3, 2, 4)).compute()
    assert (r.values[..., 4:, :] == 0).all()
    assert r.attrs["players"] == 4  # 2 x 2 windows, each its own block


def test_callable_targets_read_their_score_from_each_copy(mlp, features):
    q = ia.model(mlp.double()).on(features.double())

    def score(out: torch.Tensor) -> torch.Tensor:
        return out.softmax(1)[:, 2]

    r = q.shapley(score, samples="exact", groups=torch.tensor([0, 0, 1, 1, 2, 2])).compute()
    with torch.no_grad():
        gap = score(mlp(features.double())) - score(mlp(torch.zeros_like(features.double())))
    np.testing.assert_allclose(per_player(r, 5).sum(-1), gap.numpy(), rtol=1e-10)
    assert "class" not in r.coords


def test_the_identity_anti_join_of_two_inputs_is_efficient_on_each_side(cnn, images):
    net, x = cnn.double(), images.double()
    x2 = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    m = ia.model(net)
    r = m.on(x).antijoin(m.on(x2), 2, samples=3, seed=0).compute()  # Shapley: the identity
    assert r.attrs["method"] == "shapley"
    with torch.no_grad():
        gap = (net(x) - net(x2))[:, 2].numpy()
    left, right = (per_player(r.sel(side=s), 4).sum(-1) for s in ("left", "right"))
    np.testing.assert_allclose(left, gap, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(right, -gap, rtol=1e-6, atol=1e-10)


def test_the_identity_anti_join_of_two_models_attributes_their_disagreement():
    f, g = tiny_mlp(), nn.Sequential(nn.Linear(5, 3)).double().eval()
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    r = ia.model(f).on(x).antijoin(ia.model(g).on(x), "pred", samples=3, seed=0).compute()
    with torch.no_grad():
        zero = torch.zeros_like(x)
        d = (f(x) - g(x)) - (f(zero) - g(zero))
        want = d.gather(1, f(x).argmax(1, keepdim=True))[:, 0]
    np.testing.assert_allclose(r.sum("feature").values, want.numpy(), rtol=1e-8, atol=1e-12)


def test_feature_permutation_at_a_layer_shuffles_its_activation(cnn, images):
    q = ia.model(cnn.double()).on(images.double())
    r = q.layer("relu2").feature_permutation(0, groups=ia.grid(1, 1), seed=0).compute()
    net = cnn.double()
    acts = {}
    hook = net.relu2.register_forward_hook(lambda m, i, o: acts.setdefault("h", o.clone()))
    with torch.no_grad():
        full = net(images.double())[:, 0]
    hook.remove()
    perm = torch.rand(1, 4, generator=generator(0)).argsort(1)[0]  # what seed=0 draws
    hook = net.relu2.register_forward_hook(lambda m, i, o: acts["h"][perm])
    with torch.no_grad():
        shuffled = net(images.double())[:, 0]
    hook.remove()
    np.testing.assert_allclose(r.values[:, 0, 0, 0], (full - shuffled).numpy(), rtol=1e-10)
