"""State and input tokens see every change that alters results, and nothing else."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import algebra as ia
from algebra.kernels.checks import check_unchanged, fingerprint, state_token
from algebra.kernels.digest import SMALL_BYTES, content_digest


def _net() -> nn.Sequential:
    torch.manual_seed(3)
    net = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 4, 3, padding=1, stride=1),
            bn=nn.BatchNorm2d(4),
            act=nn.ReLU(),
            flat=nn.Flatten(),
            fc=nn.Linear(4 * 8 * 8, 3),
        )
    ).eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.3, 0.3)
        net.bn.running_var.uniform_(0.5, 1.5)
    return net


class Scaled(nn.Module):
    """A user module whose plain attribute and plain tensor attribute change its output."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _net()
        self.temperature = 1.0
        self.offset = torch.zeros(3)  # neither parameter nor buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) / self.temperature + self.offset


def _images() -> torch.Tensor:
    return torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------- model state


def _swap(net: nn.Module) -> None:
    net.inner.act = nn.Tanh().eval()


def _eps(net: nn.Module) -> None:
    net.inner.bn.eps = 0.5


def _momentum_and_stats(net: nn.Module) -> None:
    net.inner.bn.momentum = 0.9  # no effect in eval mode, but a hyper-parameter all the same


def _stride(net: nn.Module) -> None:
    net.inner.conv.stride = (2, 2)
    net.inner.fc = nn.Linear(4 * 4 * 4, 3).eval()


def _forward_hook(net: nn.Module) -> None:
    net.inner.act.register_forward_hook(lambda m, i, o: o * 2)


def _pre_hook(net: nn.Module) -> None:
    net.register_forward_pre_hook(lambda m, args: (args[0] * 0.5,))


def _global_hook(net: nn.Module) -> None:
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, i, o: o * 2 if isinstance(m, nn.ReLU) else None
    )
    _global_hook.handle = handle  # type: ignore[attr-defined]


def _temperature(net: nn.Module) -> None:
    net.temperature = 2.0


def _tensor_attribute(net: nn.Module) -> None:
    net.offset.add_(0.5)


def _tensor_attribute_data(net: nn.Module) -> None:
    net.offset.data.add_(0.5)


def _numpy_view(net: nn.Module) -> None:
    net.inner.fc.bias.detach().numpy()[0] += 1.0


CHANGES = {
    "swap_submodule": _swap,
    "bn_eps": _eps,
    "bn_momentum": _momentum_and_stats,
    "conv_stride": _stride,
    "forward_hook": _forward_hook,
    "forward_pre_hook": _pre_hook,
    "global_forward_hook": _global_hook,
    "plain_attribute": _temperature,
    "tensor_attribute": _tensor_attribute,
    "tensor_attribute_data": _tensor_attribute_data,
    "parameter_numpy_view": _numpy_view,
}


@pytest.mark.parametrize("change", CHANGES)
def test_model_changes_change_the_state_token(change: str):
    net = Scaled().eval()
    before = state_token(net)
    assert state_token(net) == before  # deterministic
    try:
        CHANGES[change](net)
        assert state_token(net) != before
    finally:
        handle = getattr(_global_hook, "handle", None)
        if handle is not None:
            handle.remove()
            del _global_hook.handle  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "change", ["swap_submodule", "bn_eps", "forward_hook", "global_forward_hook", "plain_attribute"]
)
def test_memo_serves_the_changed_model(change: str):
    net = Scaled().eval()
    q = ia.model(net).on(_images())
    expr = {"ixg": q.input_x_gradient(1), "sal": q.saliency("pred", abs=False)}
    s = ia.Session()
    before = s.compute(expr)
    try:
        CHANGES[change](net)
        after = s.compute(expr)
        expected = ia.compute(expr, session=ia.Session())
    finally:
        handle = getattr(_global_hook, "handle", None)
        if handle is not None:
            handle.remove()
            del _global_hook.handle  # type: ignore[attr-defined]
    for key in expr:
        np.testing.assert_allclose(after[key].values, expected[key].values, rtol=1e-5, atol=1e-7)
        assert not np.allclose(before[key].values, expected[key].values), key  # it matters


def test_what_does_not_change_results_keeps_the_token():
    net = Scaled().eval()
    before = state_token(net)
    net.train().eval()
    for p in net.parameters():
        p.requires_grad_(False).requires_grad_(True)
    _ = net.state_dict(), repr(net), net(_images())
    assert state_token(net) == before


