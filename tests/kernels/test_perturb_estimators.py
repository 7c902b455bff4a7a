"""Estimators: exact Shapley, additive models, efficiency, KernelSHAP convergence, LIME."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from algebra.kernels.coalitions import (
    ablation_design,
    exact_design,
    kernel_shap_design,
    lime_design,
    permutation_design,
    shapley_design,
)
from algebra.kernels.estimators import attribute, scores
from algebra.kernels.occlusion import occlusion_design
from algebra.kernels.perturb import evaluate
from algebra.kernels.players import every_feature, grid, player_mask, spread


def _run(net, x, design, targets, baseline=0.0):
    out = evaluate(net, x, [design], baseline)
    return attribute(design, scores(out.logits, out.index[0], targets), x, baseline)


def _brute_shapley(f, x, baseline, groups, p):
    """Shapley values of players ``groups`` by the textbook sum over coalitions (scalar f)."""

    def value(coalition):
        keep = torch.zeros_like(x, dtype=torch.bool)
        for j in coalition:
            keep |= groups == j
        return f(torch.where(keep, x, baseline))

    phi = []
    for i in range(p):
        others = [j for j in range(p) if j != i]
        total = 0.0
        for size in range(p):
            for s in itertools.combinations(others, size):
                w = math.factorial(size) * math.factorial(p - size - 1) / math.factorial(p)
                total += w * (value((*s, i)) - value(s))
        phi.append(total)
    return torch.tensor(phi, dtype=torch.float64)


def _tiny():
    torch.manual_seed(4)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


def test_exact_shapley_equals_brute_force():
    net = _tiny()
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    baseline = torch.tensor([0.1, -0.2, 0.0, 0.3, 0.5], dtype=torch.float64)
    groups = torch.tensor([0, 1, 1, 2, 3])
    players = player_mask(groups, tuple(x.shape))
    targets = torch.tensor([[0, 1, 2], [2, 2, 0]])
    ours = _run(net, x, exact_design(players), targets, baseline)
    for t in range(2):
        for n in range(3):

            def f(v, n=n, t=t):
                return float(net(v[None])[0, targets[t, n]].detach())

            want = _brute_shapley(f, x[n], baseline, groups, players.count)
            torch.testing.assert_close(ours[t, n], want, rtol=1e-10, atol=1e-10)


def _additive(classes=3, features=(2, 4, 4)):
    torch.manual_seed(2)
    size = math.prod(features)
    linear = nn.Linear(size, classes).double()
    return nn.Sequential(nn.Flatten(), linear).eval(), linear.weight.detach()


@pytest.mark.parametrize(
    "make",
    [
        lambda p: shapley_design(p, samples=3, seed=0),
        lambda p: shapley_design(p, samples=2, seed=1, antithetic=True),
        lambda p: exact_design(p),
        lambda p: kernel_shap_design(p, samples=60, seed=0),
        lambda p: lime_design(p, samples=80, seed=0),
        lambda p: ablation_design(p),
    ],
    ids=["sampling", "antithetic", "exact", "kernel_shap", "lime", "ablation"],
)
def test_additive_model_exact_values(make):
    net, weight = _additive()
    x = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    baseline = 0.2
    players = grid(tuple(x.shape), 2, 2)  # 4 players spanning channels
    targets = torch.tensor([[0, 1, 2], [1, 1, 1]])
    ours = spread(_run(net, x, make(players), targets, baseline), players, tuple(x.shape))
    contrib = weight[targets].reshape(2, 3, 2, 4, 4) * (x - baseline)
    # Each feature carries its whole player's contribution.
    block = contrib.reshape(2, 3, 2, 2, 2, 2, 2).sum((2, 4, 6))
    want = block.repeat_interleave(2, 2).repeat_interleave(2, 3)[:, :, None].expand_as(contrib)
    torch.testing.assert_close(ours, want, rtol=1e-7, atol=1e-7)


def test_additive_model_occlusion_and_permutation():
    net, weight = _additive()
    x = torch.rand(4, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    targets = torch.tensor([[0, 1, 2, 0]])
    # Non-overlapping windows: each feature gets its window's contribution.
    design = occlusion_design(tuple(x.shape), (2, 2, 2), 2)
    ours = spread(_run(net, x, design, targets, 0.0), design.players, tuple(x.shape))
    contrib = weight[targets].reshape(1, 4, 2, 4, 4) * x
    block = contrib.reshape(1, 4, 2, 2, 2, 2, 2).sum((2, 4, 6))
    want = block.repeat_interleave(2, 2).repeat_interleave(2, 3)[:, :, None].expand_as(contrib)
    torch.testing.assert_close(ours, want, rtol=1e-7, atol=1e-7)
    players = every_feature(tuple(x.shape))
    design = permutation_design(players, 4, seed=3)
    ours = _run(net, x, design, targets, 0.0)
    moved = x.reshape(4, -1)[design.sources[1:], torch.arange(players.count)[:, None]]  # [P, N]
    want = weight[targets[0]] * (x.reshape(4, -1) - moved.T)
    torch.testing.assert_close(ours[0], want, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("antithetic", [False, True])
def test_sampling_is_efficient(cnn, images, antithetic):
    net, x = cnn.double(), images.double()
    baseline = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5)).double()
    players = grid(tuple(x.shape), 4, 4)
    targets = torch.arange(5)[:, None].expand(5, 4)  # every class
    design = shapley_design(players, samples=3, seed=2, antithetic=antithetic)
    ours = _run(net, x, design, targets, baseline)
    with torch.no_grad():
        gap = (net(x) - net(baseline.expand_as(x))).T  # [C, N]
    torch.testing.assert_close(ours.sum(2), gap, rtol=0, atol=1e-5)


def test_kernel_shap_converges_to_exact():
    net = _tiny()
    x = torch.randn(2, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    players = every_feature(tuple(x.shape))
    targets = torch.tensor([[0, 1], [2, 0]])
    exact = _run(net, x, exact_design(players), targets)
    approx = _run(net, x, kernel_shap_design(players, samples=3000, seed=1), targets)
    corr = torch.corrcoef(torch.stack([exact.flatten(), approx.flatten()]))[0, 1]
    assert corr > 0.99
    # and with few samples it is still efficient: values sum to f(x) - f(baseline)
    few = _run(net, x, kernel_shap_design(players, samples=6, seed=1), targets)
    torch.testing.assert_close(few.sum(2), exact.sum(2), rtol=0, atol=1e-8)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_lime_recovers_linear_weights(distance):
    torch.manual_seed(0)
    net = nn.Linear(6, 2).double().eval()
    x = torch.ones(3, 6, dtype=torch.float64) + torch.rand(3, 6, dtype=torch.float64)
    players = every_feature(tuple(x.shape))
    design = lime_design(players, samples=100, seed=0, kernel_width=0.5, distance=distance)
    ours = _run(net, x, design, torch.tensor([[0, 1, 1]]))
    # baseline 0: a player's coefficient is its weight times its input value
    torch.testing.assert_close(ours[0] / x, net.weight[[0, 1, 1]].detach(), rtol=1e-6, atol=1e-8)


def test_lime_weights_follow_distance():
    from algebra.kernels.surrogates import lime_weights

    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    players = grid(tuple(x.shape), 2, 2)
    for distance in ("cosine", "euclidean"):
        design = lime_design(players, samples=5, seed=2, kernel_width=0.7, distance=distance)
        w = lime_weights(design, x, 0.3)
        for k in range(5):
            keep = design.keep[k][players.ids].expand_as(x)
            copy = torch.where(keep, x, torch.full_like(x, 0.3))
            for n in range(2):
                a, b = x[n].flatten(), copy[n].flatten()
                d = (
                    (1 - torch.cosine_similarity(a, b, 0))
                    if distance == "cosine"
                    else (a - b).norm()
                )
                want = torch.exp(-(d**2) / (2 * 0.7**2))
                torch.testing.assert_close(w[n, k], want, rtol=1e-9, atol=1e-12)
