"""Bad input fails at construction with an error naming the argument and what was expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import algebra as ia


@pytest.fixture
def q(mlp, features):
    return ia.model(mlp, classes=["a", "b", "c", "d"]).on(features)


def test_unknown_layer_names_close_matches(cnn, images):
    with pytest.raises(
        ValueError,
        match=r"layer: the model has no layer 'conv3'\. Did you mean 'conv\d' or 'conv\d'\?",
    ):
        ia.model(cnn).on(images).layer("conv3")


def test_one_layer_per_query(cnn, images):
    with pytest.raises(ValueError, match="already selected"):
        ia.model(cnn).on(images).layer("conv1").layer("conv2")


@pytest.mark.parametrize("target", [4, 9, [0, 1, 2, 3, 4], ia.classes([1, 7])])
def test_target_out_of_range_at_construction(q, target):
    with pytest.raises(ValueError, match=r"target: class \d+ is out of range for 4 classes"):
        q.saliency(target)


def test_target_out_of_range_at_compute_when_classes_unknown(mlp, features):
    expr = ia.model(mlp).on(features).saliency(7)  # nothing tells the class count before a forward
    with pytest.raises(
        ValueError, match=r"target: class 7 is out of range for a model with 4 outputs"
    ):
        expr.compute()


def test_topk_larger_than_classes(q):
    with pytest.raises(ValueError, match=r"topk\(5\)"):
        q.saliency(ia.topk(5))


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        (-1, ValueError, "class index >= 0"),
        (True, TypeError, "expected an integer class index"),
        (1.5, TypeError, "expected an integer class index; got 1.5"),
        (torch.tensor(1.0), TypeError, "expected an integer class index"),
        ("prediction", ValueError, "unknown value 'prediction'.*Did you mean 'pred'"),
        ([0, 1], ValueError, r"one class per sample \(5\); got 2"),
    ],
)
def test_bad_targets(q, target, error, message):
    with pytest.raises(error, match=message):
        q.saliency(target)


def test_label_target_needs_labels(q):
    with pytest.raises(ValueError, match="'label' needs labels"):
        q.integrated_gradients("label")


def test_labels_checked(mlp, features):
    m = ia.model(mlp, classes=list("abcd"))
    with pytest.raises(ValueError, match="labels: expected 5 labels, one per input sample; got 4"):
        m.on(features, labels=[0, 1, 2, 3])
    with pytest.raises(
        TypeError, match=r"labels: expected an integer tensor; got dtype torch\.float32"
    ):
        m.on(features, labels=torch.zeros(5))
    with pytest.raises(ValueError, match="label 9 is out of range for 4 classes"):
        m.on(features, labels=[0, 1, 2, 3, 9])


def test_inputs_checked(mlp):
    m = ia.model(mlp)
    with pytest.raises(
        ValueError,
        match=r"inputs: expected a batch \[N, \.\.\.\] with at least 2 dimensions; got shape \(6,\)",
    ):
        m.on(torch.zeros(6))
    # Integer inputs are token ids: their gradient is refused, naming what to select.
    with pytest.raises(ValueError, match=r"saliency: the inputs hold token ids \(input\)"):
        m.on(torch.zeros(2, 6, dtype=torch.long)).saliency(0)
    with pytest.raises(TypeError, match=r"inputs: expected a torch\.Tensor"):
        m.on([[0.0] * 6])
    bad = torch.zeros(2, 6)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="inputs: 1 value"):
        m.on(bad)
    assert m.on(np.zeros((2, 6), dtype=np.float32)).node.shape == (2, 6)


def test_method_parameters_checked(q):
    with pytest.raises(ValueError, match="steps: expected an integer >= 1; got 0"):
        q.integrated_gradients(0, steps=0)
    with pytest.raises(
        ValueError, match=r"method: unknown value 'gauss_legendre'.*Did you mean 'gausslegendre'"
    ):
        q.integrated_gradients(0, method="gauss_legendre")
    with pytest.raises(ValueError, match="riemann_trapezoid needs at least 2 steps"):
        q.integrated_gradients(0, steps=1, method="riemann_trapezoid")
    with pytest.raises(ValueError, match=r"baseline: shape \(7,\) is not broadcastable"):
        q.integrated_gradients(0, baseline=torch.zeros(7))
    with pytest.raises(ValueError, match="baseline: expected a finite number"):
        q.integrated_gradients(0, baseline=float("inf"))
    with pytest.raises(TypeError, match="abs: expected True or False"):
        q.saliency(0, abs="yes")


def test_model_and_on_arguments_checked(mlp, features):
    with pytest.raises(TypeError, match=r"module: expected a torch\.nn\.Module"):
        ia.model(lambda x: x)
    with pytest.raises(TypeError, match="classes: expected a list of class names"):
        ia.model(mlp, classes="abcd")
    m = ia.model(mlp)
    with pytest.raises(ValueError, match="dims: expected 1 names"):
        m.on(features, dims=("a", "b"))
    with pytest.raises(ValueError, match="dims: names must be unique and not 'sample'"):
        m.on(features, dims=("sample",))
    with pytest.raises(ValueError, match="ids: expected 5 ids"):
        m.on(features, ids=[1, 2])
    with pytest.raises(ValueError, match="ids: sample ids must be unique"):
        m.on(features, ids=[1, 1, 2, 3, 4])


def test_wrong_model_output_is_reported(features):
    net = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Unflatten(1, (2, 2))).eval()
    with pytest.raises(ValueError, match=r"model: expected an output of shape \[N, classes\]"):
        ia.model(net).on(features).saliency(0).compute()


def test_compute_rejects_non_expressions(q):
    with pytest.raises(TypeError, match="exprs: argument 1 is a Query"):
        ia.compute(q.saliency(0), q)
    with pytest.raises(TypeError, match="exprs: key 'b' is a int"):
        ia.compute({"a": q.saliency(0), "b": 3})


def test_in_place_change_after_building_is_refused(mlp, features):
    expr = ia.model(mlp).on(features).saliency(0)
    features.mul_(2)
    with pytest.raises(
        ValueError, match="inputs: the tensor was modified in place after the query was built"
    ):
        expr.compute()


def test_in_place_change_of_baseline_is_refused(mlp, features):
    baseline = torch.zeros(1, 6)
    expr = ia.model(mlp).on(features).integrated_gradients(0, steps=2, baseline=baseline)
    baseline.add_(1)
    with pytest.raises(ValueError, match="baseline: the tensor was modified in place"):
        expr.compute()


def test_labels_and_dims_given_as_strings(mlp, features):
    m = ia.model(mlp)
    with pytest.raises(TypeError, match="labels: expected integers, one per sample; got a string"):
        m.on(features, labels="abcde")
    with pytest.raises(
        TypeError, match="labels: expected integers, one per sample; got float64 values"
    ):
        m.on(features, labels=[0.5] * 5)
    with pytest.raises(TypeError, match=r"dims: expected a sequence of names \(str\); got 'f'"):
        m.on(features, dims="f")


def test_empty_name_gets_no_suggestions(q):
    with pytest.raises(
        ValueError, match=r"unknown value ''; expected one of 'pred', 'label', 'all'\.$"
    ):
        q.saliency("")


class WithUnusedLayer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 4)
        self.unused = torch.nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_layer_not_called_in_forward(features):
    net = WithUnusedLayer().eval()
    with pytest.raises(
        ValueError, match="layer: 'unused' is not called in the model's forward pass"
    ):
        ia.model(net).on(features).layer("unused").saliency(0).compute()
    assert all(not m._forward_hooks for m in net.modules())


def test_numpy_inputs_take_the_models_dtype_and_torch_mismatches_are_refused(mlp, features):
    m = ia.model(mlp)
    r = m.on(features.numpy().astype(np.float64)).saliency(0).compute()
    assert r.shape == (5, 6)
    with pytest.raises(
        TypeError, match=r"inputs: dtype torch\.float64 does not match the model's torch\.float32"
    ):
        m.on(features.double())


def test_class_names_must_match_the_model_outputs(mlp, features):
    with pytest.raises(
        ValueError, match="classes: 2 class names were given, but the model has 4 outputs"
    ):
        ia.model(mlp, classes=["a", "b"]).on(features).saliency("pred").compute()


def test_out_of_range_labels_without_class_names_name_labels(mlp, features):
    with pytest.raises(
        ValueError, match="labels: label 7 is out of range for a model with 4 outputs"
    ):
        ia.model(mlp).on(features, labels=[0, 1, 2, 3, 7]).saliency("label").compute()


def test_labels_changed_in_place_are_refused(mlp, features):
    labels = torch.tensor([0, 1, 2, 3, 0])
    expr = ia.model(mlp).on(features, labels=labels).saliency("label")
    labels[0] = 3
    with pytest.raises(ValueError, match="labels: the tensor was modified in place"):
        expr.compute()


def test_numpy_scalars_and_wrong_types(q):
    assert (
        q.integrated_gradients(
            ia.topk(np.int64(2)), steps=np.int64(3), baseline=np.float32(0.5)
        ).node
        is not None
    )
    with pytest.raises(TypeError, match=r"steps: expected an integer >= 1; got 1\.5"):
        q.integrated_gradients(0, steps=1.5)
    with pytest.raises(TypeError, match="k: expected an integer >= 1"):
        ia.topk(2.0)
    with pytest.raises(ValueError, match=r"classes: each class may appear once; got \[1, 1\]"):
        ia.classes([1, 1])
    with pytest.raises(TypeError, match="ids: expected one id per sample; got the string"):
        ia.model(torch.nn.Linear(6, 4).eval()).on(torch.zeros(5, 6), ids="abcde")


def test_long_per_sample_targets_are_shortened(mlp):
    x = torch.zeros(20, 6)
    expr = ia.model(mlp).on(x).saliency(list(range(4)) * 5)
    assert "... (20 samples)" in repr(expr) and len(repr(expr)) < 100


def test_empty_dict_computes_to_empty_dict():
    assert ia.compute({}) == {}
