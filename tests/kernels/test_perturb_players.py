"""Player maps (masks, grids, patches, windows), spreading, and bad input of every design."""

from __future__ import annotations

import pytest
import torch

from algebra.kernels.coalitions import (
    exact_design,
    kernel_shap_design,
    lime_design,
    permutation_design,
    shapley_design,
)
from algebra.kernels.estimators import attribute, scores
from algebra.kernels.metrics import curve_design, faithfulness_design
from algebra.kernels.occlusion import occlusion_design
from algebra.kernels.perturb import evaluate
from algebra.kernels.players import (
    default_players,
    every_feature,
    grid,
    patches,
    player_mask,
    player_sums,
    spread,
    within,
)

SHAPE = (2, 3, 8, 8)


def test_grid_players_are_even_rectangles_spanning_channels():
    p = grid(SHAPE, 4, 2)
    assert p.count == 8 and tuple(p.ids.shape) == (1, 1, 8, 8)
    assert torch.equal(p.ids[0, 0, :, 0], torch.arange(4).repeat_interleave(2) * 2)
    assert torch.equal(p.ids[0, 0, 0], torch.tensor([0] * 4 + [1] * 4))
    uneven = grid((1, 1, 5, 7), 2, 3)
    assert uneven.count == 6 and torch.equal(torch.unique(uneven.ids), torch.arange(6))


