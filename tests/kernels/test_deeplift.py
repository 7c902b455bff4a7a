"""DeepLift rules over paired batches: Captum parity, deltas, coverage and clear refusals.

Parity comparisons use float64 models, ``rtol=1e-5`` and an ``atol`` of ``1e-5`` times the
largest magnitude of Captum's result. The models keep Captum's rules apart with a linear
layer: where two of its hooked modules touch (``ReLU`` then ``MaxPool2d``), Captum's
hooks read the gradient before the neighbour's rule and its maps lose completeness (see
``test_adjacent_nonlinearities_stay_complete``).
"""

from __future__ import annotations

from collections import OrderedDict

import captum.attr as ca
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from algebra.kernels.capture import captured
from algebra.kernels.deeplift import deeplift_rules
from algebra.kernels.deltas import convergence_delta, target_scores
from algebra.kernels.gradients import target_gradients
from algebra.kernels.pairs import deeplift_attribution, halves, paired
from algebra.kernels.plan import TargetSpec

pytestmark = pytest.mark.filterwarnings("ignore:Setting forward, backward hooks:UserWarning")


# Captum's DeepLiftShap pairs every input with every baseline in rows n * B + b; the engine
# pairs them its own way, chunk by chunk (kernels/paired_runs.py). These build Captum's.
def shap_pairs(x: torch.Tensor, baselines: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b = baselines.shape[0]
    return x.repeat_interleave(b, 0), baselines.repeat(x.shape[0], *([1] * (x.ndim - 1)))


def mean_over_baselines(values: torch.Tensor, baselines: int) -> torch.Tensor:
    """``[T, N * B, ...] -> [T, N, ...]``, the mean over each sample's baselines."""
    shape = values.shape
    return values.reshape(shape[0], shape[1] // baselines, baselines, *shape[2:]).mean(2)


def make_cnn() -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 4, 3, padding=1),
                relu1=nn.ReLU(inplace=True),
                conv2=nn.Conv2d(4, 6, 3, padding=1),
                pool=nn.MaxPool2d(2),
                conv3=nn.Conv2d(6, 6, 3, padding=1),
                elu=nn.ELU(),
                flat=nn.Flatten(),
                fc1=nn.Linear(96, 10),
                tanh=nn.Tanh(),
                fc2=nn.Linear(10, 5),
            )
        )
        .double()
        .eval()
    )


def make_mlp() -> nn.Module:
    torch.manual_seed(1)
    layers = [nn.Linear(6, 12)]
    for act in (
        nn.ReLU(),
        nn.ELU(0.7),
        nn.LeakyReLU(0.1),
        nn.Sigmoid(),
        nn.Tanh(),
        nn.Softplus(2.0),
    ):
        layers += [act, nn.Linear(12, 12)]
    layers.append(nn.Linear(12, 4))
    return nn.Sequential(*layers).double().eval()


def make_conv1d() -> nn.Module:
    torch.manual_seed(3)
    return (
        nn.Sequential(
            nn.Conv1d(2, 4, 3, padding=1),
            nn.MaxPool1d(2),
            nn.Conv1d(4, 4, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16, 3),
        )
        .double()
        .eval()
    )


CASES = {
    "cnn": (make_cnn, (4, 3, 8, 8), 5),
    "mlp": (make_mlp, (5, 6), 4),
    "conv1d": (make_conv1d, (4, 2, 8), 3),
}


def randn(*shape, seed=2) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def assert_parity(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.detach()
    assert float(theirs.abs().max()) > 0, "degenerate reference: all zeros"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))


def paired_pass(net, x, baseline, classes, layer=None):
    """One paired forward under the rules and one batched backward over ``classes``.

    Returns the gradients ``[T, 2N, ...]`` (input, or ``layer``'s output), the points they
    are taken at ``[2N, ...]`` and the logits ``[2N, C]``.
    """
    points = paired(x, baseline).requires_grad_(layer is None)
    names = () if layer is None else (layer,)
    with deeplift_rules(net), captured(net, names) as acts:
        out = net(points)
    wrt = points if layer is None else acts[layer]
    rows = torch.tensor(classes)[:, None].expand(-1, len(points))
    (grads,) = target_gradients(out, (wrt,), rows, TargetSpec("classes", tuple(classes)), False)
    return grads, wrt.detach(), out.detach()


def assert_untouched(net: nn.Module) -> None:
    assert torch._C._len_torch_function_stack() == 0
    for name, m in net.named_modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks), name
    for p in net.parameters():
        assert p.requires_grad and p.grad is None


BASELINES = {
    "zero": lambda x: 0.0,
    "scalar": lambda x: 0.2,
    "one": lambda x: randn(1, *x.shape[1:], seed=5) * 0.5,
    "per_sample": lambda x: randn(*x.shape, seed=6) * 0.5,
    # sample 0 is its own reference: every difference is 0, the rules fall back to f'
    "first_equal": lambda x: torch.cat([x[:1], randn(*x.shape, seed=6)[1:] * 0.5]),
}


