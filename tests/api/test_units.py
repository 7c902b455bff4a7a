"""Units of a layer as targets through the public API: Captum's NeuronGradient,
NeuronIntegratedGradients and NeuronGuidedBackprop (float64, rtol 1e-5), every unit from one
batched backward, the unit dim, and unit indices checked against the layer when built."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch

import algebra as ia

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning")

CHANNELS = [(c, slice(None), slice(None)) for c in range(6)]


def test_neuron_gradient_of_every_channel(cnn64, images64, parity64):
    result = ia.model(cnn64).on(images64).saliency(ia.units("conv2"), abs=False).compute()
    assert result.dims == ("sample", "unit", "channel", "y", "x")
    assert result.unit.values.tolist() == list(range(6))
    for u, selector in enumerate(CHANNELS):
        theirs = ca.NeuronGradient(cnn64, cnn64.conv2).attribute(images64.clone(), selector)
        parity64(result.isel(unit=u), theirs)


@pytest.mark.parametrize("multiply", [True, False])
def test_neuron_integrated_gradients(cnn64, images64, parity64, multiply):
    units = [1, (0, 2, 5), (3, slice(1, 3), 2)]
    result = (
        ia.model(cnn64)
        .on(images64)
        .integrated_gradients(ia.units("relu1", units), steps=8, multiply_by_inputs=multiply)
        .compute()
    )
    selectors = [(1, slice(None), slice(None)), (0, 2, 5), (3, slice(1, 3), 2)]
    for u, selector in enumerate(selectors):
        theirs = ca.NeuronIntegratedGradients(
            cnn64, cnn64.relu1, multiply_by_inputs=multiply
        ).attribute(images64.clone(), selector, n_steps=8)
        parity64(result.isel(unit=u), theirs)
    assert "delta" not in result.coords  # the delta explains model outputs, not units


@pytest.mark.parametrize("rule", ["guided_backprop", "deconvolution"])
def test_neuron_guided_backprop_and_deconvolution(cnn64, images64, parity64, rule):
    q = ia.model(cnn64).on(images64)
    one = getattr(q, rule)(ia.unit("conv3", (2, 1, 3))).compute()
    every = getattr(q, rule)(ia.units("conv3")).compute()
    captum = ca.NeuronGuidedBackprop if rule == "guided_backprop" else ca.NeuronDeconvolution
    assert one.dims == ("sample", "channel", "y", "x")
    parity64(one, captum(cnn64, cnn64.conv3).attribute(images64.clone(), (2, 1, 3)))
    for u, selector in enumerate(CHANNELS):
        parity64(
            every.isel(unit=u), captum(cnn64, cnn64.conv3).attribute(images64.clone(), selector)
        )


def test_callable_units(mlp64, features64, parity64):
    q = ia.model(mlp64).on(features64)
    squares = q.saliency(ia.units("act", lambda a: a[:, :3] ** 2), abs=False).compute()
    first = q.saliency(ia.unit("act", lambda a: a[:, 0] ** 2), abs=False).compute()
    assert squares.sizes["unit"] == 3
    for u in range(3):
        theirs = ca.NeuronGradient(mlp64, mlp64.act).attribute(
            features64.clone(), lambda a, u=u: a[:, u] ** 2
        )
        parity64(squares.isel(unit=u), theirs)
    parity64(first, torch.from_numpy(squares.isel(unit=0).values))


def test_units_and_classes_share_one_forward_and_backward(cnn, images, counting, passes):
    net = counting(cnn)
    q = ia.model(net, classes=list("abcde")).on(images)
    exprs = [
        q.saliency(ia.units("net.conv2")),
        q.input_x_gradient(ia.units("net.conv2")),
        q.saliency(ia.unit("net.relu1", 3)),
        q.saliency("all"),
        q.layer("net.relu1").saliency(ia.units("net.conv2")),
    ]
    _, counted, planned = passes(net, exprs)
    # after one forward, a batched backward per source of scores: the 5 classes, conv2's 6
    # units, relu1's unit (each starts at its own layer)
    assert counted == planned == (1, 4, 3)
    _, counted, planned = passes(net, exprs, backward="sequential")
    assert counted == planned == (1, 4, 5 + 6 + 1)
    path = [
        q.integrated_gradients(ia.units("net.conv2"), steps=4),
        q.integrated_gradients(0, steps=4),
    ]
    _, counted, planned = passes(net, path)
    assert counted == planned == (2, 4 + 16 + 1, 2)  # the units, then class 0


def test_one_backward_equals_one_per_unit(cnn, images):
    q = ia.model(cnn).on(images)
    together = q.saliency(ia.units("conv2"), abs=False).compute()
    for c in range(6):
        alone = q.saliency(ia.unit("conv2", c), abs=False).compute()
        torch.testing.assert_close(
            torch.from_numpy(together.isel(unit=c).values), torch.from_numpy(alone.values)
        )


@pytest.mark.parametrize(
    ("target", "error", "match"),
    [
        (
            lambda: ia.unit("conv2", 6),
            ValueError,
            "unit: index 6 is outside layer 'conv2''s dim 0 of size 6",
        ),
        (
            lambda: ia.unit("conv2", (0, 8, 0)),
            ValueError,
            "unit: index 8 is outside layer 'conv2''s dim 1",
        ),
        (
            lambda: ia.units("conv2", [1, (0, 0, 0, 0)]),
            ValueError,
            "has 4 entries, but layer 'conv2''s activation",
        ),
        (
            lambda: ia.units("conv9"),
            ValueError,
            "unit: the model has no layer 'conv9'. Did you mean 'conv2'",
        ),
        (
            lambda: ia.unit("conv2", lambda a: a[:, :2].sum((2, 3))),
            ValueError,
            "unit: a callable unit must return one score",
        ),
        (
            lambda: ia.units("conv2", lambda a: a.sum()),
            ValueError,
            "unit: a callable unit must return \\[N\\] or \\[N, U\\]",
        ),
    ],
)
def test_bad_units_are_refused_when_built(cnn, images, assert_untouched, target, error, match):
    q = ia.model(cnn).on(images)
    with pytest.raises(error, match=match):
        q.saliency(target())
    assert_untouched(cnn)


def test_unit_specs_are_checked_without_a_model():
    with pytest.raises(TypeError, match="unit: expected an int"):
        ia.unit("b3", "a")
    with pytest.raises(ValueError, match="units: expected 'all', a callable or a non-empty list"):
        ia.units("b3", [])
    with pytest.raises(TypeError, match="layer: expected a layer name"):
        ia.units(3)
