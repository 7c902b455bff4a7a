"""Plans of the gradient family: explain()'s totals equal the passes the executor runs (with
and without chunking), each optimizer rule switched off gives the same results, and the
point sets are named in the plan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import algebra as ia


def workload(q) -> dict:
    data = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    return {
        "smooth": q.noise(4, seed=0).saliency("all").mean("noise"),
        "noisy_ig": q.noise(4, seed=0).integrated_gradients("pred", steps=3),
        "guided": q.guided_backprop(ia.topk(2)),
        "deconv": q.deconvolution(0),
        "deeplift": q.deeplift("all"),
        "dlshap": q.deeplift_shap(1, data),
        "shap": q.gradient_shap(ia.topk(2), data, samples=3, seed=0),
        "shap_noise": q.layer("net.conv2").gradient_shap(0, data, samples=3, stdev=0.1, seed=0),
        "cam_pp": q.layer("net.relu2").grad_cam_pp("all"),
        "layer_cam": q.layer("net.relu1").layer_cam(ia.topk(2)),
        "eigen": q.layer("net.conv2").eigen_cam(),
        "score": q.layer("net.conv2").score_cam("pred"),
        "guided_cam": q.layer("net.relu2").guided_grad_cam(1),
        "activation": q.layer("net.relu1").activation(),
        "conductance": q.layer("net.conv2").conductance(ia.topk(2), steps=3),
        "influence": q.layer("net.conv2").internal_influence(0, steps=3),
        "units": q.integrated_gradients(ia.units("net.conv2"), steps=3),
        "ig_window": q.window(0, 4, 0, 4).integrated_gradients(2, steps=3),
    }


@pytest.mark.parametrize("budget", [None, 40_000])
def test_explain_totals_equal_the_passes_run(cnn, images, counting, passes, budget):
    net = counting(cnn)
    exprs = list(workload(ia.model(net).on(images)).values())
    with ia.set_options(memory_budget=budget):
        _, counted, planned = passes(net, exprs)  # first run: chunks estimated
        _, counted_again, planned_again = passes(net, exprs)  # activations measured
        with ia.set_options(backward="batched"):
            bound = "at most" in ia.explain(*exprs)
    assert counted_again[:2] == planned_again[:2]
    if bound:  # targets split over backwards: the union each sample needs can be smaller
        assert 0 < counted_again[2] <= planned_again[2]
    else:
        assert counted_again[2] == planned_again[2]
    assert counted[1] == planned[1]  # the same rows, whatever the chunks
    if budget is None:
        assert counted == planned
    else:  # before the first forward measured the activations, chunks were a guess
        assert counted_again[0] > 18


@pytest.mark.parametrize(
    "off", ["simplify", "share_forward", "fuse_targets", "share_paths", "chunk"]
)
def test_each_rule_off_gives_the_same_results(cnn, images, off):
    q = ia.model(cnn).on(images)
    exprs = workload_plain(q)
    fused = ia.compute(*exprs.values(), session=ia.Session())
    with ia.set_options(**{off: False}):
        plain = ia.compute(*exprs.values(), session=ia.Session())
    for name, a, b in zip(exprs, fused, plain, strict=True):
        assert a.dims == b.dims, name
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6, err_msg=name)
        if "delta" in a.coords:
            np.testing.assert_allclose(a.delta.values, b.delta.values, atol=1e-5, err_msg=name)


def workload_plain(q) -> dict:
    """:func:`workload` on the plain CNN (layers without the counting wrapper's prefix)."""
    data = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    return {
        "noisy": q.noise(3, seed=0).saliency("all"),
        "guided": q.guided_backprop(ia.topk(2)),
        "deeplift": q.deeplift("all"),
        "shap": q.gradient_shap(ia.topk(2), data, samples=3, seed=0),
        "cams": q.layer("relu2").xgrad_cam("all"),
        "cams_same": q.layer("relu2").hires_cam("all"),
        "guided_cam": q.layer("relu2").guided_grad_cam(0),
        "score": q.layer("conv2").score_cam(0),
        "conductance": q.layer("conv2").conductance(0, steps=3),
        "influence": q.layer("conv2").internal_influence(ia.topk(2), steps=3),
        "units": q.saliency(ia.units("conv2")),
    }


def test_the_plan_names_every_point_set(cnn, images):
    q = ia.model(cnn).on(images)
    text = ia.explain(*workload_plain(q).values())
    for line in (
        "physical: model 'Sequential' on inputs [4, 3, 8, 8] with 3 noisy copies (3 x 4 rows)",
        "forward clean inputs (4 rows; no gradients)",
        "inputs under guided_backprop rules (4 rows)",
        "inputs paired with references 0.0 (2 x 4 rows), DeepLift rules (8 rows)",
        "GradientSHAP points: 3 draws x 4 samples from 3 baselines (12 rows)",
        "forward baselines (3 rows; no gradients)",
        "inputs masked by layer 'conv2''s 6 channels (24 rows",
        "conductance path: 4 points x 4 samples, gausslegendre (16 rows",
        "6 units of 'conv2' wrt input",
    ):
        assert line in text, line