def captum_baseline(b, x):
    return b if isinstance(b, torch.Tensor) else torch.full_like(x, b)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("which", BASELINES)
def test_deeplift_parity(case, which):
    factory, shape, classes = CASES[case]
    net, x = factory(), randn(*shape)
    baseline = BASELINES[which](x)
    grads, points, logits = paired_pass(net, x, baseline, list(range(classes)))
    ours = deeplift_attribution(grads, points)
    local = deeplift_attribution(grads, points, multiply_by_inputs=False)
    rows = torch.arange(classes)[:, None].expand(-1, len(x))
    end, start = halves(logits)
    delta = convergence_delta(ours, target_scores(end, rows), target_scores(start, rows))
    for c in range(classes):
        theirs, their_delta = ca.DeepLift(net).attribute(
            x.clone(), captum_baseline(baseline, x), target=c, return_convergence_delta=True
        )
        assert_parity(ours[c], theirs)
        torch.testing.assert_close(delta[c], their_delta, rtol=0, atol=1e-10)
        assert_parity(
            local[c],
            ca.DeepLift(net, multiply_by_inputs=False).attribute(
                x.clone(), captum_baseline(baseline, x), target=c
            ),
        )
    assert float(delta.abs().max()) < 1e-10  # complete: the rules explain the difference
    assert not torch.allclose(local, ours)
    assert_untouched(net)


@pytest.mark.parametrize("case", CASES)
def test_deeplift_shap_parity(case):
    factory, shape, classes = CASES[case]
    net, x = factory(), randn(*shape)
    baselines = randn(3, *shape[1:], seed=7)
    xs, bs = shap_pairs(x, baselines)
    grads, points, logits = paired_pass(net, xs, bs, [0, classes - 1])
    per_pair = deeplift_attribution(grads, points)
    ours = mean_over_baselines(per_pair, 3)
    rows = torch.tensor([0, classes - 1])[:, None].expand(-1, len(xs))
    end, start = halves(logits)
    delta = convergence_delta(per_pair, target_scores(end, rows), target_scores(start, rows))
    for i, c in enumerate([0, classes - 1]):
        theirs, their_delta = ca.DeepLiftShap(net).attribute(
            x.clone(), baselines, target=c, return_convergence_delta=True
        )
        assert_parity(ours[i], theirs)
        torch.testing.assert_close(delta[i], their_delta, rtol=0, atol=1e-10)
        local = ca.DeepLiftShap(net, multiply_by_inputs=False).attribute(
            x.clone(), baselines, target=c
        )
        assert_parity(mean_over_baselines(deeplift_attribution(grads, points, False), 3)[i], local)


@pytest.mark.parametrize(("case", "layer"), [("cnn", "conv2"), ("cnn", "relu1"), ("cnn", "fc1")])
@pytest.mark.parametrize("multiply", [True, False])
def test_layer_deeplift_parity(case, layer, multiply):
    factory, shape, _ = CASES[case]
    net, x = factory(), randn(*shape)
    baseline = randn(1, *shape[1:], seed=8) * 0.3
    grads, acts, _ = paired_pass(net, x, baseline, [1, 3], layer=layer)
    ours = deeplift_attribution(grads, acts, multiply)
    module = dict(net.named_modules())[layer]
    for i, c in enumerate([1, 3]):
        theirs = ca.LayerDeepLift(net, module, multiply_by_inputs=multiply).attribute(
            x.clone(), baseline, target=c
        )
        assert_parity(ours[i], theirs)
    assert_untouched(net)


def test_softmax_rule_equals_captum_per_sample():
    torch.manual_seed(4)
    net = (
        nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.Softmax(dim=1))
        .double()
        .eval()
    )
    x = randn(3, 6)
    grads, points, _ = paired_pass(net, x, 0.1, [0, 1, 2, 3])
    ours = deeplift_attribution(grads, points)
    # Captum normalises over its whole batch: one sample per call is the per-pair rule.
    for n in range(3):
        for c in range(4):
            theirs = ca.DeepLift(net).attribute(x[n : n + 1].clone(), 0.1, target=c)
            assert_parity(ours[c, n : n + 1], theirs)


def test_adjacent_nonlinearities_stay_complete():
    # ReLU -> MaxPool -> ReLU: Captum's rules read each other's unmodified gradients here.
    torch.manual_seed(5)
    net = (
        nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64, 3),
        )
        .double()
        .eval()
    )
    x, baseline = randn(2, 3, 8, 8), randn(1, 3, 8, 8, seed=9) * 0.2
    grads, points, logits = paired_pass(net, x, baseline, [0, 1, 2])
    ours = deeplift_attribution(grads, points)
    rows = torch.arange(3)[:, None].expand(-1, 2)
    end, start = halves(logits)
    delta = convergence_delta(ours, target_scores(end, rows), target_scores(start, rows))
    assert float(delta.abs().max()) < 1e-10
    _, their_delta = ca.DeepLift(net).attribute(
        x.clone(), baseline, target=0, return_convergence_delta=True
    )
    assert float(their_delta.abs().max()) > 1e-4


