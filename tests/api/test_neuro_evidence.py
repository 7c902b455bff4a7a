"""The NeuroInspect evidence of issue 14 through the public API, at test sizes, on seed 0 of the
spurious-mark digits task (the same seed as tests/kernels/test_neuro_evidence.py; figures
over six seeds in docs/neuroinspect.md, "Evidence").

Stage 1 finds the mistakes of class 8 on the audit split and the neurons behind them;
stage 2 visualises the most-voted neuron; stage 3 edits the decision layer, beside the
control, choosing checkpoints on the audit split (which shows the failure), and is scored
on the held-out test split.
"""

from __future__ import annotations

import pytest
import torch

import algebra as ia
from algebra.demo import data as dd
from algebra.kernels.decision import decision_features, find_decision

pytestmark = pytest.mark.usefixtures("one_thread")

CLS = 8


@pytest.fixture(scope="module")
def stage1(spurious_digits):
    task, model = spurious_digits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        m = ia.model(model, name="digits", classes=[str(c) for c in range(10)])
        q = m.on(task.x_audit, labels=task.y_audit)
        found = q.mistakes(CLS).counterfactual_neurons(CLS, layer="block4").compute()
        yield task, model, m, found
    finally:
        torch.set_num_threads(threads)


def features(model, inputs):
    """Pooled block4 features: the measuring instrument, not the method under test."""
    decision = find_decision(model, inputs[:8], layer="block4")
    return decision, decision_features(model, decision, inputs)[0]


def test_counterfactuals_flip_at_least_90_percent_of_the_mistakes(stage1):
    task, model, m, found = stage1
    assert found.attrs["mistakes"] >= 10 and found.attrs["flipped_percent"] >= 90.0
    assert float(found.flipped.mean()) >= 0.9 and int(found.steps.max()) <= 500
    decision, z = features(model, task.x_audit[torch.from_numpy(found.position.values)])
    moved = decision.logits(z + torch.from_numpy(found.delta.values)).argmax(1) == CLS
    assert moved.tolist() == found.flipped.values.tolist()
    # the query language says the same thing, and the session already holds it
    text = "select neurons of block4 from f(x) where mistakes of 8"
    assert ia.query(text, f=m, x=(task.x_audit, task.y_audit)).compute() is found


def test_top_voted_neurons_respond_to_the_mark_more_than_to_the_digit(stage1):
    task, model, m, found = stage1
    top = torch.tensor(found.attrs["insufficient"][:3])
    assert found.votes.sel(kind="insufficient", neuron=top.tolist()).min() > 3.0
    plain = task.x_test[~task.marked_test]
    labels = task.y_test[~task.marked_test]
    _, z = features(model, plain)
    _, z_marked = features(model, dd.add_mark(plain))
    mark = (z_marked - z).mean(0)  # the same images with and without the mark
    digit = z[labels == CLS].mean(0) - z[labels != CLS].mean(0)  # class 8 against the rest
    assert mark[top[0]] > digit[top[0]]
    assert mark[top].mean() > digit[top].mean()
    assert mark[top].mean() > mark.median()
    # and they support class 8 at the mean feature of the audit split
    importance = m.neuron_importance(CLS, task.x_audit, layer="block4")
    assert (importance.sel(neuron=top.tolist()) > 1.0).all()


def test_mitigation_beats_the_control_on_the_worst_class(stage1):
    task, _, m, found = stage1
    neurons = found.attrs["insufficient"][:10]  # the reference's automatic choice
    fix = m.mitigate(
        neurons, CLS, (task.x_train, task.y_train), val_data=(task.x_audit, task.y_audit),
        groups=task.groups_audit, layer="block4", control=True,
    )  # fmt: skip
    test = fix.evaluate((task.x_test, task.y_test), groups=task.groups_test)
    worst, overall = test.worst_class, test.overall
    gain = float(worst.sel(version="after") - worst.sel(version="before"))
    control_gain = float(worst.sel(version="control") - worst.sel(version="before"))
    assert int(test.per_class.sel(version="before").argmin("class")) == CLS  # class 8 is the worst
    assert gain >= 0.10  # a clear margin: 10 points on the worst class
    assert float(overall.sel(version="after")) >= float(overall.sel(version="before")) - 0.01
    assert gain > control_gain + 0.05  # and clearly more than plain retraining
    without_mark = test.per_group.sel(group=2 * CLS)
    assert float(without_mark.sel(version="after") - without_mark.sel(version="before")) > 0.2
    with torch.no_grad():  # the edited model's own forward agrees with the report
        right = fix.model.module(task.x_test).argmax(1) == task.y_test
    assert float(right.float().mean()) == pytest.approx(float(overall.sel(version="after")))


def test_visualisation_beats_real_images_and_the_class_raises_its_logit(stage1):
    task, model, m, found = stage1
    top = found.attrs["insufficient"][0]
    _, z = features(model, torch.cat([task.x_test, task.x_audit]))
    q99 = float(torch.quantile(z[:, top], 0.99))
    common = dict(steps=150, images=2, example=task.x_test, seed=0)
    with ia.set_options(progress=False):
        plain = m.visualize("block4", [top], **common)
        conditioned = m.visualize("block4", [top], cls=CLS, **common)
    assert float(plain.activation.min()) > q99
    assert float(conditioned.activation.min()) > q99
    logit_plain = float(plain.logits.sel(**{"class": CLS}).mean())
    logit_cls = float(conditioned.logits.sel(**{"class": CLS}).mean())
    assert logit_cls > logit_plain + 1.0
