"""Packed rows (kernels/inputs.py, kernels/packed.py): every row finds its sample's carried
arguments whichever pass built it, token ids round-trip exactly, references drawn from a
set are pinned to their sample, noise never moves token ids or the index, the packed module
is transparent (the user's layers, parameters and state), and a baseline given at a layer
(kernels/layer_baselines.py) is the path's start there."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from algebra.kernels.checks import state_token
from algebra.kernels.execute import execute
from algebra.kernels.guard import guarded
from algebra.kernels.inputs import packing
from algebra.kernels.layer_baselines import LayerBaseline
from algebra.kernels.packed import PackedModule, masked_noise, packed_noise, packing_of, pin
from algebra.kernels.plan import Group, Job, Output, PathSpec, Points, Request, TargetSpec


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3, 2)

    def forward(self, x, ids, scale):
        return self.fc(x) * scale[:, None] + ids.sum(1, keepdim=True)


def make() -> tuple[PackedModule, dict[str, torch.Tensor]]:
    values = {
        "x": torch.randn(4, 3, generator=torch.Generator().manual_seed(1)),
        "ids": torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]]),
        "scale": torch.tensor([1.0, 2.0, 3.0, 4.0]),
    }
    p = packing(values, attributed=("x", "ids"), positional=("x", "ids", "scale"))
    return PackedModule(Scaled().eval(), p), values


def test_rows_find_their_samples_arguments_in_any_order():
    packed, values = make()
    rows = packed.packing.pack(values, torch.float32)
    assert rows.shape == (4, 3 + 2 + 1) and rows[:, -1].tolist() == [0, 1, 2, 3]
    order = torch.tensor([3, 3, 0, 2, 1])
    with torch.no_grad():
        direct = packed.inner(values["x"], values["ids"], values["scale"])
        assert torch.equal(packed(rows[order]), direct[order])


def test_token_ids_round_trip_exactly_and_carry_no_gradient():
    packed, values = make()
    rows = packed.packing.pack(values, torch.float64).requires_grad_(True)
    args, _ = packed.packing.unpack(rows)
    assert args[1].dtype == torch.int64 and torch.equal(args[1], values["ids"])
    assert not args[1].requires_grad and args[0].requires_grad
    with pytest.raises(ValueError, match=r"inputs: expected packed rows \[R, 6\]; got \[4, 5\]"):
        packed.packing.unpack(rows[:, :5])


def test_references_carry_their_samples_index_or_are_pinned():
    packed, values = make()
    p = packed.packing
    per_sample = p.rows({"x": 0.5, "ids": torch.tensor([0, 9])}, torch.float32, 4)
    assert per_sample[:, -1].tolist() == [0, 1, 2, 3] and per_sample[2, 3:5].tolist() == [0, 9]
    drawn = p.rows({"x": torch.zeros(2, 3), "ids": torch.zeros(2, 2)}, torch.float32, 2, False)
    assert drawn[:, -1].tolist() == [0, 0]
    ends = p.pack(values, torch.float32)
    pinned = pin(drawn[torch.tensor([1, 0, 1, 1])], ends, packed)
    assert pinned[:, -1].tolist() == [0, 1, 2, 3] and torch.equal(
        pinned[:, :-1], drawn[[1, 0, 1, 1], :-1]
    )
    assert pin(drawn, ends[:2], nn.Linear(2, 2)) is drawn  # a plain model: nothing to pin


def test_noise_moves_the_floating_inputs_only():
    packed, values = make()
    rows = packed.packing.pack(values, torch.float32)
    moved = masked_noise(torch.ones(5, *rows.shape), packed)
    assert moved[..., :3].eq(1).all() and moved[..., 3:].eq(0).all()
    drawn = packed_noise(packed, rows, 5, 1.0, relative=False, seed=0)
    assert drawn[..., 3:].eq(0).all() and drawn[..., :3].ne(0).all()
    assert torch.equal(drawn, packed_noise(packed, rows, 5, 1.0, relative=False, seed=0))


def test_the_packed_module_is_transparent():
    packed, _values = make()
    inner = packed.inner
    assert [n for n, _ in packed.named_modules()] == ["", "fc"]
    assert list(packed.parameters()) == list(inner.parameters())
    assert state_token(packed) == state_token(inner)
    assert packing_of(packed) is packed.packing and packing_of(inner) is None
    inner.train()
    with pytest.warns(UserWarning, match="training mode"), guarded(packed):
        assert not inner.training and not inner.fc.weight.requires_grad
    assert inner.training and inner.fc.weight.requires_grad
    inner.eval()


def test_a_baseline_given_at_a_layer_starts_the_path_there():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double().eval()
    x = torch.randn(5, 3, dtype=torch.float64)
    start = torch.full((4,), 0.25, dtype=torch.float64)
    path = PathSpec(16, "gausslegendre", LayerBaseline(start, "0"), "b")
    groups = (
        Group(Points("inputs"), capture=("0",)),
        Group(Points("baseline", path), capture=("0",)),
        Group(Points("path", path, "0"), (Request("r", TargetSpec("index", 1), "0"),)),
    )
    out = execute(Job(net, x, groups=groups, results=(Output("ig", "r", "integrated", "0"),)))
    ig = out.tasks["ig"]
    with torch.no_grad():
        gap = net(x)[:, 1] - net[2](net[1](start)).expand(5, 2)[:, 1]
    torch.testing.assert_close(ig.values[0].sum(1), gap, atol=1e-6, rtol=0)
    torch.testing.assert_close(ig.delta[0], ig.values[0].sum(1) - gap, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match=r"baseline: shape \[3\] does not broadcast to layer '0'"):
        bad = PathSpec(4, "gausslegendre", LayerBaseline(torch.zeros(3).double(), "0"), "c")
        groups = (groups[0], Group(Points("baseline", bad), capture=("0",)))
        execute(Job(net, x, groups=groups))
