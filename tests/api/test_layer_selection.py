"""``q.layer(name, call=..., output=..., input=...)``: one call of a reused module (Captum's
layer methods read the last call: ``call=-1``), every call along a ``call`` dim in the same
passes, an element of an ``nn.LSTM``'s tuple output, and a layer's input (Captum's
``attribute_to_layer_input``), within 1e-5 of Captum in float64."""

from __future__ import annotations

import copy

import captum.attr as ca
import numpy as np
import pytest
import torch
from torch import nn

import algebra as ia


class Shared(nn.Module):
    """One linear layer applied twice (weight sharing) and one ReLU reused after each."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.inp, self.fc, self.out = nn.Linear(6, 5), nn.Linear(5, 5), nn.Linear(5, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.relu(self.fc(self.inp(x)))
        return self.out(self.relu(self.fc(h)))


class Unshared(nn.Module):
    """The same function with a module per use, so Captum can name each call."""

    def __init__(self, shared: Shared):
        super().__init__()
        self.inp, self.out = shared.inp, shared.out
        self.fc_a, self.fc_b = shared.fc, copy.deepcopy(shared.fc)
        self.relu_a, self.relu_b = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        h = self.relu_a(self.fc_a(self.inp(x)))
        return self.out(self.relu_b(self.fc_b(h)))


@pytest.fixture
def shared():
    return Shared().double().eval()


@pytest.fixture
def x64():
    return torch.randn(4, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.parametrize(
    ("layer", "call", "twin"),
    [("fc", 0, "fc_a"), ("fc", 1, "fc_b"), ("relu", 0, "relu_a"), ("relu", -1, "relu_b")],
)
def test_one_call_equals_captum_on_its_own_module(shared, x64, parity64, layer, call, twin):
    unshared = Unshared(shared).eval()
    module = getattr(unshared, twin)
    q = ia.model(shared).on(x64).layer(layer, call=call)
    gxa, ig, act = ia.compute(
        q.input_x_gradient(1), q.integrated_gradients(2, steps=16), q.activation()
    )
    parity64(gxa, ca.LayerGradientXActivation(unshared, module).attribute(x64.clone(), target=1))
    theirs = ca.LayerIntegratedGradients(unshared, module).attribute(
        x64.clone(), target=2, n_steps=16
    )
    parity64(ig, theirs)
    parity64(act, ca.LayerActivation(unshared, module).attribute(x64.clone()))


def test_captum_on_a_reused_module_reads_its_last_call(shared, x64, parity64):
    q = ia.model(shared).on(x64).layer("relu", call=-1)
    assert q.node.key == "relu[call=1]"
    gxa, ig = ia.compute(q.input_x_gradient(0), q.integrated_gradients(0, steps=16))
    parity64(gxa, ca.LayerGradientXActivation(shared, shared.relu).attribute(x64.clone(), target=0))
    theirs = ca.LayerIntegratedGradients(shared, shared.relu).attribute(
        x64.clone(), target=0, n_steps=16
    )
    parity64(ig, theirs)


def test_every_call_along_a_call_dim(shared, x64):
    q = ia.model(shared).on(x64)
    every, first, second = ia.compute(
        q.layer("fc", call="all").integrated_gradients("all", steps=8),
        q.layer("fc", call=0).integrated_gradients("all", steps=8),
        q.layer("fc", call=1).integrated_gradients("all", steps=8),
    )
    assert every.dims == ("sample", "target", "call", "feature")
    assert every["call"].values.tolist() == [0, 1] and every.attrs["layer"] == "fc[call=all]"
    assert every.delta.dims == ("sample", "target", "call")
    np.testing.assert_array_equal(every.isel(call=0).values, first.values)
    np.testing.assert_array_equal(every.isel(call=1).values, second.values)
    np.testing.assert_array_equal(every.delta.isel(call=1).values, second.delta.values)


def test_every_call_shares_one_forward_and_one_backward(shared, x64, counting, passes):
    counted = counting(shared)
    q = ia.model(counted).on(x64)
    exprs = [q.layer("net.relu", call="all").input_x_gradient("all"), q.saliency(0)]
    results, counts, totals = passes(counted, exprs)
    assert counts == totals == (1, 4, 1)
    assert results[0].sizes["call"] == 2


def test_a_layer_input_equals_captums_attribute_to_layer_input(cnn64, images64, parity64):
    conv = cnn64.conv2
    q = ia.model(cnn64).on(images64).layer("conv2", input=True)
    assert q.node.key == "conv2[input]"
    gxa, ig, act = ia.compute(
        q.input_x_gradient(1), q.integrated_gradients(3, steps=12), q.activation()
    )
    theirs = ca.LayerGradientXActivation(cnn64, conv).attribute(
        images64.clone(), target=1, attribute_to_layer_input=True
    )
    parity64(gxa, theirs)
    theirs = ca.LayerIntegratedGradients(cnn64, conv).attribute(
        images64.clone(), target=3, n_steps=12, attribute_to_layer_input=True
    )
    parity64(ig, theirs)
    parity64(
        act,
        ca.LayerActivation(cnn64, conv).attribute(images64.clone(), attribute_to_layer_input=True),
    )
    assert gxa.dims == ("sample", "channel", "y", "x")


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out.mean(1))


class Outputs(nn.Module):
    """The LSTM's first output alone, so Captum has a layer returning one tensor."""

    def __init__(self, lstm):
        super().__init__()
        self.lstm = lstm

    def forward(self, x):
        return self.lstm(x)[0]


