"""Kernel invariants: batched backward equals a loop, the fallback works, results stay on device."""

from __future__ import annotations

import pytest
import torch
from captum.attr._utils.approximation_methods import approximation_parameters
from torch import nn

import algebra as ia
from algebra.kernels.execute import execute
from algebra.kernels.gradients import target_gradients
from algebra.kernels.paths import alphas_and_weights
from algebra.kernels.plan import INTEGRATION_RULES, GradTask, PathSpec, SourceJob, TargetSpec


def test_batched_backward_equals_per_target_loop(cnn, images):
    x = images.clone().requires_grad_(True)
    out = cnn(x)
    rows = torch.tensor([[0, 1, 2, 3], [4, 4, 0, 1], [2, 2, 2, 2]])
    batched = target_gradients(out, x, rows, TargetSpec("classes"), retain_graph=True)
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
    job = SourceJob(
        cnn,
        images,
        tasks=[
            GradTask("s", TargetSpec("all")),
            GradTask(
                "ig",
                TargetSpec("pred"),
                layer="relu1",
                times_input=True,
                path=PathSpec(3, "riemann_left", 0.0),
            ),
        ],
    )
    out = execute(job)
    for result in out.tasks.values():
        assert isinstance(result.values, torch.Tensor) and result.values.device == images.device
    assert out.tasks["s"].values.shape == (5, 4, 3, 8, 8)
    assert out.tasks["ig"].values.shape == (1, 4, 4, 8, 8)


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
    job = SourceJob(
        gpu,
        images,
        tasks=[
            GradTask("s", TargetSpec("all")),
            GradTask(
                "ig", TargetSpec("pred"), times_input=True, path=PathSpec(8, "gausslegendre", 0.0)
            ),
        ],
    )
    out = execute(job)
    assert all(r.values.is_cuda for r in out.tasks.values())
    on_gpu = ia.compute(ia.model(gpu).on(images).saliency("all"))[0]
    on_cpu = ia.compute(ia.model(gpu.to("cpu")).on(images).saliency("all"))[0]
    torch.testing.assert_close(
        torch.as_tensor(on_gpu.values), torch.as_tensor(on_cpu.values), rtol=1e-4, atol=1e-6
    )
