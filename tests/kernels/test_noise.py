"""Noise kernels: draws, reproducibility, validation, and NoiseTunnel parity given the same noise.

Parity comparisons use float64 models, ``rtol=1e-5`` and an ``atol`` of ``1e-5`` times the
largest magnitude of Captum's result. Captum draws its noise inside NoiseTunnel with
``torch.normal``; the tests hand it our draws by replacing ``_add_noise_to_input`` for the
duration of one call (Captum's rows are sample-major, ``n * S + s``; ours noise-major).
"""

from __future__ import annotations

from collections import OrderedDict

import captum.attr as ca
import pytest
import torch
from captum.attr._core.noise_tunnel import NoiseTunnel
from torch import nn

from algebra.kernels.gradients import target_gradients
from algebra.kernels.noise import draw_noise, noisy_copies, smooth, value_range
from algebra.kernels.paths import alphas_and_weights, integrate, path_points
from algebra.kernels.plan import TargetSpec

SAMPLES = 6


def make_cnn() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 4, 3, padding=1),
                relu1=nn.ReLU(),
                conv2=nn.Conv2d(4, 6, 3, padding=1),
                relu2=nn.ReLU(),
                pool=nn.AdaptiveAvgPool2d(2),
                flat=nn.Flatten(),
                fc=nn.Linear(24, 5),
            )
        )
        .double()
        .eval()
    )


def make_mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).double().eval()


CASES = {"cnn": (make_cnn, (3, 3, 8, 8)), "mlp": (make_mlp, (4, 6))}


def inputs(shape) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def assert_parity(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.detach()
    assert float(theirs.abs().max()) > 0, "degenerate reference: all zeros"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))


def feed_noise(monkeypatch, noise: torch.Tensor) -> None:
    """Make Captum's NoiseTunnel add ``noise`` ``[S, N, ...]`` instead of drawing its own."""

    def add(input, stdev, samples):
        assert samples == noise.shape[0]
        sample_major = noise.transpose(0, 1).reshape(-1, *input.shape[1:])
        return input.repeat_interleave(samples, dim=0) + sample_major

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add))


def gradients(net, points: torch.Tensor, target: int) -> torch.Tensor:
    """Gradient of one class at every row of ``points`` ``[R, ...]``: ``[R, ...]``."""
    points = points.detach().requires_grad_(True)
    out = net(points)
    rows = torch.full((1, len(points)), target)
    (grads,) = target_gradients(out, (points,), rows, TargetSpec("index", target), False)
    return grads[0]


# Draws ----------------------------------------------------------------------------------


def test_seeded_noise_is_reproducible_and_seed_dependent():
    x = inputs((3, 4))
    a, b = draw_noise(x, 5, 0.2, seed=7), draw_noise(x, 5, 0.2, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, draw_noise(x, 5, 0.2, seed=8))
    # without a seed, draws follow torch's global RNG
    torch.manual_seed(3)
    c = draw_noise(x, 5, 0.2)
    torch.manual_seed(3)
    assert torch.equal(c, draw_noise(x, 5, 0.2))


def test_relative_noise_scales_with_each_samples_range():
    x = torch.stack([torch.linspace(0, 1, 1000), torch.linspace(-5, 5, 1000)]).double()
    noise = draw_noise(x, 200, 0.1, relative=True, seed=0)
    spread = noise.std(dim=(0, 2))
    torch.testing.assert_close(spread, torch.tensor([0.1, 1.0]).double(), rtol=0.02, atol=0)
    assert value_range(x).flatten().tolist() == [1.0, 10.0]
    absolute = draw_noise(x, 200, 0.1, relative=False, seed=0)
    torch.testing.assert_close(
        absolute.std(dim=(0, 2)), torch.full((2,), 0.1).double(), rtol=0.02, atol=0
    )
    # the same unit draws, scaled differently
    torch.testing.assert_close(noise[:, 1], absolute[:, 1] * 10)


def test_noisy_copies_are_noise_major_and_keep_dtype():
    x = inputs((3, 4)).float()
    copies = noisy_copies(x, samples=5, stdev=0.3, seed=1)
    assert copies.shape == (5, 3, 4) and copies.dtype == torch.float32
    torch.testing.assert_close(copies - x, draw_noise(x, 5, 0.3, seed=1))
    assert noisy_copies(x, samples=2, stdev=0.0).eq(x).all()


