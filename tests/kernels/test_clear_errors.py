"""Models and targets that cannot be attributed fail with the cause named, not autograd's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import algebra as ia


def _x() -> torch.Tensor:
    return torch.rand(3, 4, generator=torch.Generator().manual_seed(0))


class IntegerLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.fc(x) * 100).long()


class NoGradForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.fc(x)


class NoGradLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            h = self.inner(x)
        return self.fc(h)


class SideBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.side = nn.Linear(4, 2)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.side(x)  # called, but its output never reaches the scores
        return self.fc(x)


class NaNLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x)
        return torch.cat([out[:1] * float("nan"), out[1:]])


def _compute(net: nn.Module, build=lambda q: q.saliency(0)):
    return build(ia.model(net.eval()).on(_x())).compute()


def test_inference_mode_says_how_to_leave_it():
    q = ia.model(nn.Linear(4, 3).eval()).on(_x()).saliency(0)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="attribution needs gradients"):
        q.compute()
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"inference_mode\(False\)"):
        ia.model(nn.Linear(4, 3).eval()).on(_x()).saliency(0).compute()
    with torch.inference_mode(), torch.inference_mode(False):
        q.compute()  # the way out works


def test_integer_logits_are_named():
    with pytest.raises(TypeError, match=r"model: returns outputs of dtype torch\.int64"):
        _compute(IntegerLogits())


def test_a_forward_under_no_grad_is_named():
    with pytest.raises(ValueError, match=r"do not depend differentiably on its input.*no_grad"):
        _compute(NoGradForward())
    with pytest.raises(ValueError, match=r"layer 'inner' ran with gradients disabled"):
        _compute(NoGradLayer(), lambda q: q.layer("inner").saliency(0))


def test_a_layer_off_the_path_to_the_output_gets_zeros():
    # It runs, but its output never reaches the scores: its attributions are zero, alone or
    # beside requests that do reach them (issue 13), rather than autograd's "element 0 of
    # tensors does not require grad".
    for build in (
        lambda q: q.layer("side").saliency(0),
        lambda q: q.layer("side").input_x_gradient("all"),
        lambda q: q.layer("side").integrated_gradients(0, steps=4),
    ):
        result = _compute(SideBranch(), build)
        assert result.sizes["feature"] == 2 and float(abs(result).max()) == 0.0
    q = ia.model(SideBranch().eval()).on(_x())
    side, inputs = ia.compute(q.layer("side").saliency(0), q.saliency(0))
    assert float(abs(side).max()) == 0.0 and float(abs(inputs).max()) > 0


def test_callable_targets_with_integer_or_detached_scores_or_no_argument():
    net = nn.Linear(4, 3)
    with pytest.raises(TypeError, match=r"target: .*floating-point scores.*torch\.int64"):
        _compute(net, lambda q: q.saliency(lambda out: out.argmax(1)))
    with pytest.raises(ValueError, match="target: the callable target's scores do not depend"):
        _compute(net, lambda q: q.saliency(lambda out: out[:, 0].detach()))
    with pytest.raises(TypeError, match=r"target: .*cannot take that one argument"):
        _compute(net, lambda q: q.saliency(lambda: 0))


def test_meta_and_lazy_models_and_meta_or_empty_inputs():
    with pytest.raises(ValueError, match="model: its parameter 'weight' is on the meta device"):
        _compute(nn.Linear(4, 3, device="meta"))
    with pytest.raises(ValueError, match=r"submodule '0' \(LazyLinear\) has uninitialised"):
        _compute(nn.Sequential(nn.LazyLinear(3)))
    with pytest.raises(ValueError, match="inputs: the tensor is on the meta device"):
        ia.model(nn.Linear(4, 3).eval()).on(torch.rand(2, 4, device="meta"))
    with pytest.raises(ValueError, match=r"inputs: shape \(2, 0, 4\) has a feature dimension"):
        ia.model(nn.Linear(4, 3).eval()).on(torch.rand(2, 0, 4))


def test_a_model_converted_after_the_query_was_built():
    net = nn.Linear(4, 3).eval()
    q = ia.model(net).on(_x()).saliency(0)
    net.double()
    with pytest.raises(
        TypeError, match=r"torch\.float64 but the query's inputs are torch\.float32"
    ):
        q.compute()


def test_nan_outputs_warn():
    with pytest.warns(UserWarning, match="3 of its outputs at the inputs are NaN") as caught:
        _compute(NaNLogits(), lambda q: q.saliency("pred"))
    assert caught[0].filename == __file__  # points at the user's call


@pytest.mark.parametrize(
    ("target", "argument"),
    [
        (lambda: 10**30, "target"),
        (lambda: [10**30, 0, 1], "target"),
        (lambda: ia.classes([0, 10**30]), "classes"),
    ],
    ids=["index", "list", "classes"],
)
def test_huge_class_indices_are_out_of_range_not_an_overflow(target, argument):
    # Refused when the target is built (the API side), before any pass runs.
    with pytest.raises(ValueError, match=rf"^{argument}: class about 10\^30 is out of range"):
        _compute(nn.Linear(4, 3), lambda q: q.saliency(target()))