def test_the_librarys_own_hooks_are_not_the_users():
    net = _net()
    before = state_token(net)
    from algebra.kernels.capture import captured

    with captured(net, ("act",)):
        assert state_token(net) == before
        net(_images())


# --------------------------------------------------------------------------- inputs


def _data_write(x: torch.Tensor) -> None:
    x.data.mul_(2)


def _numpy_write(x: torch.Tensor) -> None:
    x.numpy()[0] *= 2


@pytest.mark.parametrize("write", [_data_write, _numpy_write], ids=["data", "numpy"])
def test_inputs_written_behind_the_version_counter_are_refused(write):
    net = _net()
    x = _images()
    expr = ia.model(net).on(x).saliency(0)
    s = ia.Session()
    s.compute(expr)
    token = fingerprint(x)
    write(x)
    with pytest.raises(ValueError, match="modified in place"):
        check_unchanged(x, token, "inputs")
    with pytest.raises(ValueError, match="inputs: the tensor was modified in place"):
        s.compute(expr)  # before: the stale result from the memo
    fresh = ia.model(net).on(x).saliency(0)  # a new query on the new values is computed
    (new,) = s.compute(fresh)
    np.testing.assert_allclose(new.values, ia.compute(fresh, session=ia.Session())[0].values)


@pytest.mark.parametrize("write", [_data_write, _numpy_write], ids=["data", "numpy"])
def test_baselines_written_behind_the_version_counter_are_refused(write):
    net = _net()
    base = torch.full((1, 3, 8, 8), 0.25)
    expr = ia.model(net).on(_images()).integrated_gradients(0, baseline=base, steps=4)
    s = ia.Session()
    s.compute(expr)
    write(base)
    with pytest.raises(ValueError, match="baseline: the tensor was modified in place"):
        s.compute(expr)


# --------------------------------------------------------------------------- digest


def test_digest_sees_single_bit_flips_and_moves_in_every_layout():
    torch.manual_seed(0)
    big = torch.randn(SMALL_BYTES // 4 + 1029)  # above the joined size, not whole rows
    cases = [
        big,
        torch.randn(7, 5),  # small, joined with the others
        torch.randn(5, 7).t(),  # not contiguous
        torch.randn(1001)[1:],  # storage offset not a multiple of 8 bytes
        torch.randint(0, 2, (13,), dtype=torch.bool),
        torch.randn(3, dtype=torch.float64),
        torch.arange(5, dtype=torch.int8),
    ]
    base = content_digest(cases)
    for i, t in enumerate(cases):
        flat = t.view(-1) if t.is_contiguous() else None
        for position in (0, t.numel() // 2, t.numel() - 1):
            changed = [c.clone() for c in cases]
            target = changed[i].reshape(-1)
            if t.dtype == torch.bool:
                target[position] = ~target[position]
            elif t.is_floating_point():
                bits = target[position : position + 1].view(torch.uint8)
                bits[0] ^= 1  # the lowest bit of the mantissa
            else:
                target[position] += 1
            changed[i] = target.reshape(t.shape)
            assert content_digest(changed) != base, (i, position)
        if flat is not None and t.numel() > 2:
            swapped = [c.clone() for c in cases]
            w = swapped[i].view(-1)
            w[[0, 1]] = w[[1, 0]].clone()
            if not torch.equal(w, t.view(-1)):
                assert content_digest(swapped) != base, i
    assert content_digest([c.clone() for c in cases]) == base
    assert content_digest([torch.empty(0), torch.zeros(2, device="meta")]) == 0


def test_the_librarys_own_hooks_with_flags_are_not_the_users():
    # Hooks registered with with_kwargs or always_call keep a flag under their handle's
    # id; a tagged hook's flag goes with it.
    net = _net()
    before = state_token(net)

    def counter(module, args, kwargs):
        return None

    counter._ialgebra_hook = True  # type: ignore[attr-defined]
    handle = net.register_forward_pre_hook(counter, with_kwargs=True)
    post = net.act.register_forward_hook(counter, with_kwargs=True, always_call=True)
    try:
        assert state_token(net) == before
    finally:
        handle.remove()
        post.remove()
    user = net.register_forward_pre_hook(lambda m, a, k: None, with_kwargs=True)
    assert state_token(net) != before
    user.remove()
    assert state_token(net) == before
