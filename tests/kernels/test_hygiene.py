"""The user's model comes back unmodified: no hooks, mode and requires_grad restored, no grads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import algebra as ia


def _hooks(module: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in module.modules()
    )


def _all_methods(q: ia.Query) -> list[ia.Expr]:
    return [
        q.saliency("all"),
        q.input_x_gradient(ia.topk(2)),
        q.integrated_gradients("pred", steps=3),
        q.layer("relu1").saliency(1),
        q.layer("conv2").integrated_gradients(0, steps=2),
    ]


def test_training_mode_warns_runs_in_eval_and_is_restored(images, cnn_factory):
    net = cnn_factory()
    net.add_module("drop", nn.Dropout(0.9))  # would make results random in training mode
    net.train()
    q = ia.model(net).on(images)
    with pytest.warns(UserWarning, match="training mode") as record:
        first = q.saliency(0).compute()
    assert record[0].filename == __file__  # the warning points at the caller
    with pytest.warns(UserWarning):
        second = q.input_x_gradient(0).compute()
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    torch.testing.assert_close(
        torch.as_tensor(first.values), torch.as_tensor(q.saliency(0).compute().values)
    )
    assert second.shape == first.shape


def test_requires_grad_restored_and_parameters_get_no_gradients(images, cnn_factory):
    net = cnn_factory()
    net.conv1.weight.requires_grad_(False)  # a user's partial freeze is kept as it was
    flags = {name: p.requires_grad for name, p in net.named_parameters()}
    ia.compute(*_all_methods(ia.model(net).on(images)))
    assert {name: p.requires_grad for name, p in net.named_parameters()} == flags
    assert all(p.grad is None for p in net.parameters())
    assert _hooks(net) == 0


class Exploding(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 4:  # fails only on the integration path
            raise RuntimeError("boom")
        return x


def test_hooks_removed_and_state_restored_after_an_exception(images, cnn_factory):
    net = cnn_factory()
    net.relu2 = nn.Sequential(nn.ReLU(), Exploding())
    net.train()
    q = ia.model(net).on(images)
    with pytest.raises(RuntimeError, match="boom"), pytest.warns(UserWarning):
        ia.compute(q.layer("relu1").saliency(0), q.layer("conv1").integrated_gradients(0, steps=2))
    assert _hooks(net) == 0
    assert net.training and all(p.requires_grad for p in net.parameters())


def test_failing_callable_target_leaves_no_hooks(cnn, images):
    def bad_target(out: torch.Tensor) -> torch.Tensor:
        return out  # two-dimensional: not one scalar per sample

    with pytest.raises(ValueError, match="one scalar per sample"):
        ia.model(cnn).on(images).layer("relu1").saliency(bad_target).compute()
    assert _hooks(cnn) == 0


def test_inputs_are_not_modified(cnn, images):
    before = images.clone()
    ia.compute(*_all_methods(ia.model(cnn).on(images)))
    assert torch.equal(images, before)
    assert not images.requires_grad


def test_submodule_in_training_mode_warns_and_is_restored(images, cnn_factory):
    net = cnn_factory()
    net.relu1.train()  # an eval model with one submodule left in training mode
    with pytest.warns(UserWarning, match=r"model has submodules in training mode \('relu1'\)"):
        ia.model(net).on(images).saliency(0).compute()
    assert net.relu1.training and not net.training
