"""The labelled results of importance, visualisation and mitigation equal the kernels' outputs,
and ``.ia.plot()`` draws the Datasets."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import algebra as ia
from algebra.kernels.importance import neuron_importance as kernel_importance
from algebra.kernels.mitigate import mitigate as kernel_mitigate
from algebra.kernels.visualize import visualize as kernel_visualize

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["zero", "one", "two"]


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 5, 3, padding=1),
            relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(5, 3),
        )
    ).eval()


def data(n: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.fixture(autouse=True)
def no_bar():
    with ia.set_options(progress=False):
        yield


def test_importance_equals_the_kernels():
    x, _ = data()
    m = ia.model(net(), name="cnn", classes=CLASSES)
    imp = m.neuron_importance("two", x, layer="relu")
    ref = kernel_importance(net(), x, 2, layer="relu")
    assert imp.dims == ("neuron",) and imp.name == "neuron_importance"
    np.testing.assert_array_equal(imp.values, ref.numpy())
    assert imp.neuron.values.tolist() == list(range(5))
    assert {k: imp.attrs[k] for k in ("cls", "class_name", "layer", "head", "samples")} == {
        "cls": 2,
        "class_name": "two",
        "layer": "relu",
        "head": "fc",
        "samples": 60,
    }


def test_visualisation_equals_the_kernels():
    m = ia.model(net(), classes=CLASSES)
    vis = m.visualize("relu", [3, 1], cls=1, steps=4, images=2, size=8, seed=3)
    ref = kernel_visualize(net(), "relu", [3, 1], cls=1, steps=4, images=2, size=8, channels=3, seed=3)  # fmt: skip
    assert vis.images.dims == ("neuron", "image", "channel", "y", "x")
    assert vis.masks.dims == ("neuron", "image", "y", "x") and vis.masks.dtype == bool
    assert vis.neuron.values.tolist() == [3, 1]
    np.testing.assert_array_equal(vis.images.values, ref.images.numpy())
    np.testing.assert_array_equal(vis.masks.values, ref.masks.numpy())
    np.testing.assert_array_equal(vis.activation.values, ref.activation.numpy())
    np.testing.assert_array_equal(vis.logits.values, ref.logits.numpy())
    np.testing.assert_array_equal(vis.loss.values, ref.losses.numpy())
    assert vis.class_name.values.tolist() == CLASSES
    assert (vis.attrs["cls"], vis.attrs["class_name"], vis.attrs["seed"]) == (1, "one", 3)
    plain = m.visualize("relu", 0, steps=2, images=1, size=(3, 8, 6), seed=0)
    assert "cls" not in plain.attrs and dict(plain.images.sizes) == {
        "neuron": 1, "image": 1, "channel": 3, "y": 8, "x": 6
    }  # fmt: skip
    like = m.visualize("relu", 0, steps=2, images=1, example=data(2)[0], seed=0)
    assert like.images.shape[-3:] == (3, 6, 6)


def test_mitigation_report_equals_the_kernels_accuracies():
    x, y = data()
    xv, yv = data(40, 1)
    groups = (torch.arange(40) % 2).tolist()
    m = ia.model(net(), classes=CLASSES)
    fix = m.mitigate([0, 2], 1, (x, y), val_data=(xv, yv), groups=groups, epochs=3, control=True)
    ref = kernel_mitigate(
        net(), [0, 2], 1, (x, y), val_data=(xv, yv), groups=groups, epochs=3, control=True
    )
    report = fix.report
    assert report.version.values.tolist() == ["before", "after", "control"]
    assert report.per_class.dims == ("version", "class") and report.group.values.tolist() == [0, 1]
    for version, acc in zip(
        ("before", "after", "control"),
        (ref.report.before, ref.report.after, ref.report.control),
        strict=True,
    ):
        row = report.sel(version=version)
        assert float(row.overall) == acc.overall and float(row.worst_class) == acc.worst_class
        np.testing.assert_array_equal(row.per_class.values, acc.per_class.numpy())
        assert row.per_group.values.tolist() == [acc.per_group[0], acc.per_group[1]]
        assert float(row.worst_group) == acc.worst_group
    assert report.attrs["neurons"] == [0, 2] and report.attrs["evaluated_on"] == "val_data"
    assert report.attrs["ratio"] == ref.ratio and report.attrs["epoch"] == ref.fit.epoch
    torch.testing.assert_close(fix.module.fc.weight, ref.head.weight, rtol=0, atol=0)
    without = m.mitigate([0], 1, (x, y), epochs=2).report
    assert without.version.values.tolist() == ["before", "after"] and "group" not in without.dims
    assert without.attrs["evaluated_on"] == "data"


def test_plots_draw_the_datasets(tmp_path):
    x, y = data()
    m = ia.model(net(), classes=CLASSES)
    vis = m.visualize("relu", [0, 1, 4], cls=0, steps=2, images=2, size=8, seed=0)
    fig = vis.ia.plot()
    panels = [ax for ax in fig.axes if ax.get_label().startswith("panel")]
    assert len(panels) == 6 and "class zero" in fig._suptitle.get_text()
    fig.savefig(tmp_path / "grid.png")
    # the panels dim where the mask is off
    shown = panels[0].get_images()[0].get_array()
    image = np.moveaxis(vis.images.values[0, 0], 0, -1)
    mask = vis.masks.values[0, 0][..., None]
    np.testing.assert_allclose(shown, (image * np.where(mask, 1.0, 0.3)).clip(0, 1), atol=1e-6)
    cls = int(torch.bincount(y).argmax())
    cf = m.on(x, labels=y).counterfactual_neurons(cls, top=2).compute()
    bars = cf.ia.plot(top=3)
    assert [ax.get_label() for ax in bars.axes] == ["panel insufficient", "panel excessive"]
    with pytest.raises(ValueError, match=r"plot: expected the Dataset of Model\.visualize"):
        xr.Dataset({"a": ("x", [1.0])}).ia.plot()
    with pytest.raises(ValueError, match="dim: expected a brightness"):
        vis.ia.plot(dim=2.0)
