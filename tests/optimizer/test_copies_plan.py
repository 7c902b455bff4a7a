"""How the optimizer lowers perturbation methods: one copies point set per baseline and
layer, each design read for any number of targets, the sharing rules honoured."""

from __future__ import annotations

import torch

import algebra as ia
from algebra.optimizer import flags, optimize


def _groups(exprs, rules=None):
    plan = optimize([e.node for e in exprs], rules or flags())
    (planned,) = plan.fused
    return plan, planned.job


def test_perturbations_on_one_baseline_form_one_stream(cnn, images):
    q = ia.model(cnn).on(images)
    exprs = [
        q.shapley(0, samples=3, seed=0),
        q.shapley(1, samples=3, seed=0),
        q.feature_ablation("all"),
    ]
    plan, job = _groups(exprs)
    assert [g.points.kind for g in job.groups] == ["inputs", "copies"]
    copies = job.groups[1]
    assert len(copies.perturbations) == 3 and not copies.requests and not copies.grad
    assert plan.simplified.designs == 2  # shapley's design serves both its targets
    assert plan.simplified.requests == 0
    assert {o.kind for o in job.results} == {"perturbation"}


def test_a_feature_permutation_joins_the_zero_baseline_stream(cnn, images):
    q = ia.model(cnn).on(images)
    _, job = _groups([q.feature_permutation(0, seed=1), q.feature_ablation(0)])
    assert [g.points.kind for g in job.groups] == ["inputs", "copies"]


def test_baselines_and_layers_make_their_own_streams(cnn, images):
    q = ia.model(cnn).on(images)
    other = ia.model(cnn).on(torch.zeros_like(images))
    exprs = [
        q.feature_ablation(0),
        q.feature_ablation(0, baseline=torch.ones(3, 8, 8)),
        q.shapley(0, baseline=other, samples=2),
        q.layer("relu1").feature_ablation(0),
    ]
    _, job = _groups(exprs)
    kinds = [(g.points.kind, g.points.layer) for g in job.groups]
    assert kinds == [
        ("inputs", None),
        ("baseline", None),
        ("copies", None),
        ("copies", None),
        ("copies", None),
        ("copies", "relu1"),
    ]
    assert job.groups[0].capture == ("relu1",)  # the layer's values at the inputs...
    assert job.groups[1].capture == ("relu1",)  # ...and at the baseline: the copies' fill


def test_sharing_off_makes_a_stream_per_expression(cnn, images):
    q = ia.model(cnn).on(images)
    exprs = [q.feature_ablation(0), q.feature_ablation(1)]
    with ia.set_options(share_forward=False):
        _, job = _groups(exprs, flags())
    assert [g.points.kind for g in job.groups].count("copies") == 2
    _, job = _groups(exprs, flags(optimize=False))
    assert [g.points.kind for g in job.groups].count("copies") == 2


def test_perturbations_and_gradients_share_the_inputs_pass(cnn, images):
    q = ia.model(cnn).on(images)
    _, job = _groups([q.saliency(0), q.shapley(0, samples=2), q.integrated_gradients(0, steps=2)])
    assert [g.points.kind for g in job.groups] == ["inputs", "path", "copies"]
    assert job.groups[0].grad  # saliency's backward on the pass that resolves the targets


def test_explain_shows_copies_designs_and_targets(cnn, images):
    q = ia.model(cnn).on(images)
    text = ia.explain(q.shapley("all", samples=2, seed=0), q.occlusion(0, 4, 4))
    assert "simplified: 2 unique expressions, 0 gradient requests, 2 perturbation designs" in text
    assert "copies, baseline 0.0 (" in text
    assert "shapley over 64 players: 130 copies" in text
    assert "occlusion 4 windows: 5 copies" in text
    assert "targets all, 0: read from the same logits, no extra forward" in text
