"""Counterfactual neurons and importance: batched optimisation, votes, formula, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from algebra.kernels.counterfactual import (
    KINDS,
    counterfactual_deltas,
    counterfactual_neurons,
    neuron_votes,
)
from algebra.kernels.importance import importance_from_mean, neuron_importance


def head64(classes: int = 4, features: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(classes, features, generator=g, dtype=torch.float64)
    b = torch.randn(classes, generator=g, dtype=torch.float64)
    return w, b


def mistakes_of(cls: int, w, b, n: int = 40, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, w.shape[1], generator=g, dtype=torch.float64)
    return z[(z @ w.T + b).argmax(1) != cls]


def test_batched_optimisation_equals_one_optimisation_per_sample():
    w, b = head64()
    z = mistakes_of(2, w, b)
    assert len(z) > 5
    batch = counterfactual_deltas(z, w, b, 2, max_steps=300)
    for i in range(len(z)):
        one = counterfactual_deltas(z[i : i + 1], w, b, 2, max_steps=300)
        torch.testing.assert_close(batch.delta[i], one.delta[0], rtol=0, atol=1e-12)
        assert batch.steps[i] == one.steps[0] and batch.flipped[i] == one.flipped[0]
    assert batch.flipped.all()
    assert len(set(batch.steps.tolist())) > 1  # rows really stop at different steps


def test_each_row_stops_at_the_first_step_predicting_the_class():
    w, b = head64()
    z = mistakes_of(1, w, b)
    cf = counterfactual_deltas(z, w, b, 1, max_steps=400)
    assert ((z + cf.delta) @ w.T + b).argmax(1).eq(1).all()
    for i in range(len(z)):  # one step fewer and it is not there yet
        short = counterfactual_deltas(z[i : i + 1], w, b, 1, max_steps=int(cf.steps[i]) - 1)
        assert not short.flipped[0]
        assert short.steps[0] == cf.steps[i] - 1


def test_the_update_is_sgd_with_momentum_on_the_reference_loss():
    w, b = head64()
    z = mistakes_of(3, w, b)[:1]
    steps = 5
    cf = counterfactual_deltas(z, w, b, 3, max_steps=steps, lr=0.01, l1=0.1, l2=0.01)
    assert cf.steps[0] == steps and not cf.flipped[0]  # still wrong after 5 small steps
    delta = torch.zeros_like(z, requires_grad=True)
    opt = torch.optim.SGD([delta], lr=0.01, momentum=0.9)
    d = z.shape[1]
    for _ in range(steps):
        opt.zero_grad()
        loss = (
            nn.functional.cross_entropy((z + delta) @ w.T + b, torch.tensor([3]))
            + 0.1 * delta.abs().sum() / d
            + 0.01 * delta.norm() / d
        )
        loss.backward()
        opt.step()
    torch.testing.assert_close(cf.delta, delta.detach(), rtol=0, atol=1e-12)


def test_the_step_cap_bounds_every_row():
    w, b = head64()
    z = mistakes_of(0, w, b) * 30  # far from class 0: needs many steps
    cf = counterfactual_deltas(z, w, b, 0, max_steps=3)
    assert cf.steps.max() <= 3
    assert not cf.flipped.all()
    assert (cf.steps[~cf.flipped] == 3).all()


def test_votes_from_a_known_delta():
    delta = torch.tensor(
        [
            [3.0, -1.0, 0.5, 0.0],
            [2.0, 1.0, -4.0, 0.0],
            [1.0, 0.0, -2.0, 5.0],
            [-1.0, -2.0, -3.0, -4.0],  # nothing grows: no insufficient vote
        ]
    )
    votes = neuron_votes(delta, top=2, threshold=30.0)
    assert votes.mistakes == 4 and votes.threshold == 30.0
    insufficient = [75.0, 25.0, 25.0, 25.0]  # rows' two largest positive entries
    excessive = [0.0, 25.0, 75.0, 25.0]  # rows' two most negative entries (zeros do not vote)
    assert votes.percent[:, KINDS.index("insufficient")].tolist() == insufficient
    assert votes.percent[:, KINDS.index("excessive")].tolist() == excessive
    assert votes.kept[:, 0].tolist() == [75.0, 0.0, 0.0, 0.0]  # at or below 30 % dropped
    assert votes.kept[:, 1].tolist() == [0.0, 0.0, 75.0, 0.0]
    assert votes.ranked("excessive").tolist() == [2]
    assert neuron_votes(delta, top=2, threshold=3.0).ranked("excessive").tolist() == [2, 1, 3]
    assert neuron_votes(delta, top=1, threshold=25.0).ranked("insufficient").tolist() == [0]
    with pytest.raises(ValueError, match="top: 5 votes per mistake, but there are only 4 neurons"):
        neuron_votes(delta, top=5)
    with pytest.raises(ValueError, match="kind: expected one of"):
        votes.ranked("missing")


def test_importance_matches_a_loop_over_zeroed_neurons():
    w, b = head64(classes=5, features=7)
    mean = torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for cls in range(5):
        fast = importance_from_mean(mean, w, b, cls)
        p = torch.softmax(mean @ w.T + b, 0)[cls]
        for j in range(7):
            zeroed = mean.clone()
            zeroed[j] = 0
            expected = p / torch.softmax(zeroed @ w.T + b, 0)[cls]
            torch.testing.assert_close(fast[j], expected, rtol=1e-12, atol=0)


def test_importance_of_a_model_uses_the_mean_feature_of_the_data():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4)).double().eval()
    x = torch.randn(30, 3, dtype=torch.float64)
    z = torch.relu(net[0](x)).mean(0)
    expected = importance_from_mean(z, net[2].weight.detach(), net[2].bias.detach(), 2)
    torch.testing.assert_close(neuron_importance(net, x, 2), expected)
    with pytest.raises(ValueError, match="cls: class 4 is out of range"):
        neuron_importance(net, x, 4)


def test_counterfactual_neurons_on_a_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    x = torch.randn(60, 4, dtype=torch.float64)
    y = torch.full((60,), 1)
    res = counterfactual_neurons(net, (x, y), 1, top=3)
    predicted = net(x).argmax(1)
    assert torch.equal(res.sample, torch.nonzero(predicted != 1).flatten())
    z = torch.relu(net[0](x[res.sample]))
    direct = counterfactual_deltas(z, net[2].weight.detach(), net[2].bias.detach(), 1)
    torch.testing.assert_close(res.delta, direct.delta)
    assert res.votes.percent.shape == (8, 2) and res.decision.head == "2"


def test_bad_inputs_name_the_argument():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(20, 4)
    right = net(x).argmax(1)
    with pytest.raises(ValueError, match="cls: class 3 is out of range"):
        counterfactual_neurons(net, (x, right), 3)
    with pytest.raises(
        ValueError, match=r"cls: no mistakes for class \d: the data holds \d+ sample"
    ):
        counterfactual_neurons(net, (x, right), int(right[0]))
    with pytest.raises(ValueError, match="data: labels are needed"):
        counterfactual_neurons(net, x, 0)
    w, b = head64()
    with pytest.raises(ValueError, match="max_steps: expected a positive integer"):
        counterfactual_deltas(torch.zeros(1, 6, dtype=torch.float64), w, b, 0, max_steps=0)
    with pytest.raises(ValueError, match="lr: expected a positive number"):
        counterfactual_deltas(torch.zeros(1, 6, dtype=torch.float64), w, b, 0, lr=0)
