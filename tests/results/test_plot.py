"""The ``.ia`` accessor: heat-map figures and netCDF files of results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

import algebra as ia
import algebra.results.plot  # registers the accessor
from algebra.results.netcdf import serialisable

CLASSES = ["ant", "bee", "cat", "dog", "eel"]


def _panels(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_label().startswith("panel")]


def _query(net: nn.Module, images: torch.Tensor, **kwargs) -> ia.Query:
    return ia.model(net, **kwargs).on(images, labels=[0, 1, 2, 3])


def test_one_panel_per_sample_and_target(cnn: nn.Sequential, images: torch.Tensor, tmp_path):
    result = _query(cnn, images, classes=CLASSES).saliency("all").compute()
    fig = result.ia.plot()
    assert isinstance(fig, Figure) and isinstance(fig.canvas, FigureCanvasAgg)
    panels = _panels(fig)
    assert len(panels) == 4 * 5
    assert len(fig.axes) == len(panels) + 1  # one shared colorbar
    title = panels[1].get_title()  # sample 0, second target
    assert "sample 0" in title and "class 1 bee" in title and "label 0" in title
    assert "pred" in title
    image = panels[0].get_images()[0]
    assert image.get_array().shape == (8, 8)  # channels summed
    assert "summed over channel" in fig.get_suptitle()
    fig.savefig(tmp_path / "map.png", dpi=40)
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"


def test_colormap_diverges_around_zero_only_for_both_signs(
    cnn: nn.Sequential, images: torch.Tensor
):
    q = _query(cnn, images)
    signed = q.saliency("pred", abs=False).compute().ia.plot()
    norm = _panels(signed)[0].get_images()[0].norm
    assert _panels(signed)[0].get_images()[0].get_cmap().name == "RdBu_r"
    assert norm.vmin == -norm.vmax
    magnitude = q.saliency("pred").compute().ia.plot()
    image = _panels(magnitude)[0].get_images()[0]
    assert image.get_cmap().name == "viridis" and image.norm.vmin >= 0
    own = q.saliency("pred", abs=False).compute().ia.plot(shared=False)
    assert len(own.axes) == 2 * len(_panels(own))  # a colorbar per panel


def test_overlay_on_rgb_and_grey_inputs(cnn: nn.Sequential, images: torch.Tensor):
    result = _query(cnn, images).saliency(ia.topk(2)).compute()
    fig = result.ia.plot(images, alpha=0.4)
    assert len(_panels(fig)) == 4 * 2
    under, heat = _panels(fig)[0].get_images()
    assert under.get_array().shape == (8, 8, 3)
    assert under.get_array().min() >= 0.0 and under.get_array().max() <= 1.0
    assert heat.get_alpha() == 0.4
    for grey in (images[:, :1], images[:, 0].numpy()):  # [N, 1, H, W] and [N, H, W]
        under, _ = _panels(result.ia.plot(grey))[0].get_images()
        assert under.get_array().shape == (8, 8) and under.get_cmap().name == "gray"


def test_layer_map_is_stretched_over_the_image(cnn: nn.Sequential, images: torch.Tensor):
    result = _query(cnn, images).layer("pool").saliency("pred").compute()  # [4, 6, 2, 2]
    fig = result.ia.plot(images)
    under, heat = _panels(fig)[0].get_images()
    assert heat.get_array().shape == (2, 2)
    assert heat.get_extent() == under.get_extent() == [0.0, 8.0, 8.0, 0.0]
    assert "layer 'pool'" in fig.get_suptitle()


def test_vector_results_are_strips(mlp: nn.Sequential, features: torch.Tensor):
    result = ia.model(mlp).on(features).saliency(ia.topk(2)).compute()
    fig = result.ia.plot()
    panels = _panels(fig)
    assert len(panels) == 5 * 2
    assert panels[0].get_images()[0].get_array().shape == (1, 6)
    with pytest.raises(ValueError, match="two spatial dims"):
        result.ia.plot(features)


def test_samples_are_capped(cnn: nn.Sequential, images: torch.Tensor):
    result = _query(cnn, images).saliency("all").compute()
    fig = result.ia.plot(images, max_samples=2, max_targets=3)
    assert len(_panels(fig)) == 2 * 3
    assert "first 2 of 4 samples" in fig.get_suptitle()
    assert "first 3 of 5 targets" in fig.get_suptitle()


def test_side_dim_gives_a_column_per_side():
    rng = np.random.default_rng(0)
    result = xr.DataArray(
        rng.normal(size=(2, 2, 3, 4, 4)),
        dims=("sample", "side", "target", "y", "x"),
        coords={"side": ["left", "right"], "target": [0, 1, 2]},
    )
    fig = result.ia.plot()
    panels = _panels(fig)
    assert len(panels) == 2 * 3 * 2
    assert "(left)" in panels[0].get_title() and "(right)" in panels[1].get_title()
    assert "target 0" in panels[1].get_title() and "target 1" in panels[2].get_title()


def test_bad_arguments_raise_value_error(cnn: nn.Sequential, images: torch.Tensor):
    result = _query(cnn, images).saliency("pred").compute()
    with pytest.raises(ValueError, match=r"inputs have 3 images but the result has 4"):
        result.ia.plot(images[:3])
    with pytest.raises(ValueError, match=r"inputs must be images \[N, C, H, W\]"):
        result.ia.plot(images.reshape(4, 12, 4, 4))
    with pytest.raises(ValueError, match="'sample' dim"):
        result.sum("sample").ia.plot()
    with pytest.raises(ValueError, match="empty"):
        result.isel(sample=slice(0, 0)).ia.plot()


def test_netcdf_round_trip_keeps_values_coords_and_class_names(
    cnn: nn.Sequential, images: torch.Tensor, tmp_path: Path
):
    q = ia.model(cnn, classes=CLASSES).on(images, labels=[0, 1, 2, 3], ids=["a", "b", "c", "d"])
    for result in (q.saliency(ia.topk(2)).compute(), q.integrated_gradients("pred").compute()):
        path = result.ia.to_netcdf(tmp_path / "result.nc")
        assert path == tmp_path / "result.nc"
        with xr.open_dataarray(path) as back:
            back.load()
        assert back.equals(result)  # values and coordinates
        assert set(back.coords) == set(result.coords)
        np.testing.assert_array_equal(back.class_name.values, result.class_name.values)
        assert list(back.sample.values) == ["a", "b", "c", "d"]
        assert back.name == result.name
        expected = {k: int(v) if isinstance(v, bool) else v for k, v in result.attrs.items()}
        assert back.attrs == expected  # bools come back as 0/1
    assert isinstance(result.attrs.get("steps", True), int)  # the result is not changed


def test_serialisable_converts_what_netcdf3_cannot_hold(tmp_path: Path):
    result = xr.DataArray(
        np.arange(6, dtype=np.float16).reshape(2, 3),
        dims=("sample", "feature"),
        coords={
            "sample": np.array([2**40, 7]),
            "label": ("sample", np.array([200, 3], dtype=np.uint8)),
            "class_name": ("sample", np.array(["café", None], dtype=object)),
        },
        attrs={"abs": np.bool_(True), "layer": None, "params": {"k": 2}, "shape": (2, 3)},
    )
    path = result.ia.to_netcdf(tmp_path / "odd.nc")
    with xr.open_dataarray(path) as back:
        back.load()
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.values, result.values.astype(np.float32))
    assert back.sample.values.tolist() == [2**40, 7]
    assert back.label.values.tolist() == [200, 3]
    assert back.class_name.values.tolist() == ["café", ""]
    assert back.attrs["abs"] == 1 and back.attrs["layer"] == ""
    assert back.attrs["params"] == "{'k': 2}" and list(back.attrs["shape"]) == [2, 3]
    with pytest.raises(ValueError, match="beyond 2\\*\\*53"):
        serialisable(xr.DataArray(np.zeros(1), dims="sample", coords={"sample": [2**60]}))
