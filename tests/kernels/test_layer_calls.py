"""A layer's tensor by call, element or input: keys, capture and replacement per call, and the
errors of a reused or tuple-output layer selected without saying which tensor."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from algebra.ir.layer_keys import layer_key
from algebra.kernels.capture import captured, replaced
from algebra.kernels.layer_calls import LayerSite


class Reuse(nn.Module):
    """A ReLU called twice, a linear layer whose input is the first ReLU's output."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)  # both ReLUs pass about half their units
        self.fc1, self.fc2, self.out = nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.out(self.relu(self.fc2(self.relu(self.fc1(x)))))


@pytest.mark.parametrize(
    ("call", "output", "flag"),
    list(itertools.product([None, 0, 3, "all"], [None, 1, "h"], [False, True])),
)
def test_the_plan_reads_back_the_key_the_nodes_write(call, output, flag):
    key = layer_key("enc.rnn", call, output, flag)
    site = LayerSite.parse(key)
    assert (site.name, site.call, site.output, site.input) == ("enc.rnn", call, output, flag)
    assert site.key == key


def test_a_module_named_like_a_key_is_that_module():
    assert LayerSite.parse("a[input]", {"a[input]": None}).plain


def test_each_call_is_captured_on_its_own():
    net = Reuse().eval()
    x = torch.randn(5, 3)
    first = torch.relu(net.fc1(x))
    second = torch.relu(net.fc2(first))
    with torch.no_grad(), captured(net, ("relu[call=0]", "relu[call=1]", "relu[call=all]")) as acts:
        net(x)
    torch.testing.assert_close(acts["relu[call=0]"], first)
    torch.testing.assert_close(acts["relu[call=1]"], second)
    torch.testing.assert_close(acts["relu[call=all]"], torch.stack([first, second], 1))


def test_calls_are_counted_afresh_in_each_forward():
    net = Reuse().eval()
    x = torch.randn(2, 3)
    with torch.no_grad(), captured(net, ("relu[call=1]",)) as acts:
        net(x)
        net(x + 1)
    expected = torch.relu(net.fc2(torch.relu(net.fc1(x + 1))))
    torch.testing.assert_close(acts["relu[call=1]"], expected)


def test_gradients_reach_the_chosen_call_only():
    net = Reuse().eval()
    x = torch.randn(2, 3)
    with captured(net, ("relu[call=0]", "relu[call=1]")) as acts:
        out = net(x)
    g0, g1 = torch.autograd.grad(out[:, 0].sum(), [acts["relu[call=0]"], acts["relu[call=1]"]])
    torch.testing.assert_close(g1, net.out.weight[0].expand(2, 4))
    assert not torch.equal(g0, g1)


def test_replacing_one_call_leaves_the_other():
    net = Reuse().eval()
    x = torch.randn(2, 3)
    value = torch.full((2, 4), 0.5)
    with torch.no_grad(), replaced(net, "relu[call=0]", value):
        out = net(x)
    torch.testing.assert_close(out, net.out(torch.relu(net.fc2(value))))
    with torch.no_grad(), replaced(net, "relu[call=1]", value):
        out = net(x)
    torch.testing.assert_close(out, net.out(value))


def test_a_layer_input_is_captured_and_replaced():
    net = Reuse().eval()
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    with captured(net, ("fc2[input]",)) as acts:
        out = net(x)
    torch.testing.assert_close(acts["fc2[input]"], torch.relu(net.fc1(x)))
    (g,) = torch.autograd.grad(out.sum(), acts["fc2[input]"])
    h = torch.relu(net.fc1(x)).detach().requires_grad_(True)
    (expected,) = torch.autograd.grad(net.out(torch.relu(net.fc2(h))).sum(), h)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(g, expected)
    value = torch.ones(8, 4)
    with torch.no_grad(), replaced(net, "fc2[input]", value):
        out = net(x)
    torch.testing.assert_close(out, net.out(torch.relu(net.fc2(value))))


class Rnn(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm, self.fc = nn.LSTM(3, 4, batch_first=True), nn.Linear(4, 2)

    def forward(self, x):
        out, (h, _) = self.lstm(x)
        return self.fc(out[:, -1] + h[0])


def test_an_element_of_a_tuple_output():
    net = Rnn().eval()
    x = torch.randn(2, 5, 3)
    with captured(net, ("lstm[output=0]",)) as acts:
        out = net(x)
    assert acts["lstm[output=0]"].shape == (2, 5, 4)
    (g,) = torch.autograd.grad(out.sum(), acts["lstm[output=0]"])
    assert g[:, :-1].abs().sum() == 0 and g[:, -1].abs().sum() > 0  # only the last step is read
    value = torch.zeros(2, 5, 4)
    with torch.no_grad(), replaced(net, "lstm[output=0]", value):
        changed = net(x)
    _, (h, _) = net.lstm(x)
    torch.testing.assert_close(changed, net.fc(h[0]))


@pytest.mark.parametrize(
    ("net", "x", "names", "message"),
    [
        (Reuse(), torch.ones(1, 3), ("relu",), r"called more than once .* call=k"),
        (Rnn(), torch.ones(1, 2, 3), ("lstm",), r"returns a tuple of 2 elements, not a tensor"),
        (Rnn(), torch.ones(1, 2, 3), ("lstm[output=2]",), r"index 2 is outside them"),
        (Rnn(), torch.ones(1, 2, 3), ("lstm[output=1]",), r"element 1 .* is a tuple"),
        (Reuse(), torch.ones(1, 3), ("relu[call=2]",), r"called 2 times .* call=2 is beyond"),
    ],
)
def test_clear_errors(net, x, names, message):
    with pytest.raises(ValueError, match=message), torch.no_grad(), captured(net, names):
        net(x)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
