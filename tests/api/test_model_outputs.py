"""``ia.model(module, output=..., position=...)``: scores read from whatever the forward
returns, scalar outputs as one class (Captum parity, float64), and the errors of an
``output=`` or ``position=`` that finds nothing, raised when the expression is built."""

from __future__ import annotations

from collections import namedtuple

import captum.attr as ca
import pytest
import torch
from torch import nn

import algebra as ia

Out = namedtuple("Out", "loss logits")


class Scalar(nn.Module):
    """One score per sample, ``[N]`` (a regressor, a binary logit)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.act, self.fc2 = nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))[:, 0]


class Wrapped(nn.Module):
    """The same scores as ``inner``, returned in one of the structures models return."""

    def __init__(self, inner: nn.Module, how: str):
        super().__init__()
        self.inner, self.how = inner, how

    def forward(self, x):
        scores = self.inner(x)
        return {
            "dict": lambda: {"loss": None, "logits": scores},
            "namedtuple": lambda: Out(None, scores),
            "tuple": lambda: (scores.sum(), scores),
            "nested": lambda: {"heads": {"cls": scores}},
        }[self.how]()


@pytest.fixture
def x64():
    return torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.parametrize("target", [0, "pred", "all"])
def test_scalar_outputs_are_one_class(x64, parity64, target):
    net = Scalar().double().eval()
    q = ia.model(net).on(x64)
    sal, ixg, ig = ia.compute(
        q.saliency(target, abs=False), q.input_x_gradient(target), q.integrated_gradients(target)
    )
    if target == "all":
        assert sal.sizes["target"] == 1
        sal, ixg, ig = (r.isel(target=0) for r in (sal, ixg, ig))
    assert (sal["class"] == 0).all()
    parity64(sal, ca.Saliency(net).attribute(x64.clone(), abs=False))
    parity64(ixg, ca.InputXGradient(net).attribute(x64.clone()))
    parity64(ig, ca.IntegratedGradients(net).attribute(x64.clone(), n_steps=50))
    layer = q.layer("act").integrated_gradients(target).compute()
    theirs = ca.LayerIntegratedGradients(net, net.act).attribute(x64.clone(), n_steps=50)
    parity64(layer.isel(target=0) if target == "all" else layer, theirs)


def test_scalar_outputs_with_perturbation_methods(x64, parity64):
    net = Scalar().double().eval()
    ours = ia.model(net).on(x64).feature_ablation(0).compute()
    parity64(ours, ca.FeatureAblation(net).attribute(x64.clone()))


@pytest.mark.parametrize(
    ("how", "output"),
    [
        ("dict", None),
        ("namedtuple", None),
        ("dict", "logits"),
        ("tuple", 1),
        ("tuple", -1),
        ("namedtuple", "logits"),
        ("nested", lambda out: out["heads"]["cls"]),
    ],
)
def test_the_scores_are_found_in_what_the_forward_returns(mlp64, features64, parity64, how, output):
    net = Wrapped(mlp64, how).eval()
    q = ia.model(net, output=output).on(features64)
    sal, ig, shap = ia.compute(
        q.saliency("pred"), q.layer("inner.act").integrated_gradients(1), q.shapley(2, seed=0)
    )
    plain = ia.model(mlp64).on(features64)
    expected = ia.compute(
        plain.saliency("pred"), plain.layer("act").integrated_gradients(1), plain.shapley(2, seed=0)
    )
    for ours, theirs in zip((sal, ig, shap), expected, strict=True):
        parity64(ours, torch.from_numpy(theirs.values))
    assert (sal.pred == expected[0].pred).all()


def test_models_read_differently_are_different_models(mlp64):
    a, b = ia.model(mlp64), ia.model(mlp64, output=lambda out: out[:, :2])
    assert a.info != b.info
    assert ia.model(mlp64, position=None).info == a.info


@pytest.mark.parametrize(
    ("how", "output", "message"),
    [
        (
            "dict",
            "logit",
            r"output: the model's forward returns a dict with keys 'loss', 'logits', which has no 'logit'. Did you mean 'logits'\?",
        ),
        ("namedtuple", "logitz", r"has no 'logitz'. Did you mean 'logits'\?"),
        ("tuple", 2, r"output: index 2 is outside the 2 elements the model's forward returns"),
        ("tuple", None, r"ia.model\(module, output=...\): an element's index \(output=0\)"),
        ("nested", None, r"returns a dict with keys 'heads', not a tensor of scores"),
        ("nested", "heads", r"output: 'heads' gives a dict with keys 'cls', not a tensor"),
    ],
)
def test_an_output_that_finds_nothing_fails_when_built(mlp64, features64, how, output, message):
    net = Wrapped(mlp64, how).eval()
    q = ia.model(net, output=output).on(features64)
    if output is None:  # the default reads nothing until computed
        with pytest.raises(ValueError, match=message):
            q.saliency(0).compute()
    else:
        with pytest.raises(ValueError, match=message):
            q.saliency(0)


def test_bad_output_and_position_arguments(mlp64, features64):
    with pytest.raises(TypeError, match=r"output: expected a field or key name \(str\)"):
        ia.model(mlp64, output=1.5)
    with pytest.raises(TypeError, match=r"position: expected an int"):
        ia.model(mlp64, position="last")
    with pytest.raises(ValueError, match=r"position: the model's scores have shape \[1, 4\]"):
        ia.model(mlp64, position=-1).on(features64).saliency(0)
    scripted = torch.jit.script(nn.Linear(6, 3))
    with pytest.raises(ValueError, match="output: a TorchScript model cannot have its scores"):
        ia.model(scripted, output=0)


def test_the_model_comes_back_untouched(mlp64, features64, assert_untouched):
    net = Wrapped(mlp64, "dict").eval()
    ia.model(net).on(features64).layer("inner.act").input_x_gradient("all").compute()
    assert_untouched(net)
    with pytest.raises(ValueError, match="has no 'logit'"):
        ia.model(net, output="logit").on(features64).saliency(0).compute()
    assert_untouched(net)


def test_neuroinspect_and_metrics_read_the_same_scores(mlp64, features64):
    net = Wrapped(mlp64, "namedtuple").eval()
    labels = ia.model(mlp64).on(features64).saliency("pred").compute().pred.values.tolist()
    q = ia.model(net).on(features64, labels=[(c + 1) % 4 for c in labels])
    found = q.counterfactual_neurons(labels[0], top=2).compute()
    plain = ia.model(mlp64).on(features64, labels=[(c + 1) % 4 for c in labels])
    expected = plain.counterfactual_neurons(labels[0], top=2).compute()
    torch.testing.assert_close(
        torch.from_numpy(found.votes.values), torch.from_numpy(expected.votes.values)
    )
    ours = q.saliency(0).deletion(steps=4).compute()
    theirs = plain.saliency(0).deletion(steps=4).compute()
    torch.testing.assert_close(torch.from_numpy(ours.values), torch.from_numpy(theirs.values))


def test_a_disagreement_reads_each_model_its_way(mlp64, features64):
    f = ia.model(Wrapped(mlp64, "dict").eval(), name="f")
    torch.manual_seed(5)
    other = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 4)).double().eval()
    g = ia.model(Wrapped(other, "tuple").eval(), name="g", output=1)
    d = f.on(features64).antijoin(g.on(features64), "pred", "saliency", abs=False).compute()
    x = features64.clone().requires_grad_(True)
    scores = mlp64(x) - other(x)
    pred = mlp64(features64).argmax(1)
    (expected,) = torch.autograd.grad(scores.gather(1, pred[:, None]).sum(), x)
    torch.testing.assert_close(torch.from_numpy(d.values), expected)


def test_a_hugging_face_model_output_is_found_by_itself(mlp64, features64, parity64):
    utils = pytest.importorskip(
        "transformers.modeling_outputs", reason="transformers is not installed (a test extra)"
    )

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = mlp64

        def forward(self, x):
            return utils.SequenceClassifierOutput(logits=self.body(x))

    ours = ia.model(Classifier().eval()).on(features64).integrated_gradients("all").compute()
    plain = ia.model(mlp64).on(features64).integrated_gradients("all").compute()
    parity64(ours, torch.from_numpy(plain.values))


def test_neuron_visualisation_reads_the_selected_scores():
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    wrapped = Wrapped(cnn, "tuple").eval()
    with ia.set_options(progress=False):
        ours = ia.model(wrapped, output=1).visualize("inner.1", [0], cls=2, steps=3, size=6, seed=0)
        theirs = ia.model(cnn).visualize("1", [0], cls=2, steps=3, size=6, seed=0)
        with pytest.raises(ValueError, match=r"tuple of 2 elements, not a tensor of scores"):
            ia.model(wrapped).visualize("inner.1", [0], cls=2, steps=3, size=6, seed=0)
    np_ours, np_theirs = ours.images.values, theirs.images.values
    torch.testing.assert_close(torch.from_numpy(np_ours), torch.from_numpy(np_theirs))
