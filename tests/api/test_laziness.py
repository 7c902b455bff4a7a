"""Building expressions runs nothing; identical sub-expressions are computed once."""

from __future__ import annotations

import re

import torch

import algebra as ia


def _totals(plan: str) -> tuple[int, int, int]:
    forwards, rows, backwards = re.search(
        r"total: (\d+) forwards? \((\d+) rows\), (\d+)(?: \+ \d*C)? backward", plan
    ).groups()
    return int(forwards), int(rows), int(backwards)


def test_building_expressions_runs_no_forward(cnn, images, counting):
    counted = counting(cnn)
    q = ia.model(counted).on(images, labels=[0, 1, 2, 3])
    exprs = [
        q.saliency("all"),
        q.input_x_gradient(ia.topk(2)),
        q.integrated_gradients("label", steps=4),
        q.layer("net.relu1").saliency("pred"),
    ]
    for e in exprs:
        e.explain()
        e.graph()
        repr(e)
    ia.explain(*exprs)
    assert counted.calls == 0


def test_same_expression_twice_is_computed_once(cnn, images, counting):
    counted = counting(cnn)
    q = ia.model(counted).on(images)
    a, b = ia.compute(q.saliency(1), q.saliency(1))
    assert counted.calls == 1
    assert a is b


def test_structurally_equal_queries_share_work(cnn, images, counting):
    counted = counting(cnn)
    m = ia.model(counted)
    # Two Query objects built separately from the same tensor are the same expression.
    first = m.on(images).integrated_gradients("pred", steps=3)
    second = m.on(images).integrated_gradients("pred", steps=3)
    ia.compute(first, second)
    assert counted.calls == 2  # predictions at the inputs, then the path


def test_forward_count_and_rows_match_the_plan(cnn, images, counting):
    counted = counting(cnn)
    q = ia.model(counted).on(images, labels=[0, 1, 2, 3])
    exprs = (
        q.saliency("all"),
        q.input_x_gradient("label"),
        q.integrated_gradients(ia.topk(2), steps=5),
        q.layer("net.conv2").integrated_gradients("pred", steps=3),
        q.layer("net.relu1").input_x_gradient(0),
    )
    forwards, rows, _ = _totals(ia.explain(*exprs))
    ia.compute(*exprs)
    assert (counted.calls, counted.rows) == (forwards, rows)
    # inputs (4 rows), input path (5 x 4, and its shared start for the delta: 1), layer
    # baseline (1: a scalar baseline is shared), layer path (3 x 4)
    assert (forwards, rows) == (4, 4 + 20 + 1 + 1 + 12)


def test_changed_input_in_place_is_a_new_expression(mlp, features):
    m = ia.model(mlp)
    before = m.on(features).saliency(0)
    features.add_(1.0)
    after = m.on(features).saliency(0)
    assert before.node != after.node


def test_compute_returns_the_structure_it_was_given(mlp, features):
    q = ia.model(mlp).on(features)
    single = ia.compute(q.saliency(0))
    assert isinstance(single, tuple) and len(single) == 1
    named = ia.compute({"s": q.saliency(0), "g": q.input_x_gradient(1)})
    assert list(named) == ["s", "g"]
    assert named["g"].attrs["method"] == "input_x_gradient"
    torch.testing.assert_close(
        torch.as_tensor(named["s"].values), torch.as_tensor(q.saliency(0).compute().values)
    )


def test_equal_labels_given_as_lists_are_one_source(mlp, features, counting):
    counted = counting(mlp)
    m = ia.model(counted)
    ia.compute(
        m.on(features, labels=[0, 1, 2, 3, 0]).saliency("label"),
        m.on(features, labels=[0, 1, 2, 3, 0]).saliency("label"),
    )
    assert counted.calls == 1
