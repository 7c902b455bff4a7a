"""The verbs var and square on device frames: equal to xarray's, in any chain."""

from __future__ import annotations

import numpy as np
import pytest

import algebra as ia


@pytest.mark.parametrize("dims", ["sample", ["channel", "y"], None])
def test_var_equals_xarrays_population_variance(cnn, images, dims):
    e = ia.model(cnn).on(images).saliency("all", abs=False)
    plain, var = ia.compute(e, e.var(dims))
    expected = plain.var(dims)  # xarray's default is the population variance (ddof=0)
    assert var.dims == expected.dims
    np.testing.assert_allclose(var.values, expected.values, rtol=1e-5, atol=1e-12)


def test_square_then_reduce(cnn, images):
    e = ia.model(cnn).on(images).input_x_gradient(ia.topk(2))
    plain, squared = ia.compute(e, e.square().mean(["y", "x"]))
    np.testing.assert_allclose(squared.values, (plain**2).mean(["y", "x"]).values, rtol=1e-5)
    assert squared.attrs["operations"] == "square() | mean(['y', 'x'])"


def test_vargrad_is_the_mean_square_minus_the_squared_mean(cnn, images):
    noisy = ia.model(cnn).on(images).noise(6, seed=1).saliency(0, abs=False)
    var, sq, mean = ia.compute(
        noisy.var("noise"), noisy.square().mean("noise"), noisy.mean("noise")
    )
    np.testing.assert_allclose(var.values, sq.values - mean.values**2, rtol=1e-4, atol=1e-10)


def test_var_of_an_unknown_dim_names_close_matches(cnn, images):
    e = ia.model(cnn).on(images).noise(2, seed=0).saliency(0)
    with pytest.raises(ValueError, match="Did you mean 'noise'"):
        e.var("nosie").compute()


def test_describe_and_graph(cnn, images):
    e = ia.model(cnn).on(images).noise(3, 0.1, seed=2).saliency(0).square().var("noise")
    assert repr(e).endswith(".square().var(['noise']))")
    assert [d["op"] for _, d in e.graph().nodes(data=True)] == [
        "source",
        "noise",
        "attribution",
        "square",
        "var",
    ]
