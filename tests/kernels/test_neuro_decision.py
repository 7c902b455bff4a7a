"""Decision-layer split: the default head, named layers and heads, refusals, hygiene."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from algebra.kernels.decision import (
    check_class,
    check_neurons,
    decision_features,
    find_decision,
    pool,
)


def pooled_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 5, 3, padding=1),
            bn=nn.BatchNorm2d(5),
            relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(5, 4),
        )
    ).eval()


class CallsOutOfOrder(nn.Module):
    """``late`` is registered first but called last: the default head follows the calls."""

    def __init__(self):
        super().__init__()
        self.late = nn.Linear(6, 3)
        self.early = nn.Linear(2, 6)

    def forward(self, x):
        return self.late(torch.relu(self.early(x)))


def test_default_head_is_the_last_linear_called():
    net = CallsOutOfOrder().eval()
    d = find_decision(net, torch.randn(4, 2))
    assert (d.head, d.layer, d.classes, d.neurons) == ("late", None, 3, 6)
    assert d.weight is not net.late.weight and torch.equal(d.weight, net.late.weight)


def test_features_of_the_head_input_reproduce_the_logits():
    net = CallsOutOfOrder().eval()
    x = torch.randn(7, 2)
    d = find_decision(net, x)
    z, labels = decision_features(net, d, x, batch_size=3)
    assert labels is None
    torch.testing.assert_close(d.logits(z), net(x))
    torch.testing.assert_close(z, torch.relu(net.early(x)))


def test_a_named_feature_map_is_mean_pooled():
    net = pooled_cnn()
    x = torch.rand(6, 3, 5, 5)
    d = find_decision(net, x, layer="relu")
    z, _ = decision_features(net, d, (x, torch.zeros(6, dtype=torch.long)))
    expected = net.relu(net.bn(net.conv(x))).mean((2, 3))
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(d.logits(z), net(x))
    assert pool(torch.ones(2, 3)).shape == (2, 3)


def test_a_layer_with_more_than_pooling_before_the_head_is_refused_naming_head():
    net = pooled_cnn()
    with pytest.raises(ValueError, match=r"^layer: .*'bn'.*head=") as err:
        find_decision(net, torch.rand(4, 3, 5, 5), layer="bn")  # a ReLU lies between
    assert "does not reproduce" in str(err.value)


def test_a_layer_whose_pooled_size_does_not_match_the_head_is_refused():
    torch.manual_seed(0)
    net = nn.Sequential(
        OrderedDict(conv=nn.Conv2d(1, 2, 3), flat=nn.Flatten(), fc=nn.Linear(2 * 3 * 3, 3))
    ).eval()
    with pytest.raises(
        ValueError, match=r"layer: 'conv' pools to \(2,\) a sample but .* takes 18 features.*head="
    ):
        find_decision(net, torch.rand(4, 1, 5, 5), layer="conv")


def test_a_named_head_must_be_a_linear_layer_called_once():
    net = pooled_cnn()
    with pytest.raises(
        ValueError, match=r"head: 'conv' is a Conv2d; the decision layer must be an nn.Linear"
    ):
        find_decision(net, torch.rand(2, 3, 5, 5), head="conv")
    with pytest.raises(
        ValueError, match=r"head: the model has no submodule 'fcc'.*Did you mean 'fc'"
    ):
        find_decision(net, torch.rand(2, 3, 5, 5), head="fcc")
    shared = nn.Linear(3, 3)
    twice = nn.Sequential(shared, nn.ReLU(), shared).eval()
    with pytest.raises(ValueError, match="head: '0' is called 2 times"):
        find_decision(twice, torch.rand(2, 3))


def test_a_head_not_the_last_module_can_be_named():
    torch.manual_seed(0)
    net = nn.Sequential(
        OrderedDict(
            body=nn.Linear(3, 4), fc=nn.Linear(4, 2), soft=nn.Softmax(1), aux=nn.Linear(2, 2)
        )
    ).eval()
    assert find_decision(net, torch.rand(2, 3)).head == "aux"
    d = find_decision(net, torch.rand(2, 3), head="fc")
    assert (d.head, d.neurons, d.classes) == ("fc", 4, 2)


def test_no_linear_layer_is_refused_naming_head():
    with pytest.raises(ValueError, match=r"head: the model has no nn.Linear.*head="):
        find_decision(nn.Sequential(nn.Conv2d(1, 2, 1)).eval(), torch.rand(1, 1, 2, 2))


def test_the_module_comes_back_unchanged_even_after_an_error():
    net = pooled_cnn().train()
    net.flat.eval()
    modes = {n: m.training for n, m in net.named_modules()}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    with pytest.warns(UserWarning, match="training mode"):
        d = find_decision(net, torch.rand(4, 3, 5, 5), layer="relu")
    with pytest.warns(UserWarning, match="training mode"):
        decision_features(net, d, torch.rand(9, 3, 5, 5))
    with pytest.warns(UserWarning, match="training mode"), pytest.raises(ValueError):
        find_decision(net, torch.rand(4, 3, 5, 5), layer="bn")
    assert {n: m.training for n, m in net.named_modules()} == modes
    assert {n: p.requires_grad for n, p in net.named_parameters()} == flags
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k  # batch-norm statistics included
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


def test_data_forms_and_their_errors():
    net = CallsOutOfOrder().eval()
    d = find_decision(net, torch.randn(2, 2))
    x, y = torch.randn(10, 2), torch.arange(10) % 3
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    z1, y1 = decision_features(net, d, loader)
    z2, y2 = decision_features(net, d, (x, y))
    torch.testing.assert_close(z1, z2)
    assert torch.equal(y1, y2)
    with pytest.raises(TypeError, match="val_data: a one-shot iterator"):
        decision_features(net, d, iter([(x, y)]), argument="val_data")
    with pytest.raises(ValueError, match="data: inputs have 10 rows but labels have 3"):
        decision_features(net, d, (x, y[:3]))


def test_class_and_neuron_checks_name_the_argument():
    assert check_class(torch.tensor(2), 3) == 2
    with pytest.raises(
        ValueError, match=r"cls: class -1 is out of range; the decision layer has 3 classes"
    ):
        check_class(-1, 3)
    with pytest.raises(TypeError, match="cls: expected a class index"):
        check_class(1.5, 3)
    with pytest.raises(
        ValueError, match=r"neurons: 7 is out of range for the head \(5 neurons: 0..4\)"
    ):
        check_neurons([1, 7], 5, "the head")
    with pytest.raises(ValueError, match="neurons: indices repeat"):
        check_neurons([1, 1], 5, "the head")
    with pytest.raises(ValueError, match="neurons: expected one or more neuron indices"):
        check_neurons([], 5, "the head")
    assert check_neurons(3, 5, "the head").tolist() == [3]
