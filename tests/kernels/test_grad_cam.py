"""GradCAM: parity with Captum's ``LayerGradCam`` (and its bilinear ``interpolate``).

Comparisons use ``rtol=1e-5`` and an ``atol`` of ``1e-5`` times the largest magnitude of
Captum's result.
"""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
from torch import nn

import algebra as ia

LAYERS = ("relu1", "conv2")


def captum_cam(net, layer: str, x, target, relu: bool, upsample: bool) -> torch.Tensor:
    """Captum's map, channel dim squeezed, optionally interpolated to the input's H, W."""
    module = dict(net.named_modules())[layer]
    cam = ca.LayerGradCam(net, module).attribute(x.clone(), target=target, relu_attributions=relu)
    if upsample:
        cam = ca.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), "bilinear")
    assert cam.shape[1] == 1
    return cam[:, 0].detach()


def compute(expr):
    (result,) = ia.compute(expr, session=ia.Session())
    return result


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("upsample", [False, True])
def test_int_target(cnn, images, layer, relu, upsample, captum_parity):
    target = 1  # its relu1 and conv2 maps have negative parts: relu matters
    ours = compute(ia.model(cnn).on(images).layer(layer).grad_cam(target, relu, upsample))
    assert ours.dims == ("sample", "y", "x")
    theirs = captum_cam(cnn, layer, images, target, relu, upsample)
    captum_parity(ours, theirs)
    raw = captum_cam(cnn, layer, images, target, relu=False, upsample=False)
    assert float(raw.min()) < 0 < float(raw.max())
    if relu:
        assert float(ours.min()) == 0.0
    assert ours.attrs["relu"] is relu and ours.attrs["upsample"] is upsample
    assert ours.attrs["layer"] == layer and ours.attrs["method"] == "grad_cam"


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("relu", [False, True])
def test_all_targets(cnn, images, layer, relu, captum_parity):
    ours = compute(ia.model(cnn).on(images).layer(layer).grad_cam("all", relu=relu))
    assert ours.dims == ("sample", "target", "y", "x")
    assert ours.sizes == {"sample": 4, "target": 5, "y": 8, "x": 8}
    assert ours["class"].values.tolist() == list(range(5))
    for c in range(5):
        theirs = captum_cam(cnn, layer, images, c, relu, upsample=True)
        captum_parity(ours.sel(target=c), theirs)


@pytest.mark.parametrize("layer", LAYERS)
def test_topk_targets(cnn, layer, captum_parity):
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(11)) * 4
    ours = compute(ia.model(cnn).on(x).layer(layer).grad_cam(ia.topk(2), relu=False))
    with torch.no_grad():
        top = cnn(x).topk(2, dim=1).indices
    assert ours["class"].values.tolist() == top.tolist()
    assert len(set(top[:, 0].tolist())) > 1  # per-sample classes differ
    for rank in range(2):
        classes = top[:, rank].tolist()
        theirs = captum_cam(cnn, layer, x, classes, relu=False, upsample=True)
        captum_parity(ours.isel(target=rank), theirs)


def test_pred_and_label_targets(cnn, images, captum_parity):
    labels = [3, 0, 4, 1]
    q = ia.model(cnn).on(images, labels=labels).layer("conv2")
    pred, label = ia.compute(
        q.grad_cam("pred", upsample=False),
        q.grad_cam("label", upsample=False),
        session=ia.Session(),
    )
    with torch.no_grad():
        argmax = cnn(images).argmax(1).tolist()
    captum_parity(pred, captum_cam(cnn, "conv2", images, argmax, relu=True, upsample=False))
    captum_parity(label, captum_cam(cnn, "conv2", images, labels, relu=True, upsample=False))


def test_non_square_inputs_upsample_to_their_size(cnn, captum_parity):
    x = torch.rand(3, 3, 6, 10, generator=torch.Generator().manual_seed(4))
    ours = compute(ia.model(cnn).on(x).layer("relu1").grad_cam(2, relu=False))
    assert ours.sizes == {"sample": 3, "y": 6, "x": 10}
    captum_parity(ours, captum_cam(cnn, "relu1", x, 2, relu=False, upsample=True))


def test_downsampled_layer_upsamples_bilinearly(cnn, images, captum_parity):
    # 'pool' outputs a 2 x 2 grid: upsampling really interpolates.
    q = ia.model(cnn).on(images).layer("pool")
    small, big = ia.compute(
        q.grad_cam(0, relu=False, upsample=False),
        q.grad_cam(0, relu=False),
        session=ia.Session(),
    )
    assert small.sizes == {"sample": 4, "y": 2, "x": 2}
    assert big.sizes == {"sample": 4, "y": 8, "x": 8}
    captum_parity(small, captum_cam(cnn, "pool", images, 0, relu=False, upsample=False))
    captum_parity(big, captum_cam(cnn, "pool", images, 0, relu=False, upsample=True))


def test_one_dimensional_layer(features, captum_parity):
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Unflatten(1, (1, 6)),
        nn.Conv1d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(18, 4),
    ).eval()
    q = ia.model(net).on(features)
    ours = compute(q.layer("2").grad_cam(1, relu=False, upsample=False))
    assert ours.dims[0] == "sample" and ours.shape == (5, 6)
    captum_parity(ours, captum_cam(net, "2", features, 1, relu=False, upsample=False))


def test_callable_target_matches_a_manual_gradcam(cnn, images, captum_parity):
    def score(out):
        return out.softmax(1)[:, 2]

    ours = compute(ia.model(cnn).on(images).layer("conv2").grad_cam(score, relu=False))
    x = images.clone()
    acts = {}
    handle = cnn.conv2.register_forward_hook(lambda _m, _i, out: acts.setdefault("a", out))
    try:
        with torch.enable_grad():
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(score(cnn(x)).sum(), acts["a"])
    finally:
        handle.remove()
    cam = (grad.mean(dim=(2, 3), keepdim=True) * acts["a"]).sum(1, keepdim=True)
    expected = nn.functional.interpolate(cam, (8, 8), mode="bilinear", align_corners=False)
    captum_parity(ours, expected[:, 0])


# Errors --------------------------------------------------------------------------------


def test_without_a_layer(cnn, images):
    with pytest.raises(ValueError, match="grad_cam"):
        ia.model(cnn).on(images).grad_cam(0)


def test_upsample_on_non_image_inputs(mlp, features):
    q = ia.model(mlp).on(features).layer("fc1")
    with pytest.raises(ValueError, match="upsample=False"):
        q.grad_cam(0)
    with pytest.raises(ValueError, match="upsample=False"):
        q.grad_cam(0, upsample=True, relu=False)


@pytest.mark.parametrize("upsample", [False, True])
def test_layer_without_a_grid(cnn, images, upsample):
    # Refused when built: the layer's shape comes from a one-sample probe.
    with pytest.raises(ValueError, match="grad_cam: layer 'fc' outputs \\[N, 5\\]; a CAM needs"):
        ia.model(cnn).on(images).layer("fc").grad_cam(0, upsample=upsample)
    assert not cnn.fc._forward_hooks


@pytest.mark.parametrize("flag", ["relu", "upsample"])
def test_flags_must_be_booleans(cnn, images, flag):
    with pytest.raises((TypeError, ValueError), match=flag):
        ia.model(cnn).on(images).layer("conv2").grad_cam(0, **{flag: 1})