class Split(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.outputs, self.fc = Outputs(net.lstm), net.fc

    def forward(self, x):
        return self.fc(self.outputs(x).mean(1))


def test_an_lstm_classifier_by_its_output_element(parity64):
    net = LSTMClassifier().double().eval()
    x = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    split = Split(net).eval()
    q = ia.model(net).on(x).layer("lstm", output=0)
    ig, gxa = ia.compute(q.integrated_gradients(1, steps=16), q.input_x_gradient(2))
    assert ig.dims == ("sample", "dim_1", "dim_2") and ig.sizes["dim_2"] == 6
    theirs = ca.LayerIntegratedGradients(split, split.outputs).attribute(
        x.clone(), target=1, n_steps=16
    )
    parity64(ig, theirs)
    theirs = ca.LayerGradientXActivation(split, split.outputs).attribute(x.clone(), target=2)
    parity64(gxa, theirs)
    inputs = ia.model(net).on(x).layer("lstm", input=True).saliency(0, abs=False).compute()
    parity64(inputs, ca.Saliency(net).attribute(x.clone(), target=0, abs=False))


def test_the_query_language_says_the_options(shared, x64):
    f = ia.model(shared)
    q = f.on(x64)
    for expr, text in [
        (
            q.layer("fc", call=1).saliency(0),
            "select fc[call=1] from f(x) using saliency(abs=true) target 0",
        ),
        (
            q.layer("relu", call="all").input_x_gradient("pred"),
            "select relu[call=all] from f(x) using input_x_gradient target pred",
        ),
        (
            q.layer("out", input=True).saliency(1),
            "select out[input] from f(x) using saliency(abs=true) target 1",
        ),
    ]:
        assert expr.to_query(names={"f": f, "x": x64}) == text
        assert ia.query(text, f=f, x=x64).node == expr.node
    net = LSTMClassifier().eval()
    x = torch.randn(2, 5, 4)
    text = "select lstm[output=0] from f(x) using saliency(abs=true) target 0"
    expr = ia.query(text, f=net, x=x)
    assert expr.node == ia.model(net).on(x).layer("lstm", output=0).saliency(0).node
    with pytest.raises(ia.QueryError, match=r"unknown layer option 'calls'.*Did you mean 'call'"):
        ia.query("select fc[calls=1] from f(x)", f=f, x=x64)
    with pytest.raises(ia.QueryError, match=r"call=2 is beyond them"):
        ia.query("select fc[call=2] from f(x)", f=f, x=x64)


def test_clear_errors_when_built(shared, x64):
    q = ia.model(shared).on(x64)
    with pytest.raises(ValueError, match=r"call: layer 'fc' is called 2 times .* call=2 is beyond"):
        q.layer("fc", call=2)
    with pytest.raises(
        ValueError, match=r"call: layer 'fc' is called 2 times .* call=-3 is beyond"
    ):
        q.layer("fc", call=-3)
    with pytest.raises(
        ValueError, match=r"call: layer 'fc' is called 2 times in one forward pass; choose one with"
    ):
        q.layer("fc", input=True)
    with pytest.raises(ValueError, match=r"layer 'relu' is called more than once .* call=k"):
        q.layer("relu").saliency(0).compute()
    with pytest.raises(ValueError, match=r"call: expected a call's index \(an int >= 0\) or 'all'"):
        q.layer("fc", call="last")
    with pytest.raises(ValueError, match=r"output: picks an element .* give one of them"):
        q.layer("inp", output=0, input=True)
    with pytest.raises(ValueError, match=r"output: layer 'inp' returns a tensor of shape \[1, 5\]"):
        q.layer("inp", output=0)
    net = LSTMClassifier().eval()
    r = ia.model(net).on(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"index 2 is outside them \(valid 0..1\)"):
        r.layer("lstm", output=2)
    with pytest.raises(ValueError, match=r"element 1 of layer 'lstm''s output is a tuple"):
        r.layer("lstm", output=1)
    with pytest.raises(ValueError, match=r"select one with q.layer\('lstm', output=0\)"):
        r.layer("lstm").saliency(0).compute()
    with pytest.raises(ValueError, match="other: an anti-join attributes one tensor"):
        other = ia.model(shared).on(x64 + 1).layer("fc", call="all")
        q.layer("fc", call="all").antijoin(other, 0, "integrated_gradients")


def test_the_model_comes_back_untouched(shared, x64, assert_untouched):
    q = ia.model(shared).on(x64)
    ia.compute(
        q.layer("relu", call="all").integrated_gradients(0, steps=4),
        q.layer("fc", input=True, call=1).shapley(0, samples=2, seed=0),
    )
    assert_untouched(shared)
    with pytest.raises(ValueError):
        q.layer("relu").saliency(0).compute()
    assert_untouched(shared)


def test_copies_of_one_call_are_counted_once_measured(shared, x64, counting, passes):
    counted = counting(shared)
    q = ia.model(counted).on(x64)
    expr = q.layer("net.fc", call=1, input=True).feature_ablation(0)
    expr.compute(session=ia.Session())  # the first forward measures the model
    result, counts, totals = passes(counted, [expr])
    assert counts == totals  # the forwards explain() counts are the ones that run
    assert result[0].dims == ("sample", "feature")
