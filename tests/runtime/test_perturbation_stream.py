"""The perturbation stream through ia.compute: forwards counted on the model, every target
for the forwards of one, copies shared across methods, explain() totals equal to the
counted forwards, seeds reproducible chunked or not."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import xarray as xr

import algebra as ia


def _totals(plan: str) -> tuple[int, int]:
    forwards, rows = re.search(r"total: (\d+) forwards? \((\d+) rows\)", plan).groups()
    return int(forwards), int(rows)


def _count(net, *exprs) -> tuple[int, int]:
    net.calls = net.rows = 0
    ia.compute(*exprs, session=ia.Session())
    return net.calls, net.rows


@pytest.mark.parametrize("method", ["shapley", "kernel_shap", "lime", "feature_ablation"])
def test_every_class_costs_the_forwards_of_one(cnn, images, counting, method):
    net = counting(cnn)
    q = ia.model(net).on(images)
    params = {} if method == "feature_ablation" else {"seed": 0, "samples": 6}
    one = _count(net, getattr(q, method)(0, **params))
    every = _count(net, getattr(q, method)("all", **params))
    top = _count(net, getattr(q, method)(ia.topk(3), **params))
    assert one == every == top


def test_shared_copies_are_evaluated_once_across_methods(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    grid = ia.grid(2, 2)
    exprs = [
        q.shapley("all", grid, samples="exact"),  # all 16 coalitions of the 4 players
        q.feature_ablation(0, grid),  # 5 of them
        q.occlusion(1, size=(3, 4, 4), stride=4),  # the same 4 cells: 5 of them again
        q.kernel_shap(2, grid, samples=10, seed=0),  # coalitions among the 16
    ]
    calls, rows = _count(net, *exprs)
    assert (calls, rows) == (2, 4 + 16 * 4)  # the inputs, then one stream of 16 unique copies
    alone = sum(_count(net, e)[1] for e in exprs)
    # alone: the inputs four times, 16 + 5 + 5 copies and kernel SHAP's own unique ones
    assert alone > 4 * 4 + (16 + 5 + 5) * 4 > rows
    text = ia.explain(*exprs)
    assert "38 copies, 16 unique (22 shared), 1 batch" in text
    assert _totals(text) == (calls, rows)


def test_explain_totals_equal_counted_forwards(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images, labels=[0, 1, 2, 3])
    exprs = [
        q.shapley("pred", samples=3, seed=1),
        q.saliency("all"),
        q.feature_ablation("label", baseline=0.5),
        q.window(0, 4, 0, 4).lime(0, samples=20, seed=2),
        q.integrated_gradients(0, steps=4),
        q.layer("net.relu1").feature_ablation(0, ia.grid(2, 2)),
    ]
    ia.compute(q.saliency(0), session=ia.Session())  # measures the model (a layer's shape)
    text = ia.explain(*exprs)
    assert _count(net, *exprs) == _totals(text)
    with ia.set_options(memory_budget=300_000):
        text = ia.explain(*exprs)
        assert "batches of up to" in text
        assert _count(net, *exprs) == _totals(text)


def test_a_layers_copies_are_counted_once_its_shape_is_known(cnn, images, counting):
    net = counting(cnn)
    e = ia.model(net).on(images[:3]).layer("net.relu2").shapley(0, samples=2, seed=0)
    assert "known after the model's first forward" in e.explain()
    e.compute(session=ia.Session())
    assert _count(net, e) == _totals(e.explain())


def test_sharing_off_gives_each_expression_its_stream(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    exprs = [q.feature_ablation(0), q.shapley(0, samples=2, seed=0)]
    shared = _count(net, *exprs)
    with ia.set_options(share_forward=False):
        text = ia.explain(*exprs)
        assert text.count("forward copies") == 2
        apart = _count(net, *exprs)
        assert apart == _totals(text)
    assert apart[1] > shared[1]
    with ia.set_options(share_forward=False):
        a = ia.compute(*exprs, session=ia.Session())
    b = ia.compute(*exprs, session=ia.Session())
    for x, y in zip(a, b, strict=True):
        xr.testing.assert_allclose(x, y)


def test_different_baselines_are_different_streams(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    exprs = [q.feature_ablation(0, baseline=0.0), q.feature_ablation(0, baseline=1.0)]
    text = ia.explain(*exprs)
    assert "copies, baseline 0.0" in text and "copies, baseline 1.0" in text
    assert _count(net, *exprs) == _totals(text) == (3, 4 + 2 * 65 * 4)


def test_seeds_reproducible_chunked_or_not(cnn, images, counting):
    net = counting(cnn.double())
    q = ia.model(net).on(images.double())
    exprs = [
        q.shapley("all", samples=3, seed=5),
        q.kernel_shap(1, samples=30, seed=6),
        q.lime(2, samples=30, seed=7),
        q.feature_permutation(3, seed=8),
        q.occlusion(0, 4, 2),
    ]
    whole = ia.compute(*exprs, session=ia.Session())
    batches = net.calls
    with ia.set_options(memory_budget=150_000):
        net.calls = 0
        parts = ia.compute(*exprs, session=ia.Session())
        assert net.calls > batches  # cut into several batches
    again = ia.compute(*exprs, session=ia.Session())
    for a, b, c in zip(whole, parts, again, strict=True):
        xr.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        xr.testing.assert_identical(a, c)


def test_unseeded_methods_draw_from_the_global_generator(cnn, images):
    q = ia.model(cnn).on(images)
    torch.manual_seed(0)
    a = q.shapley(0, samples=2).compute(session=ia.Session())
    torch.manual_seed(0)
    b = q.shapley(0, samples=2).compute(session=ia.Session())
    c = q.shapley(0, samples=2).compute(session=ia.Session())
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a.values, c.values)


def test_explain_leaves_the_global_generator_alone(cnn, images):
    q = ia.model(cnn).on(images)
    torch.manual_seed(0)
    a = q.shapley(0, samples=2).compute(session=ia.Session())
    torch.manual_seed(0)
    q.shapley(0, samples=2).explain()
    b = q.shapley(0, samples=2).compute(session=ia.Session())
    xr.testing.assert_identical(a, b)


def test_perturbation_results_are_memoized(cnn, images, counting):
    net = counting(cnn)
    q = ia.model(net).on(images)
    with ia.Session() as s:
        q.shapley(0, samples=2, seed=0).compute()
        calls = net.calls
        q.shapley(0, samples=2, seed=0).compute()
        assert net.calls == calls and s.hits == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_agrees_with_cpu(cnn_factory, images):
    results = []
    for device in ("cpu", "cuda"):
        net = cnn_factory().double().to(device)
        q = ia.model(net).on(images.double().to(device))
        exprs = [
            q.shapley("all", samples=3, seed=1),
            q.kernel_shap(0, samples=20, seed=2),
            q.lime(1, samples=20, seed=3),
            q.feature_permutation(2, seed=4),
            q.layer("relu1").feature_ablation(3, ia.grid(2, 2)),
            q.saliency(0).deletion(steps=4),
            q.saliency(0).infidelity(seed=5),
        ]
        with ia.set_options(memory_budget=300_000):
            results.append(ia.compute(*exprs, session=ia.Session()))
    for a, b in zip(*results, strict=True):
        xr.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
