"""Guided backprop and deconvolution rules: Captum parity, functional ReLUs, model hygiene.

Parity comparisons use float64 models, ``rtol=1e-5`` and an ``atol`` of ``1e-5`` times the
largest magnitude of Captum's result. Every target comes out of one batched backward.
"""

from __future__ import annotations

from collections import OrderedDict

import captum.attr as ca
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from algebra.kernels.gradients import target_gradients
from algebra.kernels.plan import TargetSpec
from algebra.kernels.rules import relu_rules

pytestmark = [
    pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]

CAPTUM = {"guided_backprop": ca.GuidedBackprop, "deconvolution": ca.Deconvolution}


def make_cnn() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 4, 3, padding=1),
                relu1=nn.ReLU(inplace=True),
                conv2=nn.Conv2d(4, 6, 3, padding=1),
                relu2=nn.ReLU(),
                pool=nn.MaxPool2d(2),
                flat=nn.Flatten(),
                fc1=nn.Linear(96, 10),
                relu3=nn.ReLU(),
                fc2=nn.Linear(10, 5),
            )
        )
        .double()
        .eval()
    )


def make_mlp() -> nn.Module:
    torch.manual_seed(1)
    return (
        nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
        .double()
        .eval()
    )


CASES = {"cnn": (make_cnn, (4, 3, 8, 8), 5), "mlp": (make_mlp, (5, 6), 4)}


class FunctionalCNN(nn.Module):
    """``make_cnn``'s weights, its ReLUs written in every functional form."""

    def __init__(self, twin: nn.Module, form: str):
        super().__init__()
        self.twin, self.form = twin, form

    def relu(self, x: torch.Tensor, where: int) -> torch.Tensor:
        form = self.form if self.form != "mixed" else ["F.relu", "x.relu_", "torch.relu_"][where]
        if form == "F.relu":
            return F.relu(x)
        if form == "F.relu_inplace":
            return F.relu(x, inplace=True)
        if form == "torch.relu":
            return torch.relu(x)
        if form == "torch.relu_":
            return torch.relu_(x)
        if form == "x.relu":
            return x.relu()
        assert form == "x.relu_"
        x.relu_()  # result unused: the in-place change itself must carry the rule
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.twin
        x = self.relu(t.conv1(x), 0)
        x = self.relu(t.conv2(x), 1)
        x = t.flat(t.pool(x))
        return t.fc2(self.relu(t.fc1(x), 2))


FORMS = ("F.relu", "F.relu_inplace", "torch.relu", "torch.relu_", "x.relu", "x.relu_", "mixed")


def inputs(shape) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def ruled(net, x, rule, classes):
    """Attributions ``[T, N, ...]`` of each class under ``rule``, from one batched backward."""
    x = x.clone().requires_grad_(True)
    with relu_rules(rule, net):
        out = net(x)
    rows = torch.tensor(classes)[:, None].expand(-1, len(x))
    (grads,) = target_gradients(out, (x,), rows, TargetSpec("classes", tuple(classes)), False)
    return grads


def assert_parity(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.detach()
    assert float(theirs.abs().max()) > 0, "degenerate reference: all zeros"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))


def assert_untouched(net: nn.Module) -> None:
    assert torch._C._len_torch_function_stack() == 0
    for name, m in net.named_modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks), name
        assert not m._backward_pre_hooks, name
    for p in net.parameters():
        assert p.requires_grad and p.grad is None


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("rule", CAPTUM)
def test_parity_with_captum(case, rule):
    factory, shape, classes = CASES[case]
    net, x = factory(), inputs(shape)
    ours = ruled(net, x, rule, list(range(classes)))
    for c in range(classes):
        assert_parity(ours[c], CAPTUM[rule](net).attribute(x.clone(), target=c))
    # the rule matters on these models: the plain gradient differs
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(xg)[:, 0].sum(), xg)
    assert not torch.allclose(ours[0], grad)
    assert_untouched(net)


@pytest.mark.parametrize("rule", CAPTUM)
def test_batched_backward_equals_one_backward_per_target(rule):
    net, x = make_cnn(), inputs((4, 3, 8, 8))
    batched = ruled(net, x, rule, [0, 3, 4])
    for i, c in enumerate([0, 3, 4]):
        torch.testing.assert_close(batched[i], ruled(net, x, rule, [c])[0], rtol=0, atol=1e-14)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("rule", CAPTUM)
def test_functional_relus_equal_modules(form, rule):
    modules, x = make_cnn(), inputs((4, 3, 8, 8))
    functional = FunctionalCNN(make_cnn(), form).eval()
    expected = ruled(modules, x, rule, [1, 2])
    assert_parity(ruled(functional, x, rule, [1, 2]), expected)
    # Captum's module hooks miss functional ReLUs: its map there is the plain gradient.
    if form == "F.relu":
        missed = CAPTUM[rule](functional).attribute(x.clone(), target=1)
        assert not torch.allclose(missed, expected[0])
    assert_untouched(functional)


@pytest.mark.parametrize("rule", CAPTUM)
def test_exported_model_relus_are_caught(rule):
    net, x = make_cnn(), inputs((4, 3, 8, 8))
    exported = torch.export.export(net, (x,)).module()
    assert_parity(ruled(exported, x, rule, [0, 1]), ruled(net, x, rule, [0, 1]))


def test_backward_after_the_block_keeps_the_rule_and_later_forwards_are_plain():
    net, x = make_mlp(), inputs((5, 6)).requires_grad_(True)
    with relu_rules("guided_backprop", net):
        guided_out = net(x)
    plain_out = net(x)
    (guided,) = torch.autograd.grad(guided_out[:, 0].sum(), x)
    (plain,) = torch.autograd.grad(plain_out[:, 0].sum(), x)
    assert_parity(guided, ca.GuidedBackprop(net).attribute(x.detach().clone(), target=0))
    assert_parity(plain, ca.Saliency(net).attribute(x.detach().clone(), target=0, abs=False))


def test_model_unchanged_after_an_error_inside_the_block():
    net, x = make_cnn(), inputs((2, 3, 8, 8))
    with pytest.raises(RuntimeError, match="boom"), relu_rules("deconvolution", net):
        net(x.requires_grad_(True))
        raise RuntimeError("boom")
    assert_untouched(net)
    # a forward after the error records the ordinary ReLU backward
    (grad,) = torch.autograd.grad(net(x)[:, 0].sum(), x)
    assert_parity(grad, ca.Saliency(net).attribute(x.detach().clone(), target=0, abs=False))


def test_no_grad_forwards_and_constants_pass_through():
    x = torch.tensor([-1.0, 2.0])
    with relu_rules("guided_backprop"), torch.no_grad():
        assert torch.relu(x).tolist() == [0.0, 2.0]
    with relu_rules("guided_backprop"):
        y = torch.relu(x)  # no input requires grad: the plain function
    assert y.grad_fn is None


def test_refusals():
    with pytest.raises(ValueError, match="rule: expected one of"), relu_rules("guided"):
        pass
    scripted = torch.jit.script(make_mlp())
    refused = pytest.raises(ValueError, match="guided_backprop: a TorchScript model")
    with refused, relu_rules("guided_backprop", scripted):
        pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("rule", CAPTUM)
def test_rules_on_cuda_equal_cpu(rule):
    net, x = make_cnn(), inputs((4, 3, 8, 8))
    expected = ruled(net, x, rule, [0, 2])
    ours = ruled(net.cuda(), x.cuda(), rule, [0, 2])
    assert ours.is_cuda
    torch.testing.assert_close(ours.cpu(), expected)
