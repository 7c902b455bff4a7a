"""Kernel invariants: batched backward equals a loop, the fallback works, results stay on device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import nn

import algebra as ia
from algebra.kernels.execute import execute
from algebra.kernels.gradients import target_gradients
from algebra.kernels.path_steps import INTEGRATION_RULES
from algebra.kernels.paths import alphas_and_weights
from algebra.kernels.plan import TargetSpec
from algebra.optimizer import optimize


def test_batched_backward_equals_per_target_loop(cnn, images):
    x = images.clone().requires_grad_(True)
    out = cnn(x)
    rows = torch.tensor([[0, 1, 2, 3], [4, 4, 0, 1], [2, 2, 2, 2]])
    (batched,) = target_gradients(out, (x,), rows, TargetSpec("classes"), retain_graph=True)
    for t, row in enumerate(rows):
        score = out.gather(1, row[:, None]).sum()
        (expected,) = torch.autograd.grad(score, x, retain_graph=True)
        torch.testing.assert_close(batched[t], expected, rtol=1e-6, atol=1e-7)


class NoVmapTanh(torch.autograd.Function):
    """A custom op with no vmap rule: the batched backward must fall back to a loop."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        if bool(grad.abs().sum() == 0):  # data-dependent control flow: vmap cannot batch this
            return grad
        return grad * (1 - y * y)


class CustomTanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NoVmapTanh.apply(x)


def test_fallback_for_operators_without_batching_rule(mlp, features):
    custom = nn.Sequential(mlp.fc1, CustomTanh(), mlp.fc2).eval()
    x = features.clone().requires_grad_(True)
    out = custom(x)
    rows = torch.arange(4)[:, None].expand(4, len(features))
    with pytest.raises(RuntimeError):  # the premise: vmap cannot run this backward
        torch.autograd.grad(
            out,
            x,
            torch.eye(4)[:, None].expand(4, len(features), 4),
            retain_graph=True,
            is_grads_batched=True,
        )
    ours = ia.model(custom).on(features).saliency("all", abs=False).compute()
    reference = ia.model(mlp).on(features).saliency("all", abs=False).compute()
    torch.testing.assert_close(
        torch.as_tensor(ours.values), torch.as_tensor(reference.values), rtol=1e-5, atol=1e-7
    )
    assert rows.shape == (4, 5)


@pytest.mark.parametrize("rule", INTEGRATION_RULES)
@pytest.mark.parametrize("steps", [2, 7, 50])
def test_integration_rules_match_captum(rule, steps):
    sizes, alphas = approximation_parameters(rule)
    ours_alphas, ours_weights = alphas_and_weights(rule, steps)
    assert ours_alphas == pytest.approx(alphas(steps), abs=0, rel=1e-12)
    assert ours_weights == pytest.approx(sizes(steps), abs=0, rel=1e-12)
    # Captum's trapezoid keeps step 1/n and halves both ends, so its weights sum to 1 - 1/n.
    total = 1 - 1 / steps if rule == "riemann_trapezoid" else 1.0
    assert sum(ours_weights) == pytest.approx(total)


def test_results_stay_torch_tensors_on_the_model_device(cnn, images):
    q = ia.model(cnn).on(images)
    s = q.saliency("all").node
    ig = q.layer("relu1").integrated_gradients("pred", steps=3, method="riemann_left").node
    out = execute(optimize([s, ig]).fused[0].job)
    for result in out.tasks.values():
        assert isinstance(result.values, torch.Tensor) and result.values.device == images.device
    assert out.tasks[s.token].values.shape == (5, 4, 3, 8, 8)
    assert out.tasks[ig.token].values.shape == (1, 4, 4, 8, 8)


def test_integrated_gradients_complete(cnn, images):
    # Completeness: attributions sum to f(x) - f(baseline) for the attributed class.
    r = ia.model(cnn).on(images).integrated_gradients("pred", steps=64).compute()
    with torch.no_grad():
        gap = cnn(images) - cnn(torch.zeros_like(images))
    expected = gap.gather(1, torch.as_tensor(r["class"].values)[:, None])[:, 0]
    torch.testing.assert_close(
        torch.as_tensor(r.sum(["channel", "y", "x"]).values), expected, rtol=1e-3, atol=5e-4
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_results_equal_cpu_and_stay_on_device(cnn, images):
    gpu = cnn.to("cuda")
    q = ia.model(gpu).on(images)
    nodes = [q.saliency("all").node, q.integrated_gradients("pred", steps=8).node]
    out = execute(optimize(nodes).fused[0].job)
    assert all(r.values.is_cuda for r in out.tasks.values())
    on_gpu = ia.compute(ia.model(gpu).on(images).saliency("all"))[0]
    on_cpu = ia.compute(ia.model(gpu.to("cpu")).on(images).saliency("all"))[0]
    torch.testing.assert_close(
        torch.as_tensor(on_gpu.values), torch.as_tensor(on_cpu.values), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("layer", [None, "0"])
def test_fallback_keeps_the_graph_on_the_integration_path(mlp, features, layer):
    custom = nn.Sequential(mlp.fc1, CustomTanh(), mlp.fc2).eval()
    q = ia.model(custom).on(features)
    q_ref = ia.model(mlp).on(features)
    if layer is not None:
        q, q_ref = q.layer(layer), q_ref.layer("fc1")
    ours = q.integrated_gradients("all", steps=5).compute()
    reference = q_ref.integrated_gradients("all", steps=5).compute()
    torch.testing.assert_close(
        torch.as_tensor(ours.values), torch.as_tensor(reference.values), rtol=1e-5, atol=1e-7
    )


class Embedding(nn.Module):
    def __init__(self, p: nn.Parameter) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.p.expand(x.shape[0], -1)


def test_layer_whose_output_depends_only_on_parameters(mlp, features):
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(1, 6))
    embed = Embedding(p)
    net = nn.Sequential()
    net.add_module("embed", embed)
    net.add_module("head", mlp)
    net.eval()
    r = ia.model(net).on(features).layer("embed").input_x_gradient(0).compute()
    # d out_0 / d embed = gradient of the MLP at p, times p
    x = p.detach().expand(5, 6).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(mlp(x)[:, 0].sum(), x)
    torch.testing.assert_close(torch.as_tensor(r.values), g * p.detach())
    assert p.requires_grad and p.grad is None


def test_half_precision_results_become_float32(mlp, features):
    r = ia.model(mlp.to(torch.bfloat16)).on(features.to(torch.bfloat16)).saliency("all").compute()
    assert r.dtype == np.float32


def test_parameterless_model_runs_on_the_inputs_device(features):
    net = nn.Sequential(nn.Tanh(), nn.Softmax(dim=1)).eval()
    r = ia.model(net).on(features).saliency(0).compute()
    assert r.shape == (5, 6)


def test_inference_mode_tensors_are_accepted(mlp):
    with torch.inference_mode():
        x = torch.randn(3, 6)
        labels = torch.tensor([0, 1, 2])
    r = ia.model(mlp).on(x, labels=labels).saliency("label").compute()
    assert r.shape == (3, 6)
