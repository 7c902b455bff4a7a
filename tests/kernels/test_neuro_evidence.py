"""Evidence for NeuroInspect on the spurious-mark digits task (issue 14), with a trained CNN.

The model is trained once per session (seed 0, about 5 s on one thread; the
``spurious_digits`` fixture, shared with tests/api/test_neuro_evidence.py). The same
pipeline at full size and over several seeds: benchmarks/neuroinspect_evidence.py, whose
figures are in docs/neuroinspect.md ("Evidence").
"""

from __future__ import annotations

import pytest
import torch

from algebra.demo import data as dd
from algebra.kernels.accuracy import accuracy
from algebra.kernels.counterfactual import counterfactual_neurons
from algebra.kernels.decision import decision_features, find_decision
from algebra.kernels.mitigate import mitigate
from algebra.kernels.visualize import visualize

CLS = 8


@pytest.fixture(scope="module")
def trained(spurious_digits):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is several times faster
    try:
        task, model = spurious_digits  # built once per session (tests/conftest.py)
        decision = find_decision(model, task.x_test[:8], layer="block4")
        found = counterfactual_neurons(model, (task.x_audit, task.y_audit), CLS, layer="block4")
        yield task, model, decision, found
    finally:
        torch.set_num_threads(threads)


def test_the_task_has_the_shortcut(trained):
    task, _, decision, _ = trained
    z, _ = decision_features(trained[1], decision, task.x_test)
    acc = accuracy(decision.weight, decision.bias, z, task.y_test, task.groups_test)
    assert acc.worst_class == float(acc.per_class[CLS])  # class 8 is the worst class
    assert acc.per_group[2 * CLS] < 0.5 < acc.per_group[2 * CLS + 1]  # without / with the mark


def test_counterfactuals_flip_at_least_90_percent_of_the_mistakes(trained):
    task, model, decision, found = trained
    assert len(found.sample) >= 10
    assert float(found.flipped.float().mean()) >= 0.9
    assert int(found.steps.max()) <= 500
    z, _ = decision_features(model, decision, task.x_audit[found.sample])
    flipped = decision.logits(z + found.delta).argmax(1) == CLS
    assert torch.equal(flipped, found.flipped)


def test_top_voted_neurons_respond_to_the_mark_more_than_to_the_digit(trained):
    task, model, decision, found = trained
    plain = task.x_test[~task.marked_test]
    labels = task.y_test[~task.marked_test]
    z, _ = decision_features(model, decision, plain)
    z_marked, _ = decision_features(model, decision, dd.add_mark(plain))
    mark = (z_marked - z).mean(0)  # the same images with and without the mark
    digit = z[labels == CLS].mean(0) - z[labels != CLS].mean(0)  # class 8 against the rest
    top = found.votes.ranked("insufficient")[:3]
    assert mark[top[0]] > digit[top[0]]
    assert mark[top].mean() > digit[top].mean()
    assert mark[top].mean() > mark.median()  # and more than a typical neuron does


def test_mitigation_raises_the_worst_class_more_than_the_control(trained):
    task, model, decision, found = trained
    neurons = found.votes.ranked("insufficient")[:10]  # the reference's automatic choice
    res = mitigate(
        model, neurons, CLS, (task.x_train, task.y_train), val_data=(task.x_audit, task.y_audit),
        layer="block4", control=True,
    )  # fmt: skip
    z, _ = decision_features(model, decision, task.x_test)

    def on_test(weight, bias):
        return accuracy(weight, bias, z, task.y_test, task.groups_test)

    before = on_test(decision.weight, decision.bias)
    after = on_test(res.fit.weight, res.fit.bias)
    control = on_test(res.control_fit.weight, res.control_fit.bias)
    gain = after.worst_class - before.worst_class
    assert gain >= 0.10  # a clear margin: 10 points on the worst class (class 8)
    assert after.overall >= before.overall - 0.01  # overall down at most 1 point
    assert gain > (control.worst_class - before.worst_class) + 0.05
    assert after.per_group[2 * CLS] > before.per_group[2 * CLS] + 0.2  # 8 without the mark
    with torch.no_grad():  # the edited copy really carries the new head
        logits = res.module(task.x_test[:16])
    torch.testing.assert_close(logits, z[:16] @ res.fit.weight.T + res.fit.bias)


def test_visualisation_beats_real_images_and_the_class_raises_its_logit(trained):
    task, model, decision, found = trained
    top = int(found.votes.ranked("insufficient")[0])
    z, _ = decision_features(model, decision, torch.cat([task.x_test, task.x_audit]))
    q99 = torch.quantile(z[:, top], 0.99)
    common = dict(steps=150, images=2, example=task.x_test, seed=0)
    plain = visualize(model, "block4", [top], **common)
    conditioned = visualize(model, "block4", [top], cls=CLS, **common)
    assert plain.activation.min() > q99
    assert conditioned.activation.min() > q99
    assert conditioned.logits[..., CLS].mean() > plain.logits[..., CLS].mean() + 1.0
