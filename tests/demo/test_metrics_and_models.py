"""The demo's numbers against scikit-learn, its model cache, its progress bars and its report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

import algebra as ia
from algebra.demo.context import Context
from algebra.demo.metrics import divergence, precision_at, roc_auc, roc_curve
from algebra.demo.models import Recipe, trained
from algebra.demo.report import Shown, Study, Table, write_html


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_and_curve_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 80).astype(float)  # many ties
    positive = rng.random(80) < 0.3
    assert roc_auc(scores, positive) == pytest.approx(roc_auc_score(positive, scores), abs=1e-12)
    fpr, tpr = roc_curve(scores, positive)
    ref_fpr, ref_tpr, _ = sk_roc_curve(positive, scores, drop_intermediate=False)
    # ours steps through tied scores one by one; the corners scikit-learn keeps are on it
    points = set(zip(fpr.round(12), tpr.round(12), strict=True))
    assert set(zip(ref_fpr.round(12), ref_tpr.round(12), strict=True)) <= points


def test_precision_at_k_and_divergence():
    scores, positive = np.array([0.9, 0.8, 0.1, 0.7]), np.array([1, 0, 1, 1])
    assert precision_at(scores, positive, 3) == pytest.approx(2 / 3)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 3, 5))
    dims = ("sample", "y", "x")
    got = divergence(xr.DataArray(a, dims=dims), xr.DataArray(b, dims=dims))
    flat_a, flat_b = a.reshape(4, -1), b.reshape(4, -1)
    cosine = (flat_a * flat_b).sum(1) / np.linalg.norm(flat_a, axis=1) / np.linalg.norm(flat_b, axis=1)  # fmt: skip
    np.testing.assert_allclose(got, 1 - cosine, atol=1e-12)
    with pytest.raises(ValueError, match="positive: the ROC AUC needs both"):
        roc_auc(scores, np.ones(4))


def _fit(module, tick):
    with torch.no_grad():
        module.weight.add_(1.0)
    tick()


def test_models_are_cached_by_recipe_and_a_bad_file_is_retrained(tmp_path):
    recipe = Recipe("lin", "none", "linear(2, 2)", seed=0, epochs=1)
    blank = lambda: torch.nn.Linear(2, 2)  # noqa: E731
    with ia.set_options(progress=False):
        first = trained(recipe, blank, _fit, 1, folder=tmp_path)
        again = trained(recipe, blank, _fit, 1, folder=tmp_path)
        other = trained(Recipe("lin", "none", "linear(2, 2)", 1, 1), blank, _fit, 1, folder=tmp_path)  # fmt: skip
        assert (first.cached, again.cached, other.cached) == (False, True, False)
        assert torch.equal(first.module.weight, again.module.weight)
        assert other.path != first.path and not again.module.training
        first.path.write_bytes(b"not a checkpoint")
        fixed = trained(recipe, blank, _fit, 1, folder=tmp_path)
    assert not fixed.cached and torch.equal(fixed.module.weight, first.module.weight)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(
        [first.path.name, other.path.name]
    )  # no partial files left behind


def test_training_and_studies_show_progress_bars_unless_switched_off(tmp_path, capsys):
    recipe = Recipe("lin", "none", "linear(2, 2)", seed=0, epochs=1)
    trained(recipe, lambda: torch.nn.Linear(2, 2), _fit, 1, folder=tmp_path)
    ctx = Context()
    with ctx.stage("a study", 2):
        ctx.step("first step")
    err = capsys.readouterr().err
    assert "training lin" in err and "a study" in err and "first step" in err
    with ia.set_options(progress=False):
        trained(recipe, lambda: torch.nn.Linear(2, 2), _fit, 1, folder=tmp_path / "other")
        with ctx.stage("a study", 2):
            ctx.step("first step")
    assert capsys.readouterr().err == ""


def test_the_report_escapes_what_it_shows(tmp_path):
    s = Study("x", "A <b>study</b>", "Summary & more.")
    s.metric("AUC", 0.5)
    s.figures.append(Shown("f.png", "a <caption>", "q = '<select>'"))
    page = write_html([s], tmp_path, "T", "P", Table("t", ["a"], [["<1>"]])).read_text()
    assert "A &lt;b&gt;study&lt;/b&gt;" in page and "a &lt;caption&gt;" in page
    assert "q = &#x27;&lt;select&gt;&#x27;" in page and "<td>&lt;1&gt;</td>" in page
