"""``ia.attacks``: FGSM and PGD against a hand-written reference and Captum, the model left
unchanged, batching, seeds, and bad input."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from captum.robust import FGSM, PGD
from torch import nn

import algebra as ia


def _net(dtype: torch.dtype = torch.float64) -> nn.Sequential:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(3, 4, 3, padding=1),
                act=nn.Tanh(),
                flat=nn.Flatten(),
                fc=nn.Linear(4 * 6 * 6, 5),
            )
        )
        .to(dtype)
        .eval()
    )


def _data(dtype: torch.dtype = torch.float64, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 6, 6, generator=g).to(dtype), torch.randint(0, 5, (n,), generator=g)


def _reference(net, x, y, eps, steps, size, targeted=False, start=None):
    """PGD written out one sample at a time, as in Madry et al."""
    out = []
    for i in range(len(x)):
        clean = x[i : i + 1]
        adv = clean.clone() if start is None else start[i : i + 1].clone()
        for _ in range(steps):
            adv.requires_grad_(True)
            loss = nn.functional.cross_entropy(net(adv), y[i : i + 1])
            (grad,) = torch.autograd.grad(loss, adv)
            direction = -grad.sign() if targeted else grad.sign()
            adv = (adv.detach() + size * direction).clamp(clean - eps, clean + eps).clamp(0, 1)
        out.append(adv.detach())
    return torch.cat(out)


def _ce(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, target, reduction="none")


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_matches_the_reference(targeted):
    net, (x, y) = _net(), _data()
    kwargs = {"target": y} if targeted else {"labels": y}
    ours = ia.attacks.pgd(net, x, eps=0.1, steps=7, step_size=0.03, random_start=False, **kwargs)
    expected = _reference(net, x, y, 0.1, 7, 0.03, targeted=targeted)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-12)


def test_pgd_random_start_is_the_seeded_uniform_point():
    net, (x, y) = _net(), _data()
    ours = ia.attacks.pgd(net, x, y, eps=0.1, steps=3, step_size=0.04, seed=5)
    g = torch.Generator().manual_seed(5)
    start = (x + (2 * torch.rand(x.shape, generator=g, dtype=x.dtype) - 1) * 0.1).clamp(0, 1)
    torch.testing.assert_close(ours, _reference(net, x, y, 0.1, 3, 0.04, start=start))
    again = ia.attacks.pgd(net, x, y, eps=0.1, steps=3, step_size=0.04, seed=5)
    assert torch.equal(ours, again)
    other = ia.attacks.pgd(net, x, y, eps=0.1, steps=3, step_size=0.04, seed=6)
    assert not torch.equal(ours, other)
    torch.manual_seed(3)  # without a seed: the global generator, so it reproduces when reset
    first = ia.attacks.pgd(net, x, y, eps=0.1, steps=1)
    torch.manual_seed(3)
    assert torch.equal(first, ia.attacks.pgd(net, x, y, eps=0.1, steps=1))


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_matches_captum(targeted, captum_parity):
    net, (x, y) = _net(), _data()
    kwargs = {"target": y} if targeted else {"labels": y}
    ours = ia.attacks.fgsm(net, x, eps=0.07, **kwargs)
    theirs = FGSM(net, loss_func=_ce, lower_bound=0.0, upper_bound=1.0).perturb(
        x.clone(), 0.07, y, targeted=targeted
    )
    captum_parity(ours.float(), theirs.float())
    assert (ours != x).float().mean() > 0.9  # the step moved almost every feature


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_without_random_start_matches_captum(targeted, captum_parity):
    net, (x, y) = _net(), _data()
    kwargs = {"target": y} if targeted else {"labels": y}
    ours = ia.attacks.pgd(net, x, eps=0.1, steps=5, step_size=0.03, random_start=False, **kwargs)
    theirs = PGD(net, loss_func=_ce, lower_bound=0.0, upper_bound=1.0).perturb(
        x.clone(), 0.1, 0.03, 5, y, targeted=targeted
    )
    captum_parity(ours.float(), theirs.float())


def test_stays_in_the_ball_and_the_bounds_and_fools_the_model():
    net, (x, _) = _net(torch.float32), _data(torch.float32, n=32)
    with torch.no_grad():
        pred = net(x).argmax(1)
    adv = ia.attacks.pgd(net, x, eps=0.2, steps=10, seed=0)  # attacks the prediction
    assert float((adv - x).abs().max()) <= 0.2 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        flipped = (net(adv).argmax(1) != pred).float().mean()
    assert flipped > 0.5
    free = ia.attacks.fgsm(net, x, pred, eps=2.0, bounds=None)  # no clamp: every step is eps
    assert torch.allclose((free - x).abs().amax(), torch.tensor(2.0))
    goal = ia.attacks.pgd(net, x, target=3, eps=0.5, steps=30, seed=0)
    with torch.no_grad():
        assert (net(goal).argmax(1) == 3).float().mean() > 0.9


def test_batches_do_not_change_the_result():
    net, (x, y) = _net(), _data(n=7)
    whole = ia.attacks.pgd(net, x, y, eps=0.1, steps=4, seed=0)
    for size in (1, 3):
        assert torch.equal(
            whole, ia.attacks.pgd(net, x, y, eps=0.1, steps=4, seed=0, batch_size=size)
        )


def test_the_model_comes_back_unchanged():
    net, (x, y) = _net(), _data()
    net.train()
    net.fc.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.warns(UserWarning, match="training mode"):
        ia.attacks.pgd(ia.model(net), x, y, eps=0.1, steps=2, seed=0)
    assert net.training and net.conv.training
    assert net.conv.weight.requires_grad and not net.fc.weight.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert not net._forward_hooks and not net.conv._forward_hooks

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3 * 6 * 6, 5)
            self.calls = {"n": 0}

        def forward(self, t):
            self.calls["n"] += 1
            if self.calls["n"] > 1:
                raise RuntimeError("boom")
            return self.lin(t.flatten(1))

    broken = Broken().double().eval()
    with pytest.raises(RuntimeError, match="boom"):
        ia.attacks.pgd(broken, x, y, eps=0.1, steps=3, seed=0)
    assert not broken.training and broken.lin.weight.requires_grad
    assert broken.lin.weight.grad is None


def test_bad_input_names_the_argument():
    net, (x, y) = _net(), _data()
    m = ia.model(net, classes=["a", "b", "c", "d", "e"])
    cases = [
        (dict(eps=0), ValueError, "eps: expected a finite number > 0"),
        (dict(eps=float("nan")), ValueError, "eps:"),
        (dict(eps=0.1, steps=0), ValueError, r"steps: expected an integer in 1\.\.100000"),
        (dict(eps=0.1, step_size=-1.0), ValueError, "step_size:"),
        (dict(eps=0.1, bounds=(1, 0)), ValueError, "bounds: expected low < high"),
        (dict(eps=0.1, bounds="ab"), TypeError, "bounds:"),
        (dict(eps=0.1, target="zebra"), ValueError, "target: no class named 'zebra'"),
        (dict(eps=0.1, target=7), ValueError, "target"),
        (dict(eps=0.1, target=[0, 1]), ValueError, "target: expected 6"),
        (dict(eps=0.1, seed=1.5), TypeError, "seed:"),
        (dict(eps=0.1, random_start=1), TypeError, "random_start:"),
        (dict(eps=0.1, batch_size=0), ValueError, "batch_size:"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            ia.attacks.pgd(m, x, **kwargs)
    with pytest.raises(ValueError, match="labels: a targeted attack"):
        ia.attacks.fgsm(m, x, y, eps=0.1, target=1)
    with pytest.raises(ValueError, match=r"inputs: values lie in \[.*\], outside bounds"):
        ia.attacks.fgsm(m, x * 3, y, eps=0.1)
    with pytest.raises(TypeError, match=r"inputs: dtype torch\.float32"):
        ia.attacks.fgsm(m, x.float(), y, eps=0.1)
    with pytest.raises(TypeError, match=r"model: expected an ia\.Model"):
        ia.attacks.fgsm("net", x, y, eps=0.1)
    with pytest.raises(ValueError, match="labels: label 9 is out of range"):
        ia.attacks.fgsm(m, x, [9] * 6, eps=0.1)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        ia.attacks.fgsm(m, x, y, eps=0.1)
