"""Parity with Captum's perturbation methods and metrics on small float64 models (1e-5)."""

from __future__ import annotations

import captum.attr as ca
import captum.metrics as cm
import pytest
import torch

from algebra.kernels.coalitions import ablation_design, permutation_design, shapley_design
from algebra.kernels.estimators import attribute, scores
from algebra.kernels.metrics import infidelity, sensitivity_max, uniform_noise
from algebra.kernels.occlusion import occlusion_design
from algebra.kernels.perturb import evaluate
from algebra.kernels.players import grid, player_mask, spread

TARGETS = {"cnn": [[0, 1, 2, 3], [4, 4, 0, 1]], "mlp": [[0, 1, 2, 3, 0], [3, 3, 1, 1, 2]]}


@pytest.fixture(params=["cnn", "mlp"])
def case(request, cnn, mlp, images, features):
    kind = request.param
    net, x = (cnn, images) if kind == "cnn" else (mlp, features)
    return kind, net.double(), x.double(), torch.tensor(TARGETS[kind])


def _mask(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "cnn":
        return grid(tuple(x.shape), 4, 4).ids[0]  # [1, H, W]: players span channels
    return torch.tensor([0, 0, 1, 2, 2, 3])


def _baselines(x: torch.Tensor) -> list:
    gen = torch.Generator().manual_seed(7)
    return [0.3, torch.rand(x.shape[1:], generator=gen, dtype=x.dtype)]


def _ours(net, x, design, targets, baseline):
    out = evaluate(net, x, [design], baseline)
    values = attribute(design, scores(out.logits, out.index[0], targets), x, baseline)
    return spread(values, design.players, tuple(x.shape))


def _close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.to(ours.dtype)
    scale = theirs.abs().max().clamp(min=1e-12)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(scale))


@pytest.mark.parametrize("which", [0, 1])
def test_feature_ablation(case, which):
    kind, net, x, targets = case
    baseline = _baselines(x)[which]
    mask = _mask(kind, x)
    design = ablation_design(player_mask(mask, tuple(x.shape)))
    ours = _ours(net, x, design, targets, baseline)
    for t in range(targets.shape[0]):
        theirs = ca.FeatureAblation(net).attribute(
            x, baselines=baseline, target=targets[t], feature_mask=mask[None]
        )
        _close(ours[t], theirs)


def test_feature_ablation_per_sample_mask(cnn, images):
    net, x = cnn.double(), images.double()
    gen = torch.Generator().manual_seed(3)
    mask = torch.stack([torch.randperm(16, generator=gen).reshape(4, 4) for _ in range(4)])
    mask = mask.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None]  # [N, 1, H, W]
    targets = torch.tensor([[1, 2, 3, 4]])
    design = ablation_design(player_mask(mask, tuple(x.shape)))
    ours = _ours(net, x, design, targets, 0.5)
    theirs = ca.FeatureAblation(net).attribute(
        x, baselines=0.5, target=targets[0], feature_mask=mask
    )
    _close(ours[0], theirs)


@pytest.mark.parametrize("which", [0, 1])
def test_occlusion(case, which):
    kind, net, x, targets = case
    baseline = _baselines(x)[which]
    shapes = [((3, 3, 3), (1, 2, 2)), ((3, 4, 2), 2)] if kind == "cnn" else [((2,), 1), ((3,), 2)]
    for window, stride in shapes:
        design = occlusion_design(tuple(x.shape), window, stride)
        ours = _ours(net, x, design, targets, baseline)
        for t in range(targets.shape[0]):
            theirs = ca.Occlusion(net).attribute(
                x,
                sliding_window_shapes=window,
                strides=stride,
                baselines=baseline,
                target=targets[t],
            )
            _close(ours[t], theirs)