def test_grid_and_patches_over_a_window():
    p = grid(SHAPE, 2, 2, window=(2, 6, 4, 8))
    ids = p.ids[0, 0]
    assert (ids[:2] == -1).all() and (ids[:, :4] == -1).all()
    assert torch.equal(ids[2:6, 4:8], torch.tensor([[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2))
    q = patches(SHAPE, 3, window=(0, 4, 0, 8))
    assert q.count == 2 * 3 and (q.ids[0, 0, 4:] == -1).all()
    assert torch.equal(q.ids[0, 0, 0], torch.tensor([0, 0, 0, 1, 1, 1, 2, 2]))


def test_defaults():
    assert default_players((2, 3, 32, 32)).count == 64
    assert default_players((2, 3, 4, 4)).count == 16  # at most one player per position
    assert default_players((5, 6)).count == 6
    assert torch.equal(every_feature((1, 2, 2)).ids, torch.arange(4).reshape(1, 2, 2))


def test_within_renumbers_and_keeps_outside_fixed():
    p = within(grid(SHAPE, 4, 4), (2, 6, 2, 6), SHAPE)
    assert p.count == 4  # the window holds the middle 2 x 2 cells
    assert (p.ids[0, 0, :2] == -1).all() and p.ids[0, 0, 2, 2] == 0


def test_window_players_sum_to_the_window_gap(cnn, images):
    # Projection: zero outside the window; inside, values sum to f(x) - f(window at baseline).
    net, x = cnn.double(), images.double()
    window = (2, 6, 0, 4)
    players = grid(tuple(x.shape), 2, 2, window=window)
    design = shapley_design(players, samples=3, seed=0)
    out = evaluate(net, x, [design], 0.0)
    targets = torch.tensor([[0, 1, 2, 3]])
    values = spread(attribute(design, scores(out.logits, out.index[0], targets)), players, x.shape)
    assert (values[..., :2, :] == 0).all() and (values[..., 4:] == 0).all()
    hidden = x.clone()
    hidden[..., 2:6, 0:4] = 0
    with torch.no_grad():
        gap = (net(x) - net(hidden)).gather(1, targets.T).T
    per_player = attribute(design, scores(out.logits, out.index[0], targets))
    torch.testing.assert_close(per_player.sum(2), gap, rtol=0, atol=1e-10)


def test_spread_and_sums_round_trip():
    players = player_mask(torch.tensor([[0, 1], [1, -1]]), (2, 3, 2, 2))
    values = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    full = spread(values, players, (2, 3, 2, 2))
    assert full.shape == (1, 2, 3, 2, 2) and (full[..., 1, 1] == 0).all()
    assert torch.equal(player_sums(full, players), values * torch.tensor([3.0, 6.0]))


def test_bad_groups():
    with pytest.raises(ValueError, match=r"^groups: .*does not broadcast"):
        player_mask(torch.zeros(4, 4, dtype=torch.long), SHAPE)
    with pytest.raises(ValueError, match=r"^groups: .*id 1 is missing"):
        player_mask(torch.tensor([0, 2, 2, 0, 0, 0]), (5, 6))
    with pytest.raises(ValueError, match=r"^groups: expected an integer"):
        player_mask(torch.zeros(6), (5, 6))
    with pytest.raises(ValueError, match=r"^groups: .*more dims"):
        player_mask(torch.zeros(1, 1, 6, dtype=torch.long), (5, 6))
    with pytest.raises(ValueError, match=r"^groups: ids must be >= 0"):
        player_mask(torch.tensor([0, -2, 1, 1, 1, 1]), (5, 6))
    with pytest.raises(ValueError, match=r"^groups: .*does not broadcast"):
        player_mask(torch.zeros(3, 6, dtype=torch.long), (5, 6))  # batch of 3 for 5 samples


def test_bad_grid_patch_and_window():
    with pytest.raises(ValueError, match=r"^rows, cols:"):
        grid(SHAPE, 9, 2)
    with pytest.raises(ValueError, match=r"^rows:"):
        grid(SHAPE, 0, 2)
    with pytest.raises(ValueError, match=r"^size:"):
        patches(SHAPE, 0)
    with pytest.raises(ValueError, match=r"^size:"):
        patches(SHAPE, 9)
    with pytest.raises(ValueError, match=r"^window: .*holds no player"):
        grid(SHAPE, 2, 2, window=(3, 3, 0, 4))
    with pytest.raises(ValueError, match=r"^window:"):
        grid(SHAPE, 2, 2, window=(0, 9, 0, 4))
    with pytest.raises(ValueError, match=r"^window: .*holds no player"):
        within(player_mask(torch.tensor([[0, 0], [-1, -1]]), (1, 2, 2)), (1, 2, 0, 2), (1, 2, 2))
    with pytest.raises(ValueError, match=r"^grid: needs a spatial grid"):
        grid((5, 6), 2, 2)


def test_bad_design_arguments():
    players = every_feature((4, 6))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"^samples:"):
            shapley_design(players, samples=bad)
        with pytest.raises(ValueError, match=r"^samples:"):
            kernel_shap_design(players, samples=bad)
        with pytest.raises(ValueError, match=r"^samples:"):
            lime_design(players, samples=bad)
        with pytest.raises(ValueError, match=r"^samples:"):
            faithfulness_design(players, samples=bad)
    with pytest.raises(ValueError, match=r'^samples: "exact" .* at most 16 players; .* 17'):
        exact_design(every_feature((1, 17)))
    with pytest.raises(ValueError, match=r"^samples: \"exact\""):
        shapley_design(every_feature((1, 17)), samples="exact")
    assert shapley_design(every_feature((1, 3)), samples="exact").keep.shape == (8, 3)
    with pytest.raises(ValueError, match=r"^seed:"):
        shapley_design(players, seed="x")
    with pytest.raises(ValueError, match=r"^kernel_width:"):
        lime_design(players, kernel_width=0)
    with pytest.raises(ValueError, match=r"^distance:"):
        lime_design(players, distance="manhattan")
    with pytest.raises(ValueError, match=r"^inputs: .*at least 2 samples"):
        permutation_design(players, 1)
    with pytest.raises(ValueError, match=r"^sources:"):
        permutation_design(players, 4, sources=torch.zeros(6, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^sources:"):
        permutation_design(players, 4, sources=torch.tensor([0, 1, 1, 2]))
    shared = permutation_design(players, 4, sources=torch.tensor([1, 0, 3, 2]))
    assert (shared.sources[1:] == torch.tensor([1, 0, 3, 2])).all()
    with pytest.raises(ValueError, match=r"^subset:"):
        faithfulness_design(players, subset=7)
    with pytest.raises(ValueError, match=r"^steps:"):
        curve_design(torch.rand(2, 6), steps=0)
    with pytest.raises(ValueError, match=r"^mode:"):
        curve_design(torch.rand(2, 6), mode="both")


def test_bad_occlusion_windows():
    for size, stride in [
        ((3, 9, 2), 1),  # larger than the input
        ((3, 0, 2), 1),  # zero
        ((3, 2), 1),  # wrong number of dims
        (9, 1),
        (0, 1),
    ]:
        with pytest.raises(ValueError, match=r"^size:"):
            occlusion_design(SHAPE, size, stride)
    for stride in (0, (1, 0, 1), (1, 1), 3, -1):
        with pytest.raises(ValueError, match=r"^stride:"):
            occlusion_design(SHAPE, 2, stride)
    # A stride longer than a dim the window fills is harmless (Captum allows it).
    assert occlusion_design(SHAPE, (3, 4, 4), 4).keep.shape == (5, 4)