def test_explicit_noise_is_added_as_given():
    x = inputs((3, 4))
    noise = torch.randn(7, 3, 4, dtype=torch.float64)
    assert torch.equal(noisy_copies(x, noise=noise), x + noise)
    shared = torch.randn(2, 4, dtype=torch.float64)
    assert torch.equal(noisy_copies(x, noise=shared), x + shared[:, None])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"samples": 0}, "samples: expected an integer >= 1"),
        ({"samples": 2.5}, "samples"),
        ({"samples": True}, "samples"),
        ({"stdev": -0.1}, "stdev: expected a finite number >= 0"),
        ({"stdev": float("nan")}, "stdev"),
        ({"stdev": "0.1"}, "stdev"),
        ({"seed": 1.5}, "seed"),
        ({"noise": torch.zeros(3, 5)}, "noise: expected a tensor of shape"),
        ({"noise": torch.zeros(0, 3, 4)}, "noise"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        noisy_copies(torch.zeros(3, 4), **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_seeded_noise_is_the_same_on_cuda():
    x = inputs((3, 4))
    assert torch.equal(draw_noise(x.cuda(), 4, 0.2, seed=5).cpu(), draw_noise(x, 4, 0.2, seed=5))


# Smoothing -------------------------------------------------------------------------------


def test_smooth_kinds():
    a = torch.randn(5, 3, 2, dtype=torch.float64)
    torch.testing.assert_close(smooth(a), a.mean(0))
    torch.testing.assert_close(smooth(a, "smoothgrad_sq"), (a**2).mean(0))
    torch.testing.assert_close(smooth(a, "vargrad"), a.var(0, unbiased=False))
    with pytest.raises(ValueError, match="kind"):
        smooth(a, "median")


# NoiseTunnel parity ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_saliency(monkeypatch, case, kind):
    factory, shape = CASES[case]
    net, x = factory(), inputs(shape)
    copies = noisy_copies(x, SAMPLES, stdev=0.2, seed=0)  # [S, N, ...]
    grads = gradients(net, copies.flatten(0, 1), target=1).reshape(copies.shape)
    ours = smooth(grads.abs(), kind)
    feed_noise(monkeypatch, copies - x)
    theirs = ca.NoiseTunnel(ca.Saliency(net)).attribute(
        x.clone(), nt_type=kind, nt_samples=SAMPLES, stdevs=0.2, target=1
    )
    assert_parity(ours, theirs)


@pytest.mark.parametrize("case", CASES)
def test_noise_tunnel_integrated_gradients(monkeypatch, case):
    factory, shape = CASES[case]
    net, x = factory(), inputs(shape)
    baseline = torch.full_like(x, 0.1)
    copies = noisy_copies(x, SAMPLES, stdev=0.3, relative=False, seed=4)
    steps, rule = 8, "gausslegendre"
    alphas, weights = alphas_and_weights(rule, steps)
    ends = copies.flatten(0, 1)  # one path per noisy copy, all in one forward
    starts = baseline.repeat(SAMPLES, *([1] * (x.ndim - 1)))
    points = path_points(starts, ends, alphas)
    grads = gradients(net, points, target=2)[None]
    integrated = integrate(grads, torch.tensor(weights, dtype=x.dtype))[0]
    ours = smooth((integrated * (ends - starts)).reshape(copies.shape))
    feed_noise(monkeypatch, copies - x)
    theirs = ca.NoiseTunnel(ca.IntegratedGradients(net)).attribute(
        x.clone(),
        nt_samples=SAMPLES,
        stdevs=0.3,
        baselines=baseline,
        target=2,
        n_steps=steps,
        method=rule,
    )
    assert_parity(ours, theirs)


def test_captum_sees_our_noise(monkeypatch):
    # The hand-over itself: Captum's noisy inputs are exactly our copies.
    x = inputs((2, 3))
    copies = noisy_copies(x, 3, stdev=0.5, seed=9)
    feed_noise(monkeypatch, copies - x)
    seen = NoiseTunnel._add_noise_to_input(x, 0.5, 3)
    assert torch.equal(seen.reshape(2, 3, 3).transpose(0, 1), copies)