def test_feature_permutation(case):
    kind, net, x, targets = case
    mask = _mask(kind, x)
    players = player_mask(mask, tuple(x.shape))
    # Captum's FeaturePermutation draws one randperm per feature group, in order, from the
    # global RNG; draw the same ones after the same seed.
    n = x.shape[0]
    torch.manual_seed(11)
    sources = []
    for _ in range(players.count):
        perm = torch.randperm(n)
        while (perm == torch.arange(n)).all():
            perm = torch.randperm(n)
        sources.append(perm)
    design = permutation_design(players, n, sources=torch.stack(sources))
    ours = _ours(net, x, design, targets, 0.0)
    for t in range(targets.shape[0]):
        torch.manual_seed(11)
        theirs = ca.FeaturePermutation(net).attribute(x, target=targets[t], feature_mask=mask[None])
        _close(ours[t], theirs)


@pytest.mark.parametrize("antithetic", [False, True])
def test_shapley_value_sampling_same_permutations(case, antithetic):
    kind, net, x, targets = case
    baseline = _baselines(x)[1]
    mask = _mask(kind, x)
    design = shapley_design(
        player_mask(mask, tuple(x.shape)), samples=4, seed=5, antithetic=antithetic
    )
    ours = _ours(net, x, design, targets, baseline)
    orders = design.orders.tolist()
    for t in range(targets.shape[0]):
        sampler = ca.ShapleyValueSampling(net)
        sampler.permutation_generator = lambda _p, _s: iter(orders)
        # Captum's sampler evaluates the baseline as given, so it needs the batch dim.
        theirs = sampler.attribute(
            x,
            baselines=baseline.expand_as(x),
            target=targets[t],
            feature_mask=mask[None],
            n_samples=len(orders),
        )
        _close(ours[t], theirs)


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity(case, normalize):
    _, net, x, targets = case
    samples = 5
    gen = torch.Generator().manual_seed(4)
    noise = 0.1 * torch.randn(samples, *x.shape, generator=gen, dtype=x.dtype)
    attrs = torch.randn(targets.shape[0], *x.shape, generator=gen, dtype=x.dtype)
    ours = infidelity(net, x, attrs, targets, noise, normalize=normalize)
    # Captum repeats each input `samples` times in a row (repeat_interleave).
    interleaved = noise.transpose(0, 1).reshape(-1, *x.shape[1:])

    def perturb(inputs):
        return interleaved, inputs - interleaved

    for t in range(targets.shape[0]):
        theirs = cm.infidelity(
            net,
            perturb,
            x,
            attrs[t],
            target=targets[t],
            n_perturb_samples=samples,
            normalize=normalize,
        )
        _close(ours[t], theirs)


def test_sensitivity_max(case):
    _, net, x, targets = case
    samples = 4
    delta = uniform_noise(x, samples=samples, radius=0.05, seed=2)

    def explain(inputs, target):
        inputs = inputs.detach().requires_grad_(True)
        with torch.enable_grad():  # Captum calls this under no_grad
            out = net(inputs).gather(1, target[:, None]).sum()
            return torch.autograd.grad(out, inputs)[0] * inputs.detach()

    attrs = torch.stack([explain(x, targets[t]) for t in range(targets.shape[0])])
    re = torch.stack(
        [
            torch.stack([explain(x + delta[s], targets[t]) for t in range(targets.shape[0])])
            for s in range(samples)
        ]
    )
    ours = sensitivity_max(attrs, re)
    interleaved = delta.transpose(0, 1).reshape(-1, *x.shape[1:])
    for t in range(targets.shape[0]):
        theirs = cm.sensitivity_max(
            # Captum hands the unperturbed inputs over as a 1-tuple and expects tuples back.
            lambda inputs, target: (
                explain(inputs[0] if isinstance(inputs, tuple) else inputs, target),
            ),
            x,
            perturb_func=lambda inputs: inputs + interleaved,
            n_perturb_samples=samples,
            target=targets[t],
        )
        _close(ours[t], theirs)
