"""Bad input to the perturbation methods and metrics fails when the expression is built,
with a message that names the argument; nothing runs, and the model comes back unchanged."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import algebra as ia


@pytest.fixture
def q(cnn, images, counting):
    net = counting(cnn)
    yield ia.model(net).on(images)
    assert net.calls == 0  # every check ran before any forward


CORNER = torch.full((8, 8), -1)
CORNER[4:, 4:] = 0

BAD = [
    # players
    (lambda q: q.shapley(0, groups=torch.zeros(3, 3, dtype=torch.long)), "groups: "),
    (lambda q: q.shapley(0, groups=torch.tensor([[0, 2], [2, 0]])), "groups: .*without gaps"),
    (lambda q: q.feature_ablation(0, groups=torch.zeros(8, 8)), "groups: expected an integer"),
    (lambda q: q.lime(0, groups=[[0, 1]]), "groups: expected None"),
    (lambda q: q.kernel_shap(0, groups=ia.grid(9, 2)), "groups: grid\\(9, 2\\) does not fit"),
    (lambda q: q.window(0, 3, 0, 3).shapley(0, groups=ia.patches(4)), "groups: patches\\(4\\)"),
    (lambda q: q.shapley(0, groups=torch.full((8, 8), -1)), "groups: the mask holds no player"),
    # a window with no player inside (the mask's one player lies elsewhere)
    (
        lambda q: q.window(0, 2, 0, 2).shapley(0, groups=CORNER),
        r"window: \[0, 2, 0, 2\] holds no player",
    ),
    # samples, seeds and the other numbers
    (lambda q: q.shapley(0, samples=0), "samples: expected an integer >= 1"),
    (lambda q: q.kernel_shap(0, samples=-3), "samples: expected an integer >= 1"),
    (lambda q: q.lime(0, samples=0), "samples: expected an integer >= 1"),
    (lambda q: q.shapley(0, samples="all"), 'samples: expected an integer >= 1 or "exact"'),
    (lambda q: q.shapley(0, samples="exact"), 'samples: "exact" .* at most 16 players; .* 64'),
    (lambda q: q.shapley(0, seed=0.5), "seed: expected an integer or None"),
    (lambda q: q.shapley(0, antithetic=1), "antithetic: expected True or False"),
    (lambda q: q.lime(0, kernel_width=0), "kernel_width: expected a positive number"),
    (lambda q: q.shapley(0, baseline=torch.zeros(5)), "baseline: "),
    # occlusion windows
    (lambda q: q.occlusion(0, size=9, stride=1), "size: the window 9 is larger"),
    (lambda q: q.occlusion(0, size=0, stride=1), "size: expected an integer >= 1"),
    (lambda q: q.occlusion(0, size=2, stride=0), "stride: expected an integer >= 1"),
    (lambda q: q.occlusion(0, size=2, stride=3), "stride: .* larger than the window"),
    (lambda q: q.occlusion(0, size=(3, 2), stride=1), "size: expected an integer or one"),
    (lambda q: q.window(0, 3, 0, 3).occlusion(0, size=4, stride=1), "size: the window 4"),
    (
        lambda q: q.layer("net.relu1").occlusion(0, size=2, stride=2),
        "occlusion: .* cannot attribute a layer",
    ),
    # targets and methods
    (lambda q: q.identity(0, "shapley", steps=3), "shapley: unknown parameter 'steps'"),
]


@pytest.mark.parametrize("build, message", BAD, ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_fails_at_construction(q, build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build(q)


def test_feature_permutation_needs_two_samples(cnn, images):
    with pytest.raises(ValueError, match=r"feature_permutation: .* at least 2 samples"):
        ia.model(cnn).on(images[:1]).feature_permutation(0)


METRICS_BAD = [
    (lambda e: e.deletion(steps=0), "steps: expected an integer >= 1"),
    (lambda e: e.insertion(steps=1.5), "steps: expected an integer >= 1"),
    (lambda e: e.infidelity(samples=0), "samples: expected an integer >= 1"),
    (lambda e: e.infidelity(stdev=0.0), "stdev: expected a positive number"),
    (lambda e: e.infidelity(normalize="yes"), "normalize: expected True or False"),
    (lambda e: e.sensitivity_max(radius=-1.0), "radius: expected a positive number"),
    (lambda e: e.sensitivity_max(seed="a"), "seed: expected an integer or None"),
    (lambda e: e.faithfulness_correlation(subset=65), "subset: 65 is more than the 64"),
    (lambda e: e.faithfulness_correlation(subset=0), "subset: expected an integer >= 1"),
    (lambda e: e.deletion(baseline=torch.zeros(7)), "baseline: "),
    (lambda e: e.mean("sample").deletion(), "attr: .* reduces over 'sample'"),
    (lambda e: e.sum().infidelity(), "attr: .* reduces over every dim"),
]


@pytest.mark.parametrize(
    "build, message", METRICS_BAD, ids=lambda v: v if isinstance(v, str) else ""
)
def test_bad_metrics_fail_at_construction(q, build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build(q.saliency(0))


def test_metrics_refuse_maps_they_cannot_score(q, images, cnn):
    with pytest.raises(TypeError, match="baseline: a metric's baseline is a number or a tensor"):
        q.saliency(0).deletion(baseline=q)
    with pytest.raises(
        ValueError,
        match=r"deletion: metrics perturb the inputs, but this map is over layer 'net\.relu1'",
    ):
        q.layer("net.relu1").saliency(0).deletion()
    with pytest.raises(ValueError, match="infidelity: a metric scores the class a map explains"):
        q.saliency(lambda out: out[:, 0]).infidelity()
    other = ia.model(nn.Sequential(nn.Flatten(), nn.Linear(192, 5)).eval()).on(images)
    with pytest.raises(ValueError, match=r"attr: a metric scores an attribution .* got join"):
        q.saliency(0).join(other.saliency(0)).deletion()
    # a grad_cam map upsampled to the inputs is a map of the inputs (a CAM probes its
    # layer's shape on one sample when built, so on a model the fixture does not count)
    ia.model(cnn).on(images).layer("relu2").grad_cam(0).deletion()


def test_a_bad_mask_at_a_layer_fails_when_the_layer_is_known(cnn, images):
    net = cnn.train()
    flags = {p: p.requires_grad for p in net.parameters()}
    e = (
        ia.model(net)
        .on(images)
        .layer("relu1")
        .shapley(0, groups=torch.zeros(5, 3, dtype=torch.long))
    )
    with (
        pytest.raises(ValueError, match=re.escape("groups: a mask of shape [5, 3]")),
        pytest.warns(UserWarning),
    ):
        e.compute()
    assert net.training and {p: p.requires_grad for p in net.parameters()} == flags
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


def test_the_model_comes_back_unchanged(cnn, images):
    net = nn.Sequential(cnn, nn.Dropout(0.2)).train()
    net[0].conv1.weight.requires_grad_(False)
    flags = {p: p.requires_grad for p in net.parameters()}
    before = [p.detach().clone() for p in net.parameters()]
    q = ia.model(net).on(images)
    with pytest.warns(UserWarning, match="training mode"):
        ia.compute(
            q.shapley("all", samples=2, seed=0),
            q.layer("0.relu1").feature_ablation(0),
            q.occlusion(1, 4, 4),
            q.saliency(0).deletion(steps=3),
            q.saliency(0).sensitivity_max(samples=2, seed=0),
        )
    assert net.training and all(m.training for m in net.modules())
    assert {p: p.requires_grad for p in net.parameters()} == flags
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(a, p) for a, p in zip(before, net.parameters(), strict=True))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
