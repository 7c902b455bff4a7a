"""NeuroInspect on a model that takes several inputs: data as ``((x1, x2), labels)`` or
``({"name": x, ...}, labels)``. Importance and mitigation equal those of the same model
behind one packed input; the lazy counterfactual neurons equal the kernels' on the tuple."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import algebra as ia
from algebra.kernels.counterfactual import counterfactual_neurons as kernel_neurons

from .test_several_inputs import TwoInputs

pytestmark = pytest.mark.usefixtures("one_thread")


class Packed(nn.Module):
    """``TwoInputs`` behind one input: the features, then the flattened image."""

    def __init__(self, inner: TwoInputs) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        return self.inner(packed[:, :6], packed[:, 6:].reshape(-1, 3, 4, 4))


@pytest.fixture
def net() -> TwoInputs:
    return TwoInputs().eval()


@pytest.fixture
def data() -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(60, 6, generator=g), torch.randn(60, 3, 4, 4, generator=g))
    return x, torch.randint(0, 4, (60,), generator=g)


def packed(x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.cat([x[0], x[1].flatten(1)], 1)


def test_importance_of_a_tuple_or_a_dict_equals_one_packed_input(net, data):
    (features, image), y = data
    one = ia.model(Packed(net).eval()).neuron_importance(2, (packed((features, image)), y))
    as_tuple = ia.model(net).neuron_importance(2, ((features, image), y))
    as_dict = ia.model(net).neuron_importance(2, ({"image": image, "features": features}, y))
    unlabelled = ia.model(net).neuron_importance(2, ((features, image), None))
    np.testing.assert_allclose(as_tuple.values, one.values, rtol=1e-6)
    for other in (as_dict, unlabelled):
        xr.testing.assert_identical(other, as_tuple)
    assert as_tuple.attrs["head"] == "head" and one.attrs["head"] == "inner.head"


def test_mitigation_of_a_tuple_equals_one_packed_input(net, data, assert_untouched):
    x, y = data
    ours = ia.model(net).mitigate([0, 3], 1, (x, y), epochs=3)
    assert_untouched(net)
    one = ia.model(Packed(net).eval()).mitigate([0, 3], 1, (packed(x), y), epochs=3)
    torch.testing.assert_close(ours.module.head.weight, one.module.inner.head.weight)
    for name in ("overall", "per_class", "worst_class"):
        np.testing.assert_allclose(ours.report[name].values, one.report[name].values)
    with torch.no_grad():  # the edited copy takes the same two inputs
        assert ours.module(*x).shape == (60, 4)


def test_counterfactual_neurons_of_a_packed_query_equal_the_kernels(net, data):
    x, y = data
    with torch.no_grad():
        wrong = net(*x).argmax(1) != y
    cls = int(torch.bincount(y[wrong], minlength=4).argmax())
    ds = ia.model(net).on(x, labels=y).counterfactual_neurons(cls, top=2).compute()
    ref = kernel_neurons(net, (x, y), cls, top=2)
    np.testing.assert_array_equal(ds.position.values, ref.sample.numpy())
    np.testing.assert_allclose(ds.delta.values, ref.delta.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ds.votes.values, ref.votes.kept.numpy())


def test_inputs_of_different_lengths_are_not_a_batch(net, data):
    (features, image), y = data
    with pytest.raises(ValueError, match=r"data: the inputs have \[60, 5\] rows; each of"):
        ia.model(net).neuron_importance(0, ((features, image[:5]), y))
    with pytest.raises(ValueError, match="data: inputs have 60 rows but labels have 5"):
        ia.model(net).neuron_importance(0, ((features, image), y[:5]))
