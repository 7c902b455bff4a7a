"""Mitigation: only a copy of the decision layer trains; selection, control, report, refusals."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from algebra.kernels.accuracy import accuracy
from algebra.kernels.headfit import fit_head, retaining_ratio, target_ratio
from algebra.kernels.importance import importance_from_mean
from algebra.kernels.mitigate import mitigate, with_head


def bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 6, 3, padding=1),
            bn=nn.BatchNorm2d(6),
            relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(6, 3),
        )
    )


def data(n: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 6, 6, generator=g)
    return x, torch.randint(0, 3, (n,), generator=g)


def snapshot(net: nn.Module):
    return (
        {k: v.clone() for k, v in net.state_dict().items()},
        {n: m.training for n, m in net.named_modules()},
        {n: p.requires_grad for n, p in net.named_parameters()},
    )


def test_the_users_module_and_backbone_are_untouched():
    net = bn_net()
    with torch.no_grad():  # give the batch norm non-trivial statistics first
        net.train()(torch.rand(16, 3, 6, 6) * 3)
    net.relu.eval()  # a mixed set of modes must come back as it was; bn stays in training
    before = snapshot(net)
    x, y = data()
    with pytest.warns(UserWarning, match="training mode"):
        res = mitigate(net, [1, 4], 0, (x, y), val_data=data(48, 1), epochs=3, control=True)
    state, modes, flags = snapshot(net)
    for k, v in before[0].items():
        assert torch.equal(state[k], v), k  # weights and running statistics
    assert modes == before[1] and flags == before[2]
    assert all(p.grad is None for p in net.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    # The copy: its own head, the backbone's tensors shared, eval mode throughout.
    edited = res.module
    assert edited.fc is res.head and edited.fc is not net.fc
    assert edited.conv.weight is net.conv.weight and edited.bn.running_mean is net.bn.running_mean
    assert not any(m.training for m in edited.modules())
    assert net.training  # the copy's modes are its own
    assert not torch.equal(res.head.weight, net.fc.weight)
    with torch.no_grad():
        z = net.flat(net.pool(net.relu(net.bn.eval()(net.conv(x)))))
    net.bn.eval()
    torch.testing.assert_close(edited(x), nn.functional.linear(z, res.fit.weight, res.fit.bias))


def test_control_is_the_same_training_without_the_ratio_term():
    net = bn_net().eval()
    x, y = data()
    res = mitigate(net, [0], 1, (x, y), epochs=4, lam=0.0, control=True, patience=None)
    torch.testing.assert_close(res.fit.weight, res.control_fit.weight, rtol=0, atol=0)
    res = mitigate(net, [0], 1, (x, y), epochs=4, lam=0.5, control=True, patience=None)
    assert not torch.equal(res.fit.weight, res.control_fit.weight)
    assert res.control_module.fc is res.control_head
    assert res.report.control is not None


def test_the_checkpoint_is_the_best_epoch_on_validation():
    g = torch.Generator().manual_seed(3)
    z, y = torch.randn(120, 5, generator=g), torch.randint(0, 3, (120,), generator=g)
    zv, yv = torch.randn(60, 5, generator=g), torch.randint(0, 3, (60,), generator=g)
    w, b = torch.zeros(3, 5), torch.zeros(3)
    common = dict(neurons=torch.tensor([0]), cls=0, ratio=1.0, epochs=8, lr=0.05, patience=None)
    for select in ("worst_class", "overall"):
        fit = fit_head(w, b, z, y, zv, yv, select=select, **common)
        keys = [
            (h.worst_class, h.overall) if select == "worst_class" else (h.overall,)
            for h in fit.history
        ]
        assert fit.epoch == 1 + max(range(len(keys)), key=lambda i: (keys[i], -i))
        score = accuracy(fit.weight, fit.bias, zv, yv)
        assert score.overall == fit.history[fit.epoch - 1].overall
    short = fit_head(w, b, z, y, zv, yv, **{**common, "patience": 1, "lr": 1e-6})
    assert short.stopped_early and len(short.history) < 8


def test_ratio_and_target_follow_the_reference_formulas():
    w = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 1.0]])
    b = torch.tensor([0.1, -0.2])
    z = torch.tensor([[1.0, 1.0, 1.0], [0.0, 2.0, -1.0]])
    mask = torch.tensor([1.0, 0.0, 1.0])
    p = torch.softmax(z @ w.T + b, 1)[:, 0]
    pm = torch.softmax((z * mask) @ w.T + b, 1)[:, 0]
    torch.testing.assert_close(retaining_ratio(w, b, z, mask, 0), p / (pm + 1e-9))
    imp = importance_from_mean(z.mean(0), w, b, 0)
    o = target_ratio(imp, torch.tensor([0, 1]))
    assert o == pytest.approx((float(imp[:2].min()) - 1) / 3 + 1)


def test_report_overall_per_class_and_per_group():
    net = bn_net().eval()
    x, y = data()
    groups = torch.arange(96) % 4
    res = mitigate(net, [2], 0, (x, y), groups=groups, epochs=2)
    with torch.no_grad():
        right = net(x).argmax(1) == y
    before = res.report.before
    assert before.overall == pytest.approx(float(right.float().mean()))
    for c in range(3):
        assert float(before.per_class[c]) == pytest.approx(float(right[y == c].float().mean()))
    for g in range(4):
        assert before.per_group[g] == pytest.approx(float(right[groups == g].float().mean()))
    assert before.worst_group == min(before.per_group.values())
    assert res.report.control is None and res.control_fit is None


def test_a_target_ratio_can_be_given():
    net = bn_net().eval()
    res = mitigate(net, [2], 0, data(), ratio=1.0, epochs=1)
    assert res.ratio == 1.0


def test_with_head_replaces_only_the_named_submodule():
    net = bn_net().eval()
    new = nn.Linear(6, 5)
    copy_ = with_head(net, "fc", new)
    assert copy_.fc is new and net.fc.out_features == 3
    assert copy_(torch.rand(2, 3, 6, 6)).shape == (2, 5)
    with pytest.raises(ValueError, match="name: the model has no submodule 'head'"):
        with_head(net, "head", new)


def test_bad_inputs_name_the_argument():
    net = bn_net().eval()
    x, y = data()
    with pytest.raises(ValueError, match="neurons: 6 is out of range for the decision layer 'fc'"):
        mitigate(net, [6], 0, (x, y))
    with pytest.raises(ValueError, match="cls: class 3 is out of range"):
        mitigate(net, [0], 3, (x, y))
    with pytest.raises(ValueError, match="data: labels are needed"):
        mitigate(net, [0], 0, x)
    with pytest.raises(ValueError, match="val_data: labels are needed"):
        mitigate(net, [0], 0, (x, y), val_data=x)
    with pytest.raises(
        ValueError, match=r"groups: expected one group id per evaluation sample \(96\)"
    ):
        mitigate(net, [0], 0, (x, y), groups=torch.zeros(5))
    with pytest.raises(ValueError, match=r"data: labels must lie in 0\.\.2"):
        mitigate(net, [0], 0, (x, y + 1))
    with pytest.raises(ValueError, match="select: expected one of"):
        mitigate(net, [0], 0, (x, y), select="best")
    with pytest.raises(ValueError, match="schedule: expected one of"):
        mitigate(net, [0], 0, (x, y), schedule="step")
    with pytest.raises(ValueError, match="epochs: expected a positive integer"):
        mitigate(net, [0], 0, (x, y), epochs=0)
    with pytest.raises(ValueError, match="lam: expected a non-negative number"):
        mitigate(net, [0], 0, (x, y), lam=-1)
    with pytest.raises(ValueError, match=r"layer: .*'bn'.*head="):
        mitigate(net, [0], 0, (x, y), layer="bn")
