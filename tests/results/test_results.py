"""Labelled results: dims, coordinates and attributes for every kind of target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import algebra as ia

CLASSES = ["cat", "dog", "emu", "fox", "gnu"]


@pytest.fixture
def q(cnn, images):
    return ia.model(cnn, name="cnn", classes=CLASSES).on(
        images, labels=[4, 3, 2, 1], ids=["a", "b", "c", "d"]
    )


def _logits(cnn, images):
    with torch.no_grad():
        return cnn(images)


def test_image_dims_and_sample_coordinates(q, cnn, images):
    r = q.saliency("pred").compute()
    assert r.dims == ("sample", "channel", "y", "x")
    assert list(r.sample.values) == ["a", "b", "c", "d"]
    pred = _logits(cnn, images).argmax(1).numpy()
    np.testing.assert_array_equal(r.pred.values, pred)
    np.testing.assert_array_equal(r["class"].values, pred)
    np.testing.assert_array_equal(r.label.values, [4, 3, 2, 1])
    assert list(r.class_name.values) == [CLASSES[i] for i in pred]
    assert r.name == "saliency"


def test_label_and_int_and_per_sample_targets(q):
    np.testing.assert_array_equal(q.saliency("label").compute()["class"].values, [4, 3, 2, 1])
    np.testing.assert_array_equal(q.saliency(2).compute()["class"].values, [2, 2, 2, 2])
    per_sample = q.saliency(torch.tensor([0, 1, 0, 1])).compute()
    np.testing.assert_array_equal(per_sample["class"].values, [0, 1, 0, 1])
    assert "target" not in per_sample.dims


def test_all_target_has_class_index_and_names(q):
    r = q.input_x_gradient("all").compute()
    assert r.dims == ("sample", "target", "channel", "y", "x")
    np.testing.assert_array_equal(r.target.values, np.arange(5))
    assert r["class"].dims == ("target",)
    assert list(r.class_name.values) == CLASSES


def test_explicit_classes_target(q):
    r = q.saliency(ia.classes([3, 1])).compute()
    np.testing.assert_array_equal(r.target.values, [3, 1])
    assert list(r.class_name.values) == ["fox", "dog"]
    xr.testing.assert_allclose(
        r.sel(target=1, drop=True), q.saliency(1).compute().drop_vars(["class", "class_name"])
    )


def test_topk_ranks_and_per_sample_classes(q, cnn, images):
    r = q.saliency(ia.topk(3)).compute()
    assert r.dims[:2] == ("sample", "target")
    np.testing.assert_array_equal(r.target.values, [0, 1, 2])
    assert r["class"].dims == ("sample", "target")
    expected = _logits(cnn, images).topk(3, dim=1).indices.numpy()
    np.testing.assert_array_equal(r["class"].values, expected)
    assert r.class_name.dims == ("sample", "target")


def test_callable_target_has_no_class_coordinate(q):
    def total(out: torch.Tensor) -> torch.Tensor:
        return out.sum(dim=1)

    r = q.saliency(total, abs=False).compute()
    assert (
        "class" not in r.coords
        and r.attrs["target"] == "test_callable_target_has_no_class_coordinate.<locals>.total"
    )
    parts = q.saliency("all", abs=False).compute().sum("target")
    np.testing.assert_allclose(r.values, parts.values, rtol=1e-5, atol=1e-6)


def test_layer_result_dims_and_attrs(q):
    r = q.layer("relu1").integrated_gradients("pred", steps=4, method="riemann_middle").compute()
    assert r.dims == ("sample", "channel", "y", "x") and r.shape == (4, 4, 8, 8)
    assert r.attrs == {
        "method": "integrated_gradients",
        "target": "'pred'",
        "model": "cnn",
        "layer": "relu1",
        "steps": 4,
        "integration": "riemann_middle",
        "baseline": 0.0,
    }
    flat = q.layer("flat").saliency(0).compute()
    assert flat.dims == ("sample", "feature")


def test_dims_override_and_default_names(mlp, features):
    r = ia.model(mlp).on(features, dims=["gene"]).saliency(0).compute()
    assert r.dims == ("sample", "gene")
    seq = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)).eval()
    r3 = ia.model(seq).on(torch.rand(2, 3, 4)).saliency(0).compute()
    assert r3.dims == ("sample", "dim_1", "dim_2")


def test_tensor_baseline_recorded_by_shape(q, images):
    r = q.integrated_gradients(0, steps=2, baseline=torch.zeros(1, 3, 8, 8)).compute()
    assert r.attrs["baseline"] == "tensor[1, 3, 8, 8]"


def test_aligned_results_build_a_dataset(q):
    results = ia.compute({"sal": q.saliency("pred"), "ixg": q.input_x_gradient("pred")})
    ds = xr.Dataset(results)
    assert set(ds.data_vars) == {"sal", "ixg"}


def test_results_are_numpy_backed_and_float32(q):
    r = q.saliency(0).compute()
    assert isinstance(r.values, np.ndarray) and r.dtype == np.float32
