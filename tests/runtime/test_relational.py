"""Joins and the relational verbs, checked against xarray (and numpy) on the plain result.

The oracle for a verb is the same operation applied by xarray to ``e.compute()``; the
filters are checked against masks computed from the result's coordinates and the logits.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import algebra as ia

CLASSES = ["ant", "bee", "cat", "dog"]
LABELS = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]
IDS = [f"s{i}" for i in range(12)]


def mlp(seed: int = 1) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(fc1=nn.Linear(6, 16), act=nn.Tanh(), fc2=nn.Linear(16, 4))
    ).eval()


def _inputs(seed: int = 3, n: int = 12) -> torch.Tensor:
    return 3 * torch.randn(n, 6, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def setting():
    net = mlp()
    x = _inputs()
    q = ia.model(net, classes=CLASSES).on(x, labels=LABELS, ids=IDS)
    return net, x, q


def _totals(plan: str) -> tuple[int, int]:
    forwards, rows = re.search(r"total: (\d+) forwards? \((\d+) rows\)", plan).groups()
    return int(forwards), int(rows)


# ---------------------------------------------------------------------------------------
# Join
# ---------------------------------------------------------------------------------------

HOWS = {"mean": lambda a, b: (a + b) / 2, "min": np.minimum, "product": np.multiply}


@pytest.mark.parametrize("how", list(HOWS))
def test_join_of_two_inputs_through_one_model(how):
    m = ia.model(mlp())
    x, x2 = _inputs(3), _inputs(4)
    a = m.on(x, labels=LABELS).saliency("pred", abs=False)
    b = m.on(x2, labels=LABELS).saliency("pred", abs=False)
    joined, ra, rb = ia.compute(a.join(b, how), a, b)
    np.testing.assert_allclose(joined.values, HOWS[how](ra.values, rb.values), rtol=1e-6)
    assert joined.dims == ra.dims
    assert (ra.pred.values != rb.pred.values).any()  # so the coordinates differ
    np.testing.assert_array_equal(joined.pred_left.values, ra.pred.values)
    np.testing.assert_array_equal(joined.pred_right.values, rb.pred.values)
    np.testing.assert_array_equal(joined["class_left"].values, ra["class"].values)
    assert "pred" not in joined.coords
    np.testing.assert_array_equal(joined.label.values, LABELS)  # equal on both sides: kept
    assert joined.attrs["join"] == how


@pytest.mark.parametrize("how", list(HOWS))
def test_join_of_one_input_through_two_models(how, images):
    from copy import deepcopy

    torch.manual_seed(4)
    f = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 5))
    g = deepcopy(f)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.1 * torch.randn_like(p))
    f.eval(), g.eval()
    a = ia.model(f, name="f").on(images).input_x_gradient(ia.topk(2))
    b = ia.model(g, name="g").on(images).input_x_gradient(ia.topk(2))
    joined, ra, rb = ia.compute(a.join(b, how), a, b)
    assert joined.dims == ("sample", "target", "channel", "y", "x")
    np.testing.assert_allclose(joined.values, HOWS[how](ra.values, rb.values), rtol=1e-6)
    np.testing.assert_array_equal(joined.sample.values, ra.sample.values)
    for side, part in (("left", ra), ("right", rb)):  # the top classes differ between models
        np.testing.assert_array_equal(joined[f"class_{side}"].values, part["class"].values)
        assert joined[f"class_{side}"].dims == ("sample", "target")
    assert (ra["class"].values != rb["class"].values).any()
    assert joined.attrs["join"] == how


def test_join_errors(cnn, images):
    m = ia.model(cnn)
    a = m.on(images).input_x_gradient(1)
    with pytest.raises(ValueError, match="4 and 3 samples"):
        a.join(m.on(images[:3]).input_x_gradient(1))
    with pytest.raises(ValueError, match="how: unknown value 'max'"):
        a.join(a, "max")
    with pytest.raises(TypeError, match="expected an expression"):
        a.join(m.on(images))
    for other in (
        m.on(images).layer("conv1").input_x_gradient(1),  # [4, 4, 8, 8] vs [4, 3, 8, 8]
        m.on(images).input_x_gradient(ia.topk(2)),  # a target dim more
        a.mean("sample"),
    ):
        with pytest.raises(ValueError, match="join: the two attributions differ in shape"):
            a.join(other).compute()


def test_join_chains_and_filters_on_the_left_columns(setting):
    net, _, q = setting
    x2 = _inputs(4)
    a = q.saliency("pred", abs=False)
    b = ia.model(net, classes=CLASSES).on(x2, labels=LABELS, ids=IDS).saliency("pred", abs=False)
    ra, rb = ia.compute(a, b)
    chained = a.join(b, "min").join(a, "product").where(ia.col.pred == 3).compute()
    keep = np.flatnonzero(ra.pred.values == 3)
    assert 0 < len(keep) < 12
    expected = np.minimum(ra.values, rb.values)[keep] * ra.values[keep]
    np.testing.assert_allclose(chained.values, expected, rtol=1e-6)
    assert chained.sample.values.tolist() == [IDS[i] for i in keep]


# ---------------------------------------------------------------------------------------
# Relational verbs against xarray
# ---------------------------------------------------------------------------------------

VERBS = {
    "sel_sample": (lambda e: e.sel(sample="s3"), lambda r: r.sel(sample="s3")),
    "sel_list": (lambda e: e.sel(sample=["s5", "s1"]), lambda r: r.sel(sample=["s5", "s1"])),
    "sel_slice": (
        lambda e: e.sel(sample=slice("s2", "s6")),
        lambda r: r.sel(sample=slice("s2", "s6")),
    ),
    "sel_target": (lambda e: e.sel(target=[3, 1]), lambda r: r.sel(target=[3, 1])),
    "isel": (
        lambda e: e.isel(sample=[0, 2, -1], feature=slice(1, 4)),
        lambda r: r.isel(sample=[0, 2, -1], feature=slice(1, 4)),
    ),
    "isel_int": (lambda e: e.isel(target=-1), lambda r: r.isel(target=-1)),
    "mean_sample": (lambda e: e.mean("sample"), lambda r: r.mean("sample")),
    "mean_target": (lambda e: e.mean("target"), lambda r: r.mean("target")),
    "sum_feature": (lambda e: e.sum("feature"), lambda r: r.sum("feature")),
    "sum_two": (lambda e: e.sum(["sample", "feature"]), lambda r: r.sum(["sample", "feature"])),
    "mean_all": (lambda e: e.mean(), lambda r: r.mean()),
    "sum_all": (lambda e: e.sum(), lambda r: r.sum()),
    "abs": (lambda e: e.abs(), abs),
    "groupby_label_mean": (
        lambda e: e.groupby("label").mean(),
        lambda r: r.groupby("label").mean(),
    ),
    "groupby_pred_sum": (lambda e: e.groupby("pred").sum(), lambda r: r.groupby("pred").sum()),
    "chain": (
        lambda e: e.where(ia.col.pred != ia.col.label).abs().mean("sample"),
        lambda r: abs(r.where(r.pred != r.label, drop=True)).mean("sample"),
    ),
    "chain_sel_groupby": (
        lambda e: e.isel(feature=[0, 5]).abs().groupby("label").sum().sel(label=[1, 3]),
        lambda r: abs(r.isel(feature=[0, 5])).groupby("label").sum().sel(label=[1, 3]),
    ),
}


@pytest.mark.parametrize("verb", list(VERBS))
def test_verbs_equal_xarray_on_the_plain_result(setting, verb, reduced_close):
    _, _, q = setting
    ours, theirs = VERBS[verb]
    e = q.input_x_gradient("all")
    plain, got = ia.compute(e, ours(e))
    expected = theirs(plain)
    reduced_close(got, expected.astype(plain.dtype), theirs(abs(plain)))
    assert got.dims == expected.dims
    assert sorted(got.coords) == sorted(expected.coords)
    assert got.name == plain.name


TOPK_VERBS = {
    "groupby_label": (lambda e: e.groupby("label").mean(), lambda r: r.groupby("label").mean()),
    "groupby_pred": (lambda e: e.groupby("pred").sum(), lambda r: r.groupby("pred").sum()),
    "mean_target": (lambda e: e.mean("target"), lambda r: r.mean("target")),
    "isel_target": (lambda e: e.isel(target=0), lambda r: r.isel(target=0)),
    "sel_sample": (
        lambda e: e.sel(sample=["s4", "s0"]),
        lambda r: r.sel(sample=["s4", "s0"]),
    ),
    "sum_all": (lambda e: e.sum(), lambda r: r.sum()),
}


@pytest.mark.parametrize("verb", list(TOPK_VERBS))
def test_verbs_on_a_topk_result_with_two_dim_coordinates_equal_xarray(setting, verb, reduced_close):
    _, _, q = setting
    ours, theirs = TOPK_VERBS[verb]
    e = q.saliency(ia.topk(2), abs=False)
    plain, got = ia.compute(e, ours(e))
    assert plain["class"].dims == ("sample", "target")
    expected = theirs(plain)
    reduced_close(got, expected.astype(plain.dtype), theirs(abs(plain)))
    assert sorted(got.coords) == sorted(expected.coords)


def test_groupby_per_sample_class_equals_xarray(setting, reduced_close):
    _, _, q = setting
    e = q.saliency("pred", abs=False)
    plain, by_class, by_name = ia.compute(
        e, e.groupby("class").mean(), e.groupby("class_name").sum()
    )
    reduced_close(by_class, plain.groupby("class").mean(), abs(plain).groupby("class").mean())
    reduced_close(
        by_name, plain.groupby("class_name").sum(), abs(plain).groupby("class_name").sum()
    )


def _over_features(values: np.ndarray, how: str) -> np.ndarray:
    v = values.astype(np.float64)
    if how == "max":
        return v / np.abs(v).max(-1, keepdims=True)
    if how == "sum":
        return v / np.abs(v).sum(-1, keepdims=True)
    return (v - v.mean(-1, keepdims=True)) / v.std(-1, keepdims=True)


@pytest.mark.parametrize("how", ["max", "sum", "zscore"])
def test_normalize_over_the_feature_dims_equals_numpy(setting, how, cnn, images):
    _, _, q = setting
    plain, got = ia.compute(q.input_x_gradient("all"), q.input_x_gradient("all").normalize(how))
    np.testing.assert_allclose(got.values, _over_features(plain.values, how), rtol=1e-5, atol=1e-6)
    xr.testing.assert_equal(got.coords.to_dataset(), plain.coords.to_dataset())
    # images: the maps are [channel, y, x], normalized together per sample
    e = ia.model(cnn).on(images).input_x_gradient(1)
    plain, got = ia.compute(e, e.normalize(how))
    flat = plain.values.reshape(4, -1)
    np.testing.assert_allclose(
        got.values.reshape(4, -1), _over_features(flat, how), rtol=1e-5, atol=1e-6
    )
    # over a chosen dim: each (sample, channel, x) column over y
    got = e.normalize(how, dim="y").compute()
    moved = np.moveaxis(plain.values, 2, -1)
    expected = np.moveaxis(_over_features(moved, how), -1, 2)
    np.testing.assert_allclose(got.values, expected, rtol=1e-5, atol=1e-6)


def test_normalize_keeps_all_zero_maps_zero(cnn, images):
    q = ia.model(cnn).on(images)
    e = q.window(0, 2, 0, 2).input_x_gradient(0)  # zero outside: rows 4:8 are all zero
    for how in ("max", "sum", "zscore"):
        got = e.normalize(how, dim=["x"]).isel(y=slice(4, 8)).compute()
        assert not got.values.any()
        assert np.isfinite(got.values).all()


@pytest.mark.parametrize("by", ["abs", "value"])
@pytest.mark.parametrize("k", [1, 3])
def test_topk_features_equals_numpy(setting, by, k, cnn, images):
    _, _, q = setting
    e = q.input_x_gradient("all")
    plain, got = ia.compute(e, e.topk_features(k, by=by))
    v = plain.values
    score = np.abs(v) if by == "abs" else v
    index = np.argsort(-score, axis=-1, kind="stable")[..., :k]
    keep = np.zeros(v.shape, dtype=bool)
    np.put_along_axis(keep, index, True, axis=-1)
    np.testing.assert_array_equal(got.values, np.where(keep, v, 0))
    assert ((got.values != 0).sum(-1) == k).all()
    # images: k over channel, y and x together
    e = ia.model(cnn).on(images).input_x_gradient(1)
    plain, got = ia.compute(e, e.topk_features(k, by=by))
    flat = plain.values.reshape(4, -1)
    score = np.abs(flat) if by == "abs" else flat
    threshold = np.sort(score, axis=-1)[:, -k][:, None]
    expected = np.where(score >= threshold, flat, 0)
    np.testing.assert_array_equal(got.values.reshape(4, -1), expected)


# ---------------------------------------------------------------------------------------
# where: predicates against masks from the plain result
# ---------------------------------------------------------------------------------------


def _predicates(plain: xr.DataArray, score: np.ndarray) -> dict:
    pred, label, ids = plain.pred.values, plain.label.values, np.asarray(IDS)
    t = float(np.median(score))
    col = ia.col
    return {
        "misclassified": (col.pred != col.label, pred != label),
        "label": (col.label == 3, label == 3),
        "correct": (col.correct, pred == label),
        "not_correct": (~col.correct, pred != label),
        "score": (col.score > t, score > t),
        "score_le": (col.score <= t, score <= t),
        "ids": (col.id.isin(["s1", "s5", "s9"]), np.isin(ids, ["s1", "s5", "s9"])),
        "id_eq": (col.id == "s4", ids == "s4"),
        "and": ((col.score > t) & (col.label == 1), (score > t) & (label == 1)),
        "or": ((col.score > t) | ~col.correct, (score > t) | (pred != label)),
        "column_and": (col.correct & (col.label == 0), (pred == label) & (label == 0)),
        "class_name": (col.pred == "dog", pred == CLASSES.index("dog")),
        "label_names": (col.label.isin(["ant", "cat"]), np.isin(label, [0, 2])),
        "label_lt": (col.label < 2, label < 2),
        "class_name_bee": (col.pred == "bee", pred == CLASSES.index("bee")),
    }


def test_where_keeps_the_samples_of_the_mask(setting):
    net, x, q = setting
    e = q.saliency("pred", abs=False)
    plain = e.compute()
    with torch.no_grad():
        score = net(x).softmax(1).amax(1).numpy()
    cases = _predicates(plain, score)
    assert 0 < cases["misclassified"][1].sum() < 12 and 0 < cases["class_name"][1].sum() < 12
    for name, (predicate, mask) in cases.items():
        on_expr, on_query = ia.compute(
            e.where(predicate), q.where(predicate).saliency("pred", abs=False)
        )
        expected = plain.isel(sample=np.flatnonzero(mask))
        for got in (on_expr, on_query):
            assert got.sample.values.tolist() == expected.sample.values.tolist(), name
            xr.testing.assert_allclose(got, expected)


def test_where_on_an_expanding_target_and_after_an_antijoin(setting):
    net, x, q = setting
    e = q.input_x_gradient("all")
    plain, got = ia.compute(e, e.where(ia.col.pred != ia.col.label))
    xr.testing.assert_allclose(got, plain.where(plain.pred != plain.label, drop=True))
    m = ia.model(net)
    x2 = _inputs(4)
    aj = m.on(x, labels=LABELS).antijoin(
        m.on(x2, labels=LABELS), 0, method="integrated_gradients", steps=4
    )
    plain, got = ia.compute(aj, aj.where(ia.col.correct))
    keep = np.flatnonzero(plain.pred.sel(side="left").values == np.asarray(LABELS))
    assert 0 < len(keep) < 12
    xr.testing.assert_allclose(got, plain.isel(sample=keep))


def test_where_chains_with_the_other_verbs(setting, reduced_close):
    _, _, q = setting
    e = q.input_x_gradient("all")
    plain, got = ia.compute(e, e.where(~ia.col.correct).abs().sum("target").mean("sample"))
    wrong = plain.where(plain.pred != plain.label, drop=True)
    expected = abs(wrong).sum("target").mean("sample").astype(plain.dtype)
    reduced_close(got, expected, expected)
    got = e.where(ia.col.label == 2).where(ia.col.pred == 0).sel(target=1).compute()
    both = plain.isel(sample=np.flatnonzero((plain.label == 2) & (plain.pred == 0)))
    xr.testing.assert_allclose(got, both.sel(target=1))


def test_verb_errors(setting):
    net, x, q = setting
    e = q.saliency("pred")
    for bad, match in (
        (e.mean("samples"), r"no dim 'samples'.*Did you mean 'sample'"),
        (e.sum("featur"), r"no dim 'featur'.*Did you mean 'feature'"),
        (e.isel(featur=0), r"no dim 'featur'.*Did you mean 'feature'"),
        (e.sel(sampel="s0"), r"no dim 'sampel'.*Did you mean 'sample'"),
        (e.normalize(dim="featur"), r"Did you mean 'feature'"),
        (e.topk_features(2, dim="featur"), r"Did you mean 'feature'"),
        (e.groupby("lable").mean(), r"groupby: no per-sample coordinate 'lable'.*'label'"),
        (e.mean("sample").where(ia.col.correct), r"where: .*no longer has per-sample columns"),
        (e.groupby("label").mean().where(ia.col.pred == 1), r"no longer has per-sample"),
        (e.topk_features(7), r"k: asked for 7 features, but each map has 6"),
        (e.where(ia.col.pred == "cow"), r"'cow' names no class"),
        (ia.model(net).on(x).saliency(0).where(ia.col.label == 1), r"no labels"),
    ):
        with pytest.raises(ValueError, match=match):
            bad.compute()
    with pytest.raises(IndexError, match="out of range"):
        e.isel(sample=12).compute()
    with pytest.raises(KeyError, match="s12"):
        e.sel(sample="s12").compute()
    with pytest.raises(TypeError, match="'score' is not a boolean column"):
        e.where(ia.col.score)
    with pytest.raises(TypeError, match="'score' is not a boolean column"):
        q.where(ia.col.score)
    with pytest.raises(TypeError, match="combine conditions with &"):
        e.where((ia.col.pred == 1) and (ia.col.label == 2))
    with pytest.raises(TypeError, match="combine conditions with &"):
        e.where(not (ia.col.pred == 1))  # noqa: SIM201
    with pytest.raises(TypeError, match="expected a condition"):
        e.where("pred != label")
    with pytest.raises(AttributeError, match="Did you mean 'score'"):
        ia.col.scor  # noqa: B018
    with pytest.raises(ValueError, match="how: expected one of 'max', 'sum', 'zscore'"):
        e.normalize("l2")
    with pytest.raises(ValueError, match="by: expected one of 'abs', 'value'"):
        e.topk_features(2, by="sign")
    with pytest.raises(ValueError, match="k: expected an integer >= 1"):
        e.topk_features(0)
    with pytest.raises(TypeError, match="dim: expected a dim name"):
        e.mean(3)
    with pytest.raises(TypeError, match="isel: expected at least one"):
        e.isel()


def test_python_boolean_operators_on_a_bare_column_raise(setting):
    _, _, q = setting
    e = q.saliency("pred")
    with pytest.raises(TypeError, match="combine conditions with &"):
        e.where(ia.col.correct and (ia.col.label == 1))
    with pytest.raises(TypeError, match="combine conditions with &"):
        e.where(not ia.col.correct)


# ---------------------------------------------------------------------------------------
# Laziness, plans and structural equality
# ---------------------------------------------------------------------------------------


def _derived(q: ia.Query, q2: ia.Query) -> list[ia.Expr]:
    e = q.saliency("all")
    return [
        e.where(ia.col.pred != ia.col.label).abs().mean("sample"),
        e.sel(target=[0, 2]).isel(sample=slice(0, 3)).sum(["target"]),
        e.normalize("zscore").topk_features(2, by="value"),
        e.groupby("label").mean(),
        q.integrated_gradients("pred", steps=4).join(q2.integrated_gradients("pred", steps=4)),
        q.where(ia.col.correct).input_x_gradient(1).normalize("max"),
    ]


def test_building_derived_expressions_runs_nothing_and_explain_matches(counting):
    net = counting(mlp())
    m = ia.model(net)
    q, q2 = m.on(_inputs(3), labels=LABELS), m.on(_inputs(4), labels=LABELS)
    exprs = _derived(q, q2)
    for e in exprs:
        repr(e)
        e.graph()
        assert "then, on the device: 1 derived expression" in e.explain()
    text = ia.explain(*exprs)
    assert net.calls == 0
    assert f"then, on the device: {len(exprs)} derived expressions" in text
    ia.compute(*exprs)
    assert (net.calls, net.rows) == _totals(text)


def test_an_attribution_and_its_reductions_run_it_once(counting, reduced_close):
    net = counting(mlp())
    q = ia.model(net).on(_inputs(), labels=LABELS)
    a = q.integrated_gradients("pred", steps=4)
    text = ia.explain(a, a.mean("sample"), a.abs().sum("feature"), a.groupby("label").sum())
    plain, mean, total, grouped = ia.compute(
        a, a.mean("sample"), a.abs().sum("feature"), a.groupby("label").sum()
    )
    # the inputs, then the path (4 steps x 12 samples and its shared start, for the delta)
    assert (net.calls, net.rows) == _totals(text) == (2, 12 + 4 * 12 + 1)
    reduced_close(mean, plain.mean("sample"), abs(plain).mean("sample"))
    reduced_close(total, abs(plain).sum("feature"), abs(plain).sum("feature"))
    reduced_close(grouped, plain.groupby("label").sum(), abs(plain).groupby("label").sum())


def test_identical_chains_are_equal_nodes_and_different_ones_are_not():
    net = mlp()
    x, x2 = _inputs(3), _inputs(4)
    m = ia.model(net)

    def build(m: ia.Model) -> list[ia.Expr]:
        return _derived(m.on(x, labels=LABELS), m.on(x2, labels=LABELS))

    first, second = build(m), build(m)
    assert [e.node for e in first] == [e.node for e in second]
    assert len({e.node.token for e in first}) == len(first)
    q = m.on(x, labels=LABELS)
    e = q.saliency("all")
    variants = [
        e.where(ia.col.pred == ia.col.label).abs().mean("sample"),
        e.where(ia.col.pred != ia.col.label).abs().sum("sample"),
        e.where(ia.col.pred != ia.col.label).mean("sample"),
        e.sel(target=[0, 2]).isel(sample=slice(0, 4)).sum(["target"]),
        e.isel(target=[0, 2]).isel(sample=slice(0, 3)).sum(["target"]),
        e.normalize("max").topk_features(2, by="value"),
        e.normalize("zscore").topk_features(2, by="abs"),
        e.groupby("label").sum(),
        e.groupby("pred").mean(),
    ]
    tokens = {v.node.token for v in variants} | {f.node.token for f in first}
    assert len(tokens) == len(variants) + len(first)
