"""Model.neuron_importance, Model.visualize, Model.mitigate and ia.guides: the user's model
comes back unchanged, the edited copy is a working model, bad input names its argument."""

from __future__ import annotations

import sys
import types
from collections import OrderedDict

import pytest
import torch
from torch import nn

import algebra as ia
from algebra.kernels.visualize import visualize

pytestmark = pytest.mark.usefixtures("one_thread")


def net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 5, 3, padding=1),
            bn=nn.BatchNorm2d(5),
            relu=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(5, 3),
        )
    ).eval()


def data(n: int = 60, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def snapshot(module: nn.Module):
    return (
        {k: v.clone() for k, v in module.state_dict().items()},
        {n: m.training for n, m in module.named_modules()},
        {n: p.requires_grad for n, p in module.named_parameters()},
    )


@pytest.fixture(autouse=True)
def no_bar():
    with ia.set_options(progress=False):
        yield


def test_the_users_model_comes_back_unchanged():
    module = net()
    module.relu.train()
    module.fc.weight.requires_grad_(False)
    before = snapshot(module)
    m = ia.model(module, classes=["a", "b", "c"])
    x, y = data()
    with pytest.warns(UserWarning, match="training mode"):
        m.neuron_importance(1, x)
        m.visualize("relu", [0, 3], cls="b", steps=3, images=2, size=6, seed=0)
        fix = m.mitigate([0, 1], 2, (x, y), epochs=2, control=True)
    state, modes, flags = snapshot(module)
    assert all(torch.equal(state[k], v) for k, v in before[0].items())
    assert (modes, flags) == before[1:]
    assert all(p.grad is None for p in module.parameters())
    assert all(not s._forward_hooks and not s._forward_pre_hooks for s in module.modules())
    # The copy: a new head, the backbone's tensors shared, eval mode throughout.
    assert fix.module.fc is not module.fc and fix.module.conv.weight is module.conv.weight
    assert fix.module.bn.running_mean is module.bn.running_mean
    assert not any(s.training for s in fix.module.modules())


def test_the_mitigated_model_is_a_working_model():
    module = net()
    x, y = data()
    m = ia.model(module, name="cnn", classes=["a", "b", "c"])
    fix = m.mitigate([0, 1], 2, (x, y), val_data=data(30, 1), epochs=3, control=True)
    assert isinstance(fix.model, ia.Model) and fix.model.module is fix.module
    assert fix.model.name == "cnn (mitigated)" and fix.model.classes == ("a", "b", "c")
    assert fix.control_model.name == "cnn (control)"
    assert fix.control_module.fc is not fix.module.fc
    with torch.no_grad():
        features = module.flat(module.pool(module.relu(module.bn(module.conv(x)))))
        torch.testing.assert_close(fix.module(x), fix.module.fc(features))
    sal = fix.model.on(x[:4]).saliency("pred").compute()  # it queries like any model
    assert sal.attrs["model"] == "cnn (mitigated)"
    held_out = fix.evaluate(data(40, 2), groups=[0, 1] * 20)
    with torch.no_grad():
        xt, yt = data(40, 2)
        after = float((fix.module(xt).argmax(1) == yt).float().mean())
        before = float((module(xt).argmax(1) == yt).float().mean())
    assert float(held_out.overall.sel(version="after")) == pytest.approx(after)
    assert float(held_out.overall.sel(version="before")) == pytest.approx(before)
    assert held_out.attrs["evaluated_on"] == "evaluate" and held_out.sizes["group"] == 2
    text = repr(fix)
    assert text.startswith("Mitigation of class 2 by neurons [0, 1]; accuracy on val_data")
    assert "control" in text.splitlines()[-1]


def test_the_report_is_each_versions_own_accuracy():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()

    def learnable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
        return x, x[:, :3].argmax(1)

    xv, yv = learnable(60, 1)
    fix = ia.model(mlp).mitigate(
        [0, 1, 2], 2, learnable(90, 0), val_data=(xv, yv), epochs=6, lr=0.05, lam=1.0,
        control=True,
    )  # fmt: skip
    report = fix.report
    with torch.no_grad():
        for version, module in (
            ("before", mlp),
            ("after", fix.module),
            ("control", fix.control_module),
        ):
            right = module(xv).argmax(1) == yv
            assert float(report.overall.sel(version=version)) == pytest.approx(
                float(right.float().mean())
            )
            for c in range(3):
                share = float(right[yv == c].float().mean())
                assert float(
                    report.per_class.sel(version=version, **{"class": c})
                ) == pytest.approx(share)
    assert len(set(report.overall.values.tolist())) == 3  # three different heads: a real test


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, x, y: m.neuron_importance(3, x), ValueError, r"^cls: class 3 is out of range; the model has 3 classes"),
        (lambda m, x, y: m.neuron_importance(0, x, layer="conv"), ValueError, r"^layer: W·pool\('conv'\) \+ b does not reproduce .* name the decision layer with head="),
        (lambda m, x, y: m.neuron_importance(0, x, head="rel"), ValueError, r"^head: the model has no layer 'rel'. Did you mean 'relu'\?"),
        (lambda m, x, y: m.neuron_importance(0, "images"), TypeError, r"^data: expected a tensor, an \(inputs, labels\) pair"),
        (lambda m, x, y: m.visualize("relu", [5], size=6), ValueError, r"^neurons: 5 is out of range for the channels of layer 'relu' \(5 neurons: 0..4\)"),
        (lambda m, x, y: m.visualize("rel", [0], size=6), ValueError, r"^layer: the model has no layer 'rel'. Did you mean 'relu'\?"),
        (lambda m, x, y: m.visualize("relu", [0], cls=7, size=6), ValueError, r"^cls: class 7 is out of range"),
        (lambda m, x, y: m.visualize("relu", [0]), ValueError, r"^size: the input size is unknown"),
        (lambda m, x, y: m.visualize("relu", [0], size="big"), TypeError, r"^size: expected an int, \(H, W\) or \(C, H, W\)"),
        (lambda m, x, y: m.visualize("relu", [0], cls=1, guide=lambda im, c: im.mean((1, 2, 3))[:1], size=6, steps=2), ValueError, r"^guide: expected one similarity per image, a tensor of shape \(4,\); got \(1,\)"),
        (lambda m, x, y: m.visualize("relu", [0], cls=1, guide="clip", size=6), TypeError, r"^guide: expected a callable"),
        (lambda m, x, y: m.visualize("relu", [0], guide=lambda im, c: im.mean((1, 2, 3)), size=6), ValueError, r"^guide: a guide scores images against a class; pass cls="),
        (lambda m, x, y: m.mitigate([5], 0, (x, y)), ValueError, r"^neurons: 5 is out of range for the decision layer 'fc'"),
        (lambda m, x, y: m.mitigate([0], "d", (x, y)), ValueError, r"^cls: 'd' names no class of the model"),
        (lambda m, x, y: m.mitigate([0], 0, x), ValueError, r"^data: labels are needed to retrain the decision layer"),
        (lambda m, x, y: m.mitigate([0], 0, (x, y), select="best"), ValueError, r"^select: expected one of"),
        (lambda m, x, y: m.mitigate([0], 0, (x, y), control="yes"), TypeError, r"^control: expected True or False"),
        (lambda m, x, y: m.mitigate([0], 0, (x, y), groups=[0, 1]), ValueError, r"^groups: expected one group id per evaluation sample"),
        (lambda m, x, y: m.mitigate([0], 0, (x, y), layer="conv"), ValueError, r"^layer: .* name the decision layer with head="),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(call, error, match):
    x, y = data()
    with pytest.raises(error, match=match):
        call(ia.model(net(), classes=["a", "b", "c"]), x, y)


