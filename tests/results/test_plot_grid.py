"""Grids over any dims (``row=``, ``col=``), inputs beside or under the maps, images per
panel, titles with class names, ``to_png`` and ``ia.stack``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import algebra as ia

CLASSES = ["ant", "bee", "cat", "dog", "eel"]


def _panels(fig) -> list:
    return [ax for ax in fig.axes if ax.get_label().startswith("panel")]


def _signed(shape=(2, 3, 4, 4), dims=("sample", "layer", "y", "x")) -> xr.DataArray:
    rng = np.random.default_rng(0)
    return xr.DataArray(rng.normal(size=shape), dims=dims, coords={dims[1]: ["a", "b", "c"]})


def test_rows_and_cols_lay_out_any_dims():
    r = _signed()
    fig = r.ia.plot(row="layer", col="sample")
    labels = [ax.get_label() for ax in _panels(fig)]
    assert labels[:3] == [
        "panel layer=0 sample=0",
        "panel layer=0 sample=1",
        "panel layer=1 sample=0",
    ]
    assert _panels(fig)[2].get_ylabel() == "layer b" and "layer" not in _panels(fig)[2].get_title()
    assert _panels(fig)[3].get_ylabel() == ""  # only the first column says
    assert "summed over layer" in r.ia.plot(row="sample").get_suptitle()  # a feature dim
    r.attrs["stacked"] = "layer"  # as ia.stack marks it: a panel dim by default
    transposed = r.ia.plot(row="sample")  # the other panel dims go across
    assert _panels(transposed)[1].get_label() == "panel sample=0 layer=1"
    assert _panels(r.ia.plot())[1].get_label() == "panel sample=0 layer=1"
    assert len(_panels(r.ia.plot(col=["sample", "layer"]))) == 6


def test_a_dim_left_without_a_place_or_named_twice_is_refused():
    r = _signed((2, 3, 2, 4, 4), ("sample", "layer", "target", "y", "x"))
    with pytest.raises(ValueError, match=r"row and col leave \['target'\] without a place"):
        r.ia.plot(row="layer", col="sample")
    r.isel(target=[0]).ia.plot(row="layer", col="sample")  # size one: fine
    with pytest.raises(ValueError, match="row and col both name"):
        r.ia.plot(row="layer", col=["layer", "sample"])
    with pytest.raises(ValueError, match="col: the result has no dim 'method'"):
        r.ia.plot(row="layer", col="method")


def test_signed_maps_diverge_around_zero_with_any_colormap(cnn, images):
    r = ia.model(cnn).on(images).saliency("pred", abs=False).compute()
    norm = _panels(r.ia.plot(cmap="PuOr"))[0].get_images()[0].norm
    assert norm.vmin == -norm.vmax
    assert _panels(r.ia.plot(cmap="PuOr"))[0].get_images()[0].get_cmap().name == "PuOr"


def test_inputs_beside_the_maps(cnn, images):
    r = ia.model(cnn).on(images, labels=[0, 1, 2, 3]).saliency(ia.topk(2)).compute()
    fig = r.ia.plot(images, overlay=False)
    inputs = [ax for ax in fig.axes if ax.get_label().startswith("input")]
    assert len(inputs) == 4 and len(_panels(fig)) == 8
    assert inputs[0].get_images()[0].get_array().shape == (8, 8, 3)
    assert all(len(ax.get_images()) == 1 for ax in _panels(fig))  # maps alone
    assert "input" in inputs[0].get_title()
    with pytest.raises(ValueError, match="overlay=False draws each sample's input"):
        r.mean("sample").ia.plot(images, overlay=False, row="target")


def test_each_panel_gets_its_own_image(cnn, images):
    m = ia.model(cnn)
    other = 1 - images
    maps = ia.stack(
        {"clean": m.on(images).saliency("pred").compute(),
         "flipped": m.on(other).saliency("pred").compute()},
        "input",
    )  # fmt: skip
    pictures = xr.DataArray(
        torch.stack([images, other]).numpy(), dims=("input", "sample", "channel", "y", "x")
    )
    fig = maps.ia.plot(pictures, row="sample", col="input")
    under = _panels(fig)[1].get_images()[0].get_array()  # sample 0, flipped
    expected = other[0].permute(1, 2, 0).numpy()
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(under, expected, atol=1e-6)
    with pytest.raises(ValueError, match="inputs: a DataArray of images needs"):
        maps.ia.plot(pictures.isel(channel=0, y=0), row="sample", col="input")


def test_titles_name_classes_and_labels(cnn, images):
    q = ia.model(cnn, classes=CLASSES).on(images, labels=[0, 1, 2, 3])
    r = q.saliency("all").compute()
    title = _panels(r.ia.plot())[6].get_title()  # sample 1, class 1
    assert "class 1 bee" in title and "label 1 (bee)" in title and "pred" in title
    assert "title of mine" in r.ia.plot(title="title of mine").get_suptitle()


def test_to_png_writes_the_figure(cnn, images, tmp_path):
    r = ia.model(cnn).on(images).saliency("pred").compute()
    path = r.ia.to_png(tmp_path / "maps.png", inputs=images, dpi=50)
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(TypeError):
        r.ia.to_png(tmp_path / "bad.png", rows="sample")


def test_stack_resamples_layers_and_keeps_differing_coords(cnn, images):
    m = ia.model(cnn)
    q = m.on(images, labels=[0, 1, 2, 3])
    maps = ia.compute({name: q.layer(name).input_x_gradient("pred") for name in ["conv1", "pool"]})
    grid = ia.stack(maps, "layer")
    assert grid.sizes == {"layer": 2, "sample": 4, "y": 8, "x": 8}
    pooled = maps["pool"].sum("channel").values  # 2 x 2, each value repeated 4 x 4
    np.testing.assert_allclose(
        grid.sel(layer="pool").values[:, :4, :4],
        np.repeat(np.repeat(pooled[:, :1, :1], 4, 1), 4, 2),
    )
    assert "layer" not in grid.attrs and grid.attrs["method"] == "input_x_gradient"
    one = xr.DataArray(
        np.zeros((2, 4, 4)),
        dims=("sample", "y", "x"),
        coords={"pred": ("sample", [1, 2]), "label": ("sample", [1, 1])},
    )
    other = one.assign_coords(pred=("sample", [1, 0])).drop_vars("label")
    pair = ia.stack({"benign": one, "adversarial": other}, "input")
    assert pair.pred.dims == ("input", "sample") and pair.pred.values.tolist() == [[1, 2], [1, 0]]
    assert "label" not in pair.coords  # the adversarial side has none
    assert pair.input.values.tolist() == ["benign", "adversarial"]
    small = ia.stack(maps, "layer", size=(2, 2))
    assert small.sizes["y"] == 2
    scaled = ia.stack(maps, "layer", normalize=True)
    np.testing.assert_allclose(abs(scaled).max(["y", "x"]).values, 1.0)
    np.testing.assert_allclose(
        scaled.sel(layer="pool"),
        grid.sel(layer="pool") / abs(grid.sel(layer="pool")).max(["y", "x"]),
    )


def test_stack_refuses_what_does_not_stack(cnn, images, mlp, features):
    r = ia.model(cnn).on(images).saliency("pred").compute()
    with pytest.raises(ValueError, match="results: expected a non-empty dict"):
        ia.stack({}, "layer")
    with pytest.raises(TypeError, match="dim: expected"):
        ia.stack({"a": r}, 3)
    with pytest.raises(ValueError, match="dim: 'a' already has a dim 'sample'"):
        ia.stack({"a": r}, "sample")
    vector = ia.model(mlp).on(features).saliency("pred").compute()
    with pytest.raises(ValueError, match="stack needs maps with two spatial dims"):
        ia.stack({"v": vector}, "method")
    with pytest.raises(ValueError, match="their panel dims differ"):
        ia.stack({"a": r, "b": r.isel(sample=0)}, "method")
