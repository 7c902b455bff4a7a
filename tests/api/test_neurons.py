"""q.mistakes and q.counterfactual_neurons: a lazy filter and a lazy node computed in its own
phase; the Dataset equals the kernels' result; bad input named at construction."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import algebra as ia
from algebra.kernels.counterfactual import counterfactual_neurons as kernel_neurons

pytestmark = pytest.mark.usefixtures("one_thread")


def pooled_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 6, 3, padding=1),
            relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(6, 4),
        )
    ).eval()


def data(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 6, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


def snapshot(net: nn.Module):
    return (
        {k: v.clone() for k, v in net.state_dict().items()},
        {n: m.training for n, m in net.named_modules()},
        {n: p.requires_grad for n, p in net.named_parameters()},
    )


def assert_untouched(net: nn.Module, before) -> None:
    state, modes, flags = snapshot(net)
    assert all(torch.equal(state[k], v) for k, v in before[0].items())
    assert modes == before[1] and flags == before[2]
    assert all(p.grad is None for p in net.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def mistaken_class(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    with torch.no_grad():
        wrong = net(x).argmax(1) != y
    return int(torch.bincount(y[wrong], minlength=4).argmax())


def test_mistakes_is_the_where_filter(mlp, features):
    m = ia.model(mlp, classes=["a", "b", "c", "d"])
    q = m.on(features, labels=[0, 1, 2, 3, 1])
    wrong = ia.col.pred != ia.col.label
    assert q.mistakes().saliency(0).node == q.where(wrong).saliency(0).node
    by_class = q.where((ia.col.label == 1) & wrong).saliency(0).node
    assert q.mistakes(1).saliency(0).node == by_class
    assert q.mistakes("b").saliency(0).node == by_class  # a class name becomes its index
    r = q.mistakes(1).saliency("pred").compute()
    assert set(r.label.values.tolist()) <= {1} and bool((r.pred != r.label).all())


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda q: q.mistakes(4), ValueError, r"cls: class 4 is out of range; the model has 4 classes"),
        (lambda q: q.mistakes("e"), ValueError, r"cls: 'e' names no class of the model"),
        (lambda q: q.mistakes(1.5), TypeError, r"cls: expected a class index"),
    ],
)  # fmt: skip
def test_mistakes_refuses_bad_classes_at_construction(mlp, features, call, error, match):
    q = ia.model(mlp, classes=["a", "b", "c", "d"]).on(features, labels=[0, 1, 2, 3, 1])
    with pytest.raises(error, match=match):
        call(q)


def test_mistakes_need_labels(mlp, features):
    with pytest.raises(ValueError, match="labels: mistakes compare predictions with labels"):
        ia.model(mlp).on(features).mistakes()


def test_dataset_equals_the_kernels_result():
    net = pooled_cnn()
    x, y = data()
    cls = mistaken_class(net, x, y)
    ids = [f"s{i}" for i in range(len(x))]
    expr = ia.model(net).on(x, labels=y, ids=ids).counterfactual_neurons(cls, top=2)
    ds = expr.compute()
    ref = kernel_neurons(net, (x, y), cls, top=2)
    assert isinstance(ds, xr.Dataset)
    assert ds.votes.dims == ("neuron", "kind") and ds.delta.dims == ("sample", "neuron")
    assert ds.flipped.dims == ds.steps.dims == ("sample",)
    assert ds.kind.values.tolist() == ["insufficient", "excessive"]
    np.testing.assert_array_equal(ds.position.values, ref.sample.numpy())
    assert ds.sample.values.tolist() == [ids[i] for i in ref.sample.tolist()]
    np.testing.assert_array_equal(ds.label.values, y[ref.sample].numpy())
    np.testing.assert_array_equal(ds.delta.values, ref.delta.numpy())
    np.testing.assert_array_equal(ds.flipped.values, ref.flipped.numpy())
    np.testing.assert_array_equal(ds.steps.values, ref.steps.numpy())
    np.testing.assert_array_equal(ds.votes.values, ref.votes.kept.numpy())
    assert ds.attrs["insufficient"] == ref.votes.ranked("insufficient").tolist()
    assert ds.attrs["excessive"] == ref.votes.ranked("excessive").tolist()
    assert ds.attrs["threshold"] == 3.0 and ds.votes.attrs["threshold"] == 3.0
    assert ds.attrs["mistakes"] == len(ref.sample) and ds.attrs["head"] == "fc"
    assert (ds.attrs["kept"], ds.attrs["samples"]) == (len(x), len(x))
    # Votes are percentages of the mistakes: each mistake casts at most `top` per kind.
    assert float(ds.votes.sum("neuron").max()) <= 100.0 * 2 + 1e-4


def test_a_named_layer_and_head_give_the_same_split():
    net = pooled_cnn()
    x, y = data()
    cls = mistaken_class(net, x, y)
    q = ia.model(net).on(x, labels=y)
    at_input = q.counterfactual_neurons(cls).compute()
    at_layer = q.counterfactual_neurons(cls, layer="relu", head="fc").compute()
    selected = q.layer("relu").counterfactual_neurons(cls).compute()
    assert at_layer.attrs["layer"] == "relu" and at_input.attrs["layer"] == ""
    np.testing.assert_allclose(at_layer.delta.values, at_input.delta.values, atol=1e-5)
    assert q.layer("relu").counterfactual_neurons(cls).node == (
        q.counterfactual_neurons(cls, layer="relu").node
    )
    xr.testing.assert_identical(selected, at_layer.assign_attrs(head="fc"))


def test_the_query_filters_choose_the_samples():
    net = pooled_cnn()
    x, y = data()
    cls = mistaken_class(net, x, y)
    keep = list(range(0, len(x), 2))
    q = ia.model(net).on(x, labels=y)
    ds = q.where(ia.col.id.isin(keep)).counterfactual_neurons(cls, top=2).compute()
    ref = kernel_neurons(net, (x[keep], y[keep]), cls, top=2)
    assert ds.position.values.tolist() == [keep[i] for i in ref.sample.tolist()]
    np.testing.assert_allclose(ds.delta.values, ref.delta.numpy(), atol=1e-6)
    assert ds.attrs["kept"] == len(keep) and ds.attrs["where"].startswith("id in (0, 2")
    # q.mistakes(cls) first changes nothing but the recorded filter
    same = q.mistakes(cls).counterfactual_neurons(cls, top=2).compute()
    np.testing.assert_array_equal(
        same.delta.values, q.counterfactual_neurons(cls, top=2).compute().delta.values
    )


def test_edited_inputs_are_explained_as_edited():
    net = pooled_cnn()
    x, y = data()
    q = ia.model(net).on(x, labels=y).patch((0, 3, 0, 3), 1.0)
    patched = x.clone()
    patched[..., 0:3, 0:3] = 1.0
    cls = mistaken_class(net, patched, y)
    ds = q.counterfactual_neurons(cls, top=2).compute()
    ref = kernel_neurons(net, (patched, y), cls, top=2)
    np.testing.assert_array_equal(ds.delta.values, ref.delta.numpy())
    assert "(edited)" in q.counterfactual_neurons(cls).explain()


def test_nothing_runs_until_compute_and_explain_shows_the_stage(counting):
    net = pooled_cnn()
    x, y = data(300)
    cls = mistaken_class(net, x, y)
    counted = counting(net)
    expr = ia.model(counted, name="cnn").on(x, labels=y).counterfactual_neurons(cls, max_steps=50)
    plan = expr.explain()
    repr(expr), expr.graph(), ia.explain(expr)
    assert counted.calls == 0
    assert plan.splitlines()[:3] == [
        "plan: 1 counterfactual neuron expression",
        f"logical: counterfactual_neurons(cls={cls}, layer=None, head=None, top=5, max_steps=50, "
        "lr=0.01, l1=0.1, l2=0.01)",
        "neurons: model 'cnn' on inputs [300, 3, 6, 6]",
    ]
    assert "300 rows in 2 chunks of at most 256" in plan and "at most 50 steps" in plan
    filtered = ia.model(counted).on(x, labels=y).where(ia.col.score > 0.5).mistakes(cls)
    shown = filtered.counterfactual_neurons(cls, layer="net.relu").explain()
    assert (
        f"  mistakes: samples labelled {cls} and predicted otherwise, among the samples where "
        f"score > 0.5 and (label = {cls} and pred != label)\n"
    ) in shown
    assert "the pooled output of layer 'net.relu'" in shown
    expr.compute()
    # the probe that finds the decision layer (8 rows), then the batch in two chunks
    assert (counted.calls, counted.rows) == (3, 8 + 300)


def test_computed_with_attributions_memoized_and_recomputed_after_a_change():
    net = pooled_cnn()
    x, y = data()
    cls = mistaken_class(net, x, y)
    q = ia.model(net).on(x, labels=y)
    session = ia.Session()
    ds, sal = ia.compute(q.counterfactual_neurons(cls), q.saliency("pred"), session=session)
    assert isinstance(ds, xr.Dataset) and isinstance(sal, xr.DataArray)
    again = q.counterfactual_neurons(cls).compute(session=session)
    assert again is ds and session.hits == 1
    with torch.no_grad():
        net.fc.bias[cls] -= 0.5  # the model changed: its result cannot be reused
    changed = q.counterfactual_neurons(cls).compute(session=session)
    assert changed is not ds and changed.attrs["mistakes"] >= ds.attrs["mistakes"]


def test_the_model_comes_back_unchanged():
    net = pooled_cnn()
    net.relu.train()  # a mixed set of modes must come back as it was
    before = snapshot(net)
    x, y = data()
    with pytest.warns(UserWarning, match="training mode"):
        ia.model(net).on(x, labels=y).counterfactual_neurons(0, layer="relu").compute()
    assert_untouched(net, before)
    with pytest.warns(UserWarning, match="training mode"), pytest.raises(ValueError):
        ia.model(net).on(x, labels=y).counterfactual_neurons(0, layer="conv").compute()
    assert_untouched(net, before)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda q: q.counterfactual_neurons(4), ValueError, r"^cls: class 4 is out of range; the model has 4 classes \(0..3\)"),
        (lambda q: q.counterfactual_neurons(-1), ValueError, r"^cls: class -1 is out of range"),
        (lambda q: q.counterfactual_neurons(0, layer="rel"), ValueError, r"^layer: the model has no layer 'rel'. Did you mean 'relu'\?"),
        (lambda q: q.counterfactual_neurons(0, head="conv"), ValueError, r"^head: 'conv' is a Conv2d; the decision layer must be an nn.Linear"),
        (lambda q: q.counterfactual_neurons(0, top=7, head="fc"), ValueError, r"^top: 7 votes per mistake, but the decision layer 'fc' has only 6 neurons"),
        (lambda q: q.counterfactual_neurons(0, top=0), ValueError, r"^top: expected an integer >= 1"),
        (lambda q: q.counterfactual_neurons(0, max_steps=0), ValueError, r"^max_steps: expected an integer >= 1"),
        (lambda q: q.counterfactual_neurons(0, lr=0.0), ValueError, r"^lr: expected a positive finite number"),
        (lambda q: q.counterfactual_neurons(0, l1=-1.0), ValueError, r"^l1: expected a non-negative finite number"),
        (lambda q: q.window(0, 3, 0, 3).counterfactual_neurons(0), ValueError, r"^window: counterfactual neurons change pooled features"),
        (lambda q: q.layer("conv").counterfactual_neurons(0, layer="relu"), ValueError, r"^layer: the query selected layer 'conv' but layer='relu'"),
        (lambda q: q.mistakes(2).counterfactual_neurons(1), ValueError, r"^cls: the query keeps only samples labelled 2"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_at_construction(build, error, match):
    net = pooled_cnn()
    calls = []
    handle = net.register_forward_pre_hook(lambda *_: calls.append(1))
    x, y = data()
    q = ia.model(net, classes=list("abcd")).on(x, labels=y)
    try:
        with pytest.raises(error, match=match):
            build(q)
    finally:
        handle.remove()
    assert not calls  # nothing ran


def test_no_labels_no_counterfactuals():
    with pytest.raises(
        ValueError, match=r"^labels: counterfactual neurons start from the mistakes"
    ):
        ia.model(pooled_cnn()).on(data()[0]).counterfactual_neurons(0)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        # without class names, the class count is the decision layer's, known when it runs
        (lambda q: q.counterfactual_neurons(4), r"^cls: class 4 is out of range; the decision layer has 4 classes"),
        (lambda q: q.counterfactual_neurons(0, layer="conv"), r"^layer: W·pool\('conv'\) \+ b does not reproduce .* name the decision layer with head="),
        (lambda q: q.counterfactual_neurons(0, top=7), r"^top: 7 votes per mistake, but the decision layer 'fc' has only 6 neurons"),
    ],
)  # fmt: skip
def test_what_needs_the_model_is_refused_when_computed(build, match):
    x, y = data()
    with pytest.raises(ValueError, match=match):
        build(ia.model(pooled_cnn()).on(x, labels=y)).compute()


def test_no_mistakes_is_a_clear_message():
    net = pooled_cnn()
    x, _ = data()
    with torch.no_grad():
        pred = net(x).argmax(1)
    q = ia.model(net).on(x, labels=pred)  # labels the model agrees with: no mistakes
    cls = int(pred[0])
    count = int((pred == cls).sum())
    with pytest.raises(ValueError, match=rf"^cls: no mistakes for class {cls}: the model predicts all {count} samples labelled {cls} correctly$"):  # fmt: skip
        q.counterfactual_neurons(cls).compute()
    absent = next(c for c in range(4) if c not in pred.tolist())
    with pytest.raises(ValueError, match=rf"^cls: no mistakes for class {absent}: no sample is labelled {absent}$"):  # fmt: skip
        q.counterfactual_neurons(absent).compute()
    _, y = data()
    cls = mistaken_class(net, x, y)
    filtered = ia.model(net).on(x, labels=y).where(ia.col.id < 0)
    with pytest.raises(ValueError, match=r"among the 0 samples the query keeps \(its where clause\); all \d+ of the batch are filtered out"):  # fmt: skip
        filtered.counterfactual_neurons(cls).compute()


def test_a_dataset_expression_has_no_verbs():
    e = ia.model(pooled_cnn()).on(*data()[:1], labels=data()[1]).counterfactual_neurons(0)
    assert isinstance(e, ia.DatasetExpr) and not hasattr(e, "mean")
    assert repr(e).startswith("DatasetExpr(counterfactual_neurons(cls=0")


def test_shares_at_or_below_the_threshold_are_dropped():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 40), nn.ReLU(), nn.Linear(40, 3)).eval()
    x = torch.randn(400, 5, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        rare = int(torch.bincount(net(x).argmax(1), minlength=3).argmin())
    ds = ia.model(net).on(x, labels=[rare] * 400).counterfactual_neurons(rare, top=1).compute()
    raw = kernel_neurons(net, (x, torch.full((400,), rare)), rare, top=1).votes.percent.numpy()
    assert ds.attrs["mistakes"] > 100 and ((raw > 0) & (raw <= 3.0)).any()  # a real test
    np.testing.assert_array_equal(ds.votes.values, np.where(raw > 3.0, raw, 0.0))