def test_progress_bar_follows_the_option(capsys, monkeypatch):
    import tqdm.auto

    bars = []

    class Recording(tqdm.auto.tqdm):
        def close(self):
            bars.append((self.desc, self.n, self.total))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    m = ia.model(net())
    with ia.set_options(progress=True):
        m.visualize("relu", [0], steps=3, images=1, size=6, seed=0)
    assert set(bars) == {("visualize relu", 3, 3)}  # closed once or twice (close is idempotent)
    count = len(bars)
    assert "visualize relu" in capsys.readouterr().err  # tqdm writes to stderr
    m.visualize("relu", [0], steps=3, images=1, size=6, seed=0)  # the fixture turned it off
    assert len(bars) == count and capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress: expected True or False"):
        ia.options.progress = "yes"


def test_a_guide_without_names_takes_the_models():
    seen = []

    def tokenize(prompts):
        seen.extend(prompts)
        return torch.ones(len(prompts), 3)

    guide = ia.guides.text_image(lambda im: im.mean((2, 3)), lambda t: t, tokenize, image_size=6)
    named = ia.model(net(), classes=["cat", "dog", "owl"])
    named.visualize("relu", [0], cls="owl", guide=guide, steps=2, images=2, size=6, seed=0)
    assert seen and all("owl" in p for p in seen)
    with pytest.raises(ValueError, match="guide: it has no class names, and neither has the model"):
        ia.model(net()).visualize("relu", [0], cls=1, guide=guide, steps=2, size=6)
    with pytest.raises(ValueError, match="guide: it has no class names to build prompts from"):
        guide(torch.rand(2, 3, 6, 6), 0)


