"""Metrics: deletion/insertion against a hand-written loop, faithfulness, shared streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algebra.kernels.estimators import scores
from algebra.kernels.metrics import (
    area,
    curve_designs,
    curves,
    deletion,
    faithfulness_correlation,
    faithfulness_design,
    gaussian_noise,
    uniform_noise,
)
from algebra.kernels.perturb import evaluate
from algebra.kernels.players import every_feature, grid


def _loop_curve(net, x, maps, targets, steps, mode, baseline):
    """Curves by the definition: sort, cut, one forward per copy."""
    t_count, n_count = targets.shape
    out = torch.zeros(t_count, n_count, steps + 1, dtype=x.dtype)
    for t in range(t_count):
        for n in range(n_count):
            m = maps[t, n].expand_as(x[n]) if maps[t, n].shape != x[n].shape else maps[t, n]
            cells = maps[t, n].flatten()
            order = sorted(range(cells.numel()), key=lambda i: (-float(cells[i]), i))
            for s in range(steps + 1):
                top = order[: s * cells.numel() // steps]
                chosen = torch.zeros(cells.numel(), dtype=torch.bool)
                chosen[top] = True
                chosen = chosen.reshape(maps[t, n].shape).expand_as(m)
                hide = chosen if mode == "deletion" else ~chosen
                copy = torch.where(hide, torch.full_like(x[n], baseline), x[n])
                with torch.no_grad():
                    out[t, n, s] = net(copy[None])[0, targets[t, n]]
    return out


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("coarse", [False, True])
def test_curves_equal_a_loop(cnn, images, mode, coarse):
    net, x = cnn.double(), images.double()
    gen = torch.Generator().manual_seed(0)
    shape = (2, 4, 1, 8, 8) if coarse else (2, 4, 3, 8, 8)
    maps = torch.rand(shape, generator=gen, dtype=torch.float64)
    maps[0, 0, ..., :2, :] = 0.5  # ties are broken by position
    targets = torch.tensor([[0, 1, 2, 3], [4, 4, 4, 4]])
    (ours,), _ = deletion(net, x, [maps], targets, steps=5, mode=mode, baseline=0.2)
    want = _loop_curve(net, x, maps, targets, 5, mode, 0.2)
    torch.testing.assert_close(ours, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(area(ours), torch.trapezoid(want, dx=0.2, dim=-1))


def test_maps_share_one_stream(cnn, images, counting):
    net = counting(cnn)
    gen = torch.Generator().manual_seed(1)
    maps = [torch.rand(2, 4, 1, 8, 8, generator=gen) for _ in range(4)]
    targets = torch.tensor([[0, 1, 2, 3], [1, 1, 1, 1]])
    results, out = deletion(net, images, maps, targets, steps=8)
    assert len(results) == 4 and results[0].shape == (2, 4, 9)
    # 4 maps x 2 targets x 9 steps, but the input and the all-baseline copies are shared.
    assert out.copies == 4 * 2 * 9 and out.unique == 4 * 2 * 7 + 2
    assert net.rows == out.unique * 4
    # deletion and insertion of the same maps share their ends as well
    designs = curve_designs(maps[0], 8) + curve_designs(maps[0], 8, "insertion")
    both = evaluate(cnn, images, designs)
    assert both.unique == 2 * 2 * 7 + 2
    ins = curves(both.logits, both.index[2:], targets)
    dele = curves(both.logits, both.index[:2], targets)
    torch.testing.assert_close(ins[..., 0], dele[..., -1])
    torch.testing.assert_close(ins[..., -1], dele[..., 0])


def test_faithfulness_correlation_equals_a_loop(mlp, features):
    net, x = mlp.double(), features.double()
    players = every_feature(tuple(x.shape))
    design = faithfulness_design(players, samples=12, subset=2, seed=3)
    targets = torch.tensor([[0, 1, 2, 3, 0]])
    out = evaluate(net, x, [design], 0.1)
    gen = torch.Generator().manual_seed(2)
    attr = torch.randn(1, *x.shape, generator=gen, dtype=torch.float64)
    ours = faithfulness_correlation(scores(out.logits, out.index[0], targets), design, attr)
    for n in range(x.shape[0]):
        sums, drops = [], []
        with torch.no_grad():
            full = float(net(x[n : n + 1])[0, targets[0, n]])
            for k in range(1, 13):
                removed = ~design.keep[k]
                copy = torch.where(removed, torch.full_like(x[n], 0.1), x[n])
                drops.append(full - float(net(copy[None])[0, targets[0, n]]))
                sums.append(float(attr[0, n][removed].sum()))
        want = np.corrcoef(sums, drops)[0, 1]
        assert abs(float(ours[0, n]) - want) < 1e-10


def test_faithfulness_over_grid_players_sums_each_cell(cnn, images):
    players = grid(tuple(images.shape), 2, 2)
    design = faithfulness_design(players, samples=6, subset=1, seed=0)
    constant = torch.ones(1, 4, 7)  # no spread in drops: correlation is defined as 0
    attr = torch.rand(1, 4, 3, 8, 8)
    assert torch.equal(faithfulness_correlation(constant, design, attr), torch.zeros(1, 4))
    # an additive score over the cells correlates perfectly with the cells' sums
    cells = torch.rand(4, 4)
    attr = cells.reshape(1, 4, 1, 2, 1, 2, 1).expand(1, 4, 3, 2, 4, 2, 4).reshape(1, 4, 3, 8, 8)
    additive = (design.keep.float() @ (3 * 16 * cells).T).T[None]  # [1, N, K]
    torch.testing.assert_close(
        faithfulness_correlation(additive, design, attr), torch.ones(1, 4), rtol=0, atol=1e-5
    )


def test_noise_draws_are_seeded_and_bounded():
    x = torch.zeros(3, 2, 4)
    a, b = gaussian_noise(x, 5, 0.3, seed=1), gaussian_noise(x, 5, 0.3, seed=1)
    assert torch.equal(a, b) and a.shape == (5, 3, 2, 4)
    assert abs(float(a.std()) - 0.3) < 0.1
    u = uniform_noise(x, 200, 0.05, seed=4)
    assert float(u.abs().max()) <= 0.05 and float(u.abs().max()) > 0.045
    with pytest.raises(ValueError, match=r"^samples:"):
        uniform_noise(x, 0)
