"""Perturbation methods through the public API equal Captum's on float64 models (1e-5):
occlusion, feature ablation and feature permutation, with scalar and tensor baselines and
masks, for several targets in one expression."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch

import algebra as ia
from algebra.kernels.coalitions import permutation_design
from algebra.kernels.players import player_mask

TARGETS = {"cnn": [[0, 1, 2, 3], [4, 4, 0, 1]], "mlp": [[0, 1, 2, 3, 0], [3, 3, 1, 1, 2]]}


@pytest.fixture(params=["cnn", "mlp"])
def case(request, cnn, mlp, images, features):
    kind = request.param
    net, x = (cnn, images) if kind == "cnn" else (mlp, features)
    return kind, net.double(), x.double(), torch.tensor(TARGETS[kind])


def _mask(kind: str) -> torch.Tensor:
    if kind == "cnn":  # a 4 x 4 grid of 2 x 2 cells spanning the channels: [1, 1, 8, 8]
        cells = torch.arange(16).reshape(4, 4)
        return cells.repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None]
    return torch.tensor([[0, 0, 1, 2, 2, 3]])


def _baselines(x: torch.Tensor) -> list:
    gen = torch.Generator().manual_seed(7)
    return [0.3, torch.rand(x.shape[1:], generator=gen, dtype=x.dtype)]


def _close(ours, theirs: torch.Tensor) -> None:
    ours = torch.as_tensor(ours.values if hasattr(ours, "values") else ours)
    assert ours.dtype == torch.float64
    scale = float(theirs.abs().max())
    assert scale > 0, "degenerate reference"
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("which", [0, 1])
def test_feature_ablation(case, which):
    kind, net, x, targets = case
    baseline = _baselines(x)[which]
    q = ia.model(net).on(x)
    mask = _mask(kind)
    exprs = [q.feature_ablation(list(t.tolist()), groups=mask, baseline=baseline) for t in targets]
    ours = ia.compute(*exprs)
    for t in range(targets.shape[0]):
        theirs = ca.FeatureAblation(net).attribute(
            x, baselines=baseline, target=targets[t], feature_mask=mask
        )
        _close(ours[t], theirs)


def test_feature_ablation_every_class_and_per_sample_mask(cnn, images):
    net, x = cnn.double(), images.double()
    gen = torch.Generator().manual_seed(3)
    mask = torch.stack([torch.randperm(16, generator=gen).reshape(4, 4) for _ in range(4)])
    mask = mask.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None]  # [N, 1, H, W]
    r = ia.model(net).on(x).feature_ablation("all", groups=mask, baseline=0.5).compute()
    assert r.player.dims == ("sample", "channel", "y", "x")
    for c in range(5):
        theirs = ca.FeatureAblation(net).attribute(x, baselines=0.5, target=c, feature_mask=mask)
        _close(r.sel(target=c), theirs)


@pytest.mark.parametrize("which", [0, 1])
def test_occlusion(case, which):
    kind, net, x, targets = case
    baseline = _baselines(x)[which]
    q = ia.model(net).on(x)
    shapes = [((3, 3, 3), (1, 2, 2)), (4, 2)] if kind == "cnn" else [((2,), 1), (3, 2)]
    for size, stride in shapes:
        exprs = [q.occlusion(t.tolist(), size, stride, baseline) for t in targets]
        ours = ia.compute(*exprs)
        window = (3, size, size) if isinstance(size, int) and kind == "cnn" else size
        window = (size,) if isinstance(window, int) else window
        for t in range(targets.shape[0]):
            theirs = ca.Occlusion(net).attribute(
                x,
                sliding_window_shapes=window,
                strides=stride,
                baselines=baseline,
                target=targets[t],
            )
            _close(ours[t], theirs)


def _replay(sources: torch.Tensor):
    """A Captum perm_func that applies ``sources[k]`` at its k-th call."""
    calls = iter(range(sources.shape[0]))

    def permute(inputs: torch.Tensor, feature_mask: torch.Tensor) -> torch.Tensor:
        return torch.where(feature_mask, inputs[sources[next(calls)]], inputs)

    return permute


def test_feature_permutation(case):
    kind, net, x, targets = case
    mask = _mask(kind)
    seed = 11
    q = ia.model(net).on(x)
    ours = ia.compute(*[q.feature_permutation(t.tolist(), groups=mask, seed=seed) for t in targets])
    # The same permutations: the design the seed draws, handed to Captum's perm_func, which
    # it calls once per player in order.
    players = player_mask(mask, tuple(x.shape))
    sources = permutation_design(players, x.shape[0], seed=seed).sources[1:]
    for t in range(targets.shape[0]):
        theirs = ca.FeaturePermutation(net, perm_func=_replay(sources)).attribute(
            x, target=targets[t], feature_mask=mask
        )
        _close(ours[t], theirs)


def test_feature_permutation_seed_reproducible(mlp, features):
    q = ia.model(mlp).on(features)
    a = q.feature_permutation("all", seed=3).compute(session=ia.Session())
    b = q.feature_permutation("all", seed=3).compute(session=ia.Session())
    c = q.feature_permutation("all", seed=4).compute(session=ia.Session())
    assert a.identical(b) and not a.equals(c)