def test_the_guide_reaches_the_kernel():
    red = ia.guides.text_image(
        lambda im: im.mean((2, 3)),
        lambda t: t,
        lambda prompts: torch.tensor([[1.0, 0.0, 0.0]] * len(prompts)),
        ["red", "red", "red"],
        image_size=8,
        mean=(0, 0, 0),
        std=(1, 1, 1),
    )
    m = ia.model(net())
    common = dict(cls=0, steps=5, images=2, size=8, seed=0)
    guided = m.visualize("relu", [0], guide=red, **common)
    plain = m.visualize("relu", [0], **common)
    ref = visualize(net(), "relu", [0], guide=red, channels=3, **common)
    assert torch.equal(torch.from_numpy(guided.images.values), ref.images)
    assert not (guided.images == plain.images).all()
    assert guided.attrs["guide"] == "TextImageGuide" and "guide" not in plain.attrs


def fake_open_clip() -> types.ModuleType:
    """A stand-in for open_clip with the calls the adapter makes."""

    class Model(nn.Module):
        visual = types.SimpleNamespace(image_size=6, image_mean=None, image_std=None)

        def encode_image(self, x):
            return x.mean((2, 3))

        def encode_text(self, tokens):
            return tokens

    module = types.ModuleType("open_clip")
    module.create_model_and_transforms = lambda name, pretrained: (Model(), None, None)
    module.get_tokenizer = lambda name: lambda prompts: torch.ones(len(prompts), 3)
    return module


def test_open_clip_adapts_a_local_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(ImportError, match=r"guide: open_clip is not installed.*ialgebra\[clip\]"):
        ia.guides.open_clip("ViT-B-32", tmp_path / "clip.pt")
    monkeypatch.setitem(sys.modules, "open_clip", fake_open_clip())
    with pytest.raises(FileNotFoundError, match="checkpoint_path: no file"):
        ia.guides.open_clip("ViT-B-32", tmp_path / "clip.pt")
    (tmp_path / "clip.pt").write_bytes(b"weights")
    guide = ia.guides.open_clip("ViT-B-32", tmp_path / "clip.pt")
    assert guide.class_names is None and guide.size == (6, 6)
    vis = ia.model(net(), classes=["a", "b", "c"]).visualize(
        "relu", [1], cls="c", guide=guide, steps=2, images=2, size=6, seed=0
    )
    assert vis.attrs["class_name"] == "c"
    with pytest.raises(TypeError, match="name: expected an open_clip model name"):
        ia.guides.open_clip(3, tmp_path / "clip.pt")
