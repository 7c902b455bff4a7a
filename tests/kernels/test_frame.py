"""Frame operations on small hand-made frames, checked against xarray and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from algebra.kernels import combine as pairs
from algebra.kernels import frame as ops
from algebra.kernels import predicates
from algebra.kernels.frame import Frame

CPU = torch.device("cpu")


def make_frame() -> Frame:
    """Four samples, two targets (topk-like), three features."""
    data = torch.arange(24, dtype=torch.float64).reshape(4, 2, 3) - 11.5
    data[1, 0] = torch.tensor([5.0, -7.0, 2.0])
    coords = {
        "sample": (("sample",), np.array(["a", "b", "c", "d"])),
        "pred": (("sample",), np.array([2, 0, 2, 1])),
        "label": (("sample",), np.array([1, 0, 2, 1])),
        "target": (("target",), np.array([0, 1])),
        "class": (("sample", "target"), np.array([[2, 0], [0, 1], [2, 1], [1, 2]])),
    }
    columns = {
        "pred": torch.tensor([2, 0, 2, 1]),
        "label": torch.tensor([1, 0, 2, 1]),
        "score": torch.tensor([0.9, 0.4, 0.6, 0.2]),
        "correct": torch.tensor([False, True, True, True]),
        "id": np.array(["a", "b", "c", "d"]),
    }
    return Frame(data, ("sample", "target", "feature"), coords, ("feature",), columns, {"k": 1})


def as_xarray(frame: Frame) -> xr.DataArray:
    return xr.DataArray(
        frame.data.numpy(),
        dims=frame.dims,
        coords={k: (d, v) for k, (d, v) in frame.coords.items()},
    )


def assert_like_xarray(frame: Frame, expected: xr.DataArray) -> None:
    xr.testing.assert_allclose(as_xarray(frame), expected)
    assert sorted(frame.coords) == sorted(expected.coords)


# ---------------------------------------------------------------------------------------
# isel, positions
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "indexers",
    [
        {"sample": 1},
        {"sample": -1},
        {"sample": [3, 0]},
        {"sample": np.array([0, -2])},
        {"sample": slice(1, 3)},
        {"target": 1, "feature": [2, 0]},
        {"feature": slice(None, None, 2)},
        {"sample": np.int64(2), "target": 0},
    ],
    ids=repr,
)
def test_isel_equals_xarray(indexers):
    f = make_frame()
    got = ops.isel(f, indexers)
    assert_like_xarray(got, as_xarray(f).isel(indexers))
    assert got.features == tuple(d for d in ("feature",) if d in got.dims)
    assert got.attrs == f.attrs


def test_isel_carries_the_columns_along_the_samples():
    f = make_frame()
    got = ops.isel(f, {"sample": [3, 1]})
    assert got.columns["pred"].tolist() == [1, 0]
    assert got.columns["score"].tolist() == pytest.approx([0.2, 0.4])
    assert got.columns["id"].tolist() == ["d", "b"]
    assert got.columns["correct"].tolist() == [True, True]
    assert ops.isel(f, {"sample": 0}).columns == {}  # no sample dim, no per-sample columns
    assert ops.isel(f, {"target": 0}).columns is f.columns


def test_isel_errors():
    f = make_frame()
    with pytest.raises(IndexError, match="position 4 is out of range for a dim of size 4"):
        ops.isel(f, {"sample": 4})
    with pytest.raises(IndexError, match="out of range"):
        ops.isel(f, {"target": [0, -3]})
    with pytest.raises(TypeError, match="isel takes integer positions"):
        ops.isel(f, {"sample": "a"})
    with pytest.raises(ValueError, match=r"no dim 'targets'.*Did you mean 'target'"):
        ops.isel(f, {"targets": 0})


def test_positions_by_label():
    f = make_frame()
    assert ops.positions(f, "sample", "c") == 2
    assert ops.positions(f, "sample", ["d", "a"]) == [3, 0]
    assert ops.positions(f, "sample", np.array(["b"])) == [1]
    assert ops.positions(f, "target", 1) == 1
    assert ops.positions(f, "feature", [2, 0]) == [2, 0]  # no index coordinate: positions
    with pytest.raises(KeyError, match="sample='e' is not in the result"):
        ops.positions(f, "sample", "e")
    with pytest.raises(ValueError, match="sel: the result has no dim 'samples'"):
        ops.positions(f, "samples", "a")


# ---------------------------------------------------------------------------------------
# reduce, normalize, topk_features
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["mean", "sum"])
@pytest.mark.parametrize("dims", ["sample", "target", ["sample", "feature"], None])
def test_reduce_equals_xarray(how, dims):
    f = make_frame()
    got = ops.reduce(f, dims, how)
    expected = getattr(as_xarray(f), how)(dims)
    assert_like_xarray(got, expected)
    gone = set(f.dims) if dims is None else {dims} if isinstance(dims, str) else set(dims)
    assert got.features == tuple(d for d in f.features if d not in gone)
    assert (got.columns == {}) == ("sample" in gone)


def test_reduce_unknown_dim():
    with pytest.raises(ValueError, match=r"no dim 'feat'.*Did you mean 'feature'"):
        ops.reduce(make_frame(), "feat", "mean")


def _over_last(v: np.ndarray, how: str) -> np.ndarray:
    if how == "max":
        scale = np.abs(v).max(-1, keepdims=True)
        return np.divide(v, scale, out=np.zeros_like(v), where=scale > 0)
    if how == "sum":
        scale = np.abs(v).sum(-1, keepdims=True)
        return np.divide(v, scale, out=np.zeros_like(v), where=scale > 0)
    centred = v - v.mean(-1, keepdims=True)
    scale = v.std(-1, keepdims=True)
    return np.divide(centred, scale, out=np.zeros_like(v), where=scale > 0)


@pytest.mark.parametrize("how", ["max", "sum", "zscore"])
def test_normalize_over_the_features_and_over_chosen_dims(how):
    f = make_frame()
    f.data[2, 1] = 0.0  # an all-zero map stays zero
    f.data[3, 0] = 4.0  # a constant map: zero after zscore, +-1/3 or 1 otherwise
    got = ops.normalize(f, None, how)
    expected = _over_last(f.data.numpy(), how)
    np.testing.assert_allclose(got.data.numpy(), expected, atol=1e-12)
    assert not got.data[2, 1].any()
    assert got.coords is f.coords and got.dims == f.dims
    # over (sample, feature): each target's maps over all samples and features together
    got = ops.normalize(f, ["sample", "feature"], how)
    moved = f.data.numpy().transpose(1, 0, 2).reshape(2, 12)
    expected = _over_last(moved, how).reshape(2, 4, 3).transpose(1, 0, 2)
    np.testing.assert_allclose(got.data.numpy(), expected, atol=1e-12)
    # over a dim that is not last: each (target, feature) column over the samples
    got = ops.normalize(f, "sample", how)
    expected = np.moveaxis(_over_last(np.moveaxis(f.data.numpy(), 0, -1), how), -1, 0)
    np.testing.assert_allclose(got.data.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("largest_abs", [True, False])
def test_topk_features(largest_abs):
    f = make_frame()
    got = ops.topk_features(f, 1, None, largest_abs)
    v = f.data.numpy()
    score = np.abs(v) if largest_abs else v
    keep = score == score.max(-1, keepdims=True)
    np.testing.assert_array_equal(got.data.numpy(), np.where(keep, v, 0))
    assert got.data[1, 0].tolist() == ([0.0, -7.0, 0.0] if largest_abs else [5.0, 0.0, 0.0])
    # two over (target, feature): per sample, among six values
    got = ops.topk_features(f, 2, ["target", "feature"], largest_abs).data.numpy()
    flat, kept = v.reshape(4, 6), got.reshape(4, 6)
    score = np.abs(flat) if largest_abs else flat
    threshold = np.sort(score, -1)[:, -2:-1]
    np.testing.assert_array_equal(kept, np.where(score >= threshold, flat, 0))
    assert ((kept != 0).sum(-1) == 2).all()
    with pytest.raises(ValueError, match="k: asked for 4 features, but each map has 3"):
        ops.topk_features(f, 4, None, largest_abs)


# ---------------------------------------------------------------------------------------
# group_reduce
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["mean", "sum"])
@pytest.mark.parametrize("key", ["label", "pred"])
def test_group_reduce_equals_xarray(how, key):
    f = make_frame()
    got = ops.group_reduce(f, key, how)
    expected = getattr(as_xarray(f).groupby(key), how)()
    assert_like_xarray(got, expected)
    assert got.dims == expected.dims and got.columns == {}
    assert got.features == f.features


def test_group_reduce_with_the_sample_dim_not_first_and_on_a_column():
    data = torch.arange(12, dtype=torch.float64).reshape(2, 3, 2)
    f = Frame(
        data,
        ("side", "sample", "x"),
        {
            "side": (("side",), np.array(["left", "right"])),
            "label": (("sample",), np.array([1, 0, 1])),
            "pred": (("side", "sample"), np.array([[0, 1, 0], [1, 1, 0]])),
        },
        ("x",),
        {"correct": torch.tensor([True, False, True])},
    )
    got = ops.group_reduce(f, "label", "mean")
    assert_like_xarray(got, as_xarray(f).groupby("label").mean())
    got = ops.group_reduce(f, "correct", "sum")  # a column, not a coordinate
    assert got.dims == ("side", "correct", "x")
    assert got.coords["correct"][1].tolist() == [False, True]
    expected = torch.stack([data[:, 1], data[:, 0] + data[:, 2]], dim=1)
    assert torch.equal(got.data, expected)


def test_group_reduce_errors():
    f = make_frame()
    with pytest.raises(ValueError, match=r"no per-sample coordinate 'lable'.*Did you mean 'label'"):
        ops.group_reduce(f, "lable", "mean")
    with pytest.raises(ValueError, match="groupby: the result has no dim 'sample'"):
        ops.group_reduce(ops.reduce(f, "sample", "mean"), "label", "mean")


# ---------------------------------------------------------------------------------------
# combine, stack
# ---------------------------------------------------------------------------------------


def _side(seed: int, ids: list[str], pred: list[int]) -> Frame:
    data = torch.randn(3, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    coords = {
        "sample": (("sample",), np.array(ids)),
        "pred": (("sample",), np.array(pred)),
        "label": (("sample",), np.array([0, 1, 1])),
    }
    return Frame(data, ("sample", "x"), coords, ("x",), {"pred": torch.tensor(pred)})


@pytest.mark.parametrize(
    "how, fn",
    [("mean", lambda a, b: (a + b) / 2), ("min", torch.minimum), ("product", torch.mul)],
)
def test_combine(how, fn):
    a, b = _side(0, ["p", "q", "r"], [1, 0, 1]), _side(1, ["u", "v", "w"], [1, 1, 0])
    got = pairs.combine(a, b, how)
    assert torch.equal(got.data, fn(a.data, b.data))
    assert got.dims == a.dims and got.features == a.features and got.columns is a.columns
    assert got.coords["label"] is a.coords["label"]  # equal on both sides: kept once
    assert got.coords["sample"][1].tolist() == ["p", "q", "r"]  # the index: left's labels
    assert got.coords["sample_right"][1].tolist() == ["u", "v", "w"]
    assert got.coords["pred_left"][1].tolist() == [1, 0, 1]
    assert got.coords["pred_right"][1].tolist() == [1, 1, 0]
    assert "pred" not in got.coords
    same = pairs.combine(a, a, how)
    assert sorted(same.coords) == ["label", "pred", "sample"]


def test_combine_and_stack_refuse_misaligned_frames():
    a = _side(0, ["p", "q", "r"], [1, 0, 1])
    b = Frame(torch.zeros(3, 3), ("sample", "x"))
    c = Frame(torch.zeros(3, 2), ("sample", "y"))
    for other in (b, c):
        with pytest.raises(ValueError, match="join: the two attributions differ in shape"):
            pairs.combine(a, other, "mean")
        with pytest.raises(ValueError, match="antijoin: the two attributions differ in shape"):
            pairs.stack(a, other)


def test_stack():
    a, b = _side(0, ["p", "q", "r"], [1, 0, 1]), _side(1, ["u", "v", "w"], [1, 1, 0])
    got = pairs.stack(a, b)
    assert got.dims == ("side", "sample", "x")
    assert torch.equal(got.data, torch.stack([a.data, b.data]))
    assert got.coords["side"][1].tolist() == ["left", "right"]
    assert got.coords["pred"][0] == ("side", "sample")
    assert got.coords["pred"][1].tolist() == [[1, 0, 1], [1, 1, 0]]
    assert got.coords["label"] is a.coords["label"]
    assert got.coords["sample"][1].tolist() == ["p", "q", "r"]
    assert got.features == ("x",) and got.columns is a.columns
    # the stacked frame is a valid DataArray, and its verbs follow xarray
    assert_like_xarray(ops.reduce(got, "side", "mean"), as_xarray(got).mean("side"))
    assert_like_xarray(ops.isel(got, {"side": 1}), as_xarray(got).isel(side=1))
    custom = pairs.stack(a, b, dim="model", labels=("f", "g"))
    assert custom.dims[0] == "model" and custom.coords["model"][1].tolist() == ["f", "g"]


# ---------------------------------------------------------------------------------------
# evaluate (predicates), keep_samples
# ---------------------------------------------------------------------------------------


def _mask(predicate: tuple) -> list[bool]:
    f = make_frame()
    return predicates.evaluate(predicate, f.columns, 4, CPU).tolist()


PRED, LABEL, SCORE, ID = ("col", "pred"), ("col", "label"), ("col", "score"), ("col", "id")


@pytest.mark.parametrize(
    "predicate, expected",
    [
        (("cmp", "=", PRED, LABEL), [False, True, True, True]),
        (("cmp", "!=", PRED, LABEL), [True, False, False, False]),
        (("cmp", "<", SCORE, ("lit", 0.5)), [False, True, False, True]),
        (("cmp", "<=", LABEL, ("lit", 1)), [True, True, False, True]),
        (("cmp", ">", SCORE, ("lit", 0.6)), [True, False, False, False]),
        (("cmp", ">=", SCORE, ("lit", 0.6)), [True, False, True, False]),
        (("col", "correct"), [False, True, True, True]),
        (("not", ("col", "correct")), [True, False, False, False]),
        (("in", PRED, (0, 1)), [False, True, False, True]),
        (("in", ID, ("d", "a", "z")), [True, False, False, True]),
        (("cmp", "=", ID, ("lit", "c")), [False, False, True, False]),
        (("cmp", "!=", ID, ("lit", "c")), [True, True, False, True]),
        (("cmp", ">", ID, ("lit", "b")), [False, False, True, True]),
        (
            ("and", ("cmp", "=", PRED, ("lit", 2)), ("cmp", ">", SCORE, ("lit", 0.7))),
            [True, False, False, False],
        ),
        (
            ("or", ("cmp", "=", LABEL, ("lit", 0)), ("not", ("col", "correct"))),
            [True, True, False, False],
        ),
    ],
    ids=lambda p: str(p)[:40],
)
def test_evaluate(predicate, expected):
    mask = _mask(predicate)
    assert mask == expected


def test_evaluate_missing_column():
    f = make_frame()
    columns = {k: v for k, v in f.columns.items() if k not in ("label", "correct")}
    with pytest.raises(
        ValueError, match="'label' is not available here; the inputs have no labels"
    ):
        predicates.evaluate(("cmp", "=", LABEL, ("lit", 1)), columns, 4, CPU)
    with pytest.raises(ValueError, match="'correct' is not available"):
        predicates.evaluate(("col", "correct"), columns, 4, CPU)


def test_keep_samples():
    f = make_frame()
    got = predicates.keep_samples(f, torch.tensor([True, False, False, True]))
    assert_like_xarray(got, as_xarray(f).isel(sample=[0, 3]))
    assert got.columns["id"].tolist() == ["a", "d"]
    assert got.columns["score"].tolist() == pytest.approx([0.9, 0.2])
    none = predicates.keep_samples(f, torch.zeros(4, dtype=torch.bool))
    assert none.data.shape == (0, 2, 3) and none.coords["class"][1].shape == (0, 2)
    assert none.columns["pred"].shape == (0,)
    # filtering an empty frame again still works
    again = predicates.keep_samples(
        none, predicates.evaluate(("col", "correct"), none.columns, 0, CPU)
    )
    assert again.data.shape == (0, 2, 3)