class Functional(nn.Module):
    def __init__(self, twin: nn.Module):
        super().__init__()
        self.twin = twin

    def forward(self, x):
        t = self.twin
        x = F.relu(t.conv1(x), inplace=True)
        x = t.conv3(F.max_pool2d(t.conv2(x), 2))
        x = torch.tanh(t.fc1(F.elu(x).flatten(1)))
        return t.fc2(x)


def test_functional_nonlinearities_equal_modules():
    modules, x = make_cnn(), randn(4, 3, 8, 8)
    functional = Functional(make_cnn()).eval()
    ours = deeplift_attribution(*paired_pass(functional, x, 0.1, [0, 2])[:2])
    expected = deeplift_attribution(*paired_pass(modules, x, 0.1, [0, 2])[:2])
    assert_parity(ours, expected)
    # Captum hooks modules only: on the functional twin its map is not DeepLift's.
    missed = ca.DeepLift(functional).attribute(x.clone(), torch.full_like(x, 0.1), target=0)
    assert not torch.allclose(missed, expected[0])


class Wrapped(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)
        self.norm = nn.LayerNorm(8)
        self.body = body

    def forward(self, x):
        return self.fc2(self.body(self, self.fc1(x)))


UNSUPPORTED = {
    "GELU module": (lambda m, h: nn.GELU()(h), "gelu"),
    "SiLU module": (lambda m, h: nn.SiLU()(h), "silu"),
    "F.gelu": (lambda m, h: F.gelu(h), "gelu"),
    "layer norm": (lambda m, h: m.norm(h), "layer_norm"),
    "exp": (lambda m, h: h.exp(), "exp"),
    "manual SiLU": (lambda m, h: h * torch.sigmoid(h), "mul of two activations"),
    "attention": (lambda m, h: (h[:, :, None] @ h[:, None, :]).sum(2), "matmul of two activations"),
    "division by an activation": (lambda m, h: h / (1 + h.square()), "square"),
    "number over activation": (lambda m, h: 1 / (2 + h.sigmoid()), "a division by an activation"),
    "quotient": (lambda m, h: h / h.sigmoid(), "div of two activations"),
    "power": (lambda m, h: h**2, "pow"),
    "relu6 (a hardtanh)": (lambda m, h: nn.ReLU6()(h), "hardtanh"),
    "training batch norm": (
        lambda m, h: F.batch_norm(h, None, None, training=True),
        "batch_norm in training mode",
    ),
}


@pytest.mark.parametrize("case", UNSUPPORTED)
def test_unsupported_nonlinearities_are_named(case):
    body, name = UNSUPPORTED[case]
    net = Wrapped(body).double().eval()
    with pytest.raises(ValueError, match=f"deeplift: the model applies {name}"):
        paired_pass(net, randn(2, 6), 0.0, [0])
    assert_untouched(net)


def test_linear_operations_pass():
    def body(m, h):
        mask = torch.ones(8, dtype=h.dtype)
        return torch.relu(
            2 * h * mask / 4 + h.mean(1, keepdim=True) - h[:, :1] @ torch.ones(1, 8, dtype=h.dtype)
        )

    net = Wrapped(body).double().eval()
    grads, points, logits = paired_pass(net, randn(3, 6), 0.0, [0, 1])
    ours = deeplift_attribution(grads, points)
    end, start = halves(logits)
    rows = torch.arange(2)[:, None].expand(-1, 3)
    delta = convergence_delta(ours, target_scores(end, rows), target_scores(start, rows))
    assert float(delta.abs().max()) < 1e-10


def test_rows_must_stay_paired():
    net = Wrapped(lambda m, h: torch.relu(h.reshape(1, -1)).reshape(h.shape)).double().eval()
    with pytest.raises(ValueError, match="relu saw a tensor of shape \\[1, 48\\]"):
        paired_pass(net, randn(3, 6), 0.0, [0])
    with pytest.raises(ValueError, match="paired batch"):
        halves(torch.zeros(3, 2))


def test_parameters_restored_after_an_error_and_script_refused():
    net = make_mlp()
    net[0].weight.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"), deeplift_rules(net):
        assert not any(p.requires_grad for p in net.parameters())
        raise RuntimeError("boom")
    assert not net[0].weight.requires_grad
    assert all(p.requires_grad for name, p in net.named_parameters() if name != "0.weight")
    assert torch._C._len_torch_function_stack() == 0
    with pytest.warns(DeprecationWarning):
        scripted = torch.jit.script(make_mlp())
    with pytest.raises(ValueError, match="TorchScript"), deeplift_rules(scripted):
        pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rules_on_cuda_equal_cpu():
    net, x = make_cnn(), randn(4, 3, 8, 8)
    expected = deeplift_attribution(*paired_pass(net, x, 0.1, [0, 4])[:2])
    grads, points, _ = paired_pass(net.cuda(), x.cuda(), 0.1, [0, 4])
    assert grads.is_cuda
    torch.testing.assert_close(deeplift_attribution(grads, points).cpu(), expected)
