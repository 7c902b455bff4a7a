"""The CAM family through the public API: each map equals its reference formula (written
here in NumPy, one map at a time), Guided GradCAM equals Captum, several CAMs and layers
come out of one forward and one backward, Score-CAM's masked forwards are a chunked stream,
transformer layers give spatial maps, and layers without a grid are refused when built."""

from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch
from torch import nn

import algebra as ia

LAYERS = ("relu1", "conv2")


def layer_grads(net, x, layer, classes):
    """Reference activations ``[N, K, h, w]`` and gradients ``[T, N, K, h, w]``, one
    backward per class (plain autograd)."""
    acts = {}
    handle = dict(net.named_modules())[layer].register_forward_hook(
        lambda m, i, o: acts.setdefault("a", o)
    )
    try:
        out = net(x)
    finally:
        handle.remove()
    grads = [torch.autograd.grad(out[:, c].sum(), acts["a"], retain_graph=True)[0] for c in classes]
    return acts["a"].detach().numpy(), torch.stack(grads).numpy()


def reference_map(method: str, g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's definitions for one map: ``g``, ``a`` are ``[K, h, w]``."""
    total = a.sum(axis=(1, 2))[:, None, None]
    if method == "layer_cam":
        return (np.maximum(g, 0) * a).sum(0)
    if method == "hires_cam":
        return (g * a).sum(0)
    if method == "grad_cam":
        w = g.mean(axis=(1, 2))
    elif method == "grad_cam_pp":
        alpha = np.where(g != 0, g**2 / (2 * g**2 + total * g**3 + 1e-6), 0)
        w = (np.maximum(g, 0) * alpha).sum(axis=(1, 2))
    else:  # xgrad_cam
        w = (g * a / (total + 1e-7)).sum(axis=(1, 2))
    return (w[:, None, None] * a).sum(0)


METHODS = ("grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "hires_cam")


@pytest.mark.parametrize("relu", [False, True])
def test_cams_equal_their_formulas(cnn64, images64, relu):
    q = ia.model(cnn64).on(images64)
    exprs = {
        (m, layer): getattr(q.layer(layer), m)("all", relu=relu, upsample=False)
        for m in METHODS
        for layer in LAYERS
    }
    results = dict(zip(exprs, ia.compute(*exprs.values()), strict=True))
    for layer in LAYERS:
        acts, grads = layer_grads(cnn64, images64, layer, range(5))
        for m in METHODS:
            result = results[(m, layer)]
            assert result.dims == ("sample", "target", "y", "x")
            for t in range(5):
                for n in range(len(images64)):
                    expected = reference_map(m, grads[t, n], acts[n])
                    expected = np.maximum(expected, 0) if relu else expected
                    np.testing.assert_allclose(
                        result.values[n, t], expected, rtol=1e-9, atol=1e-13, err_msg=m
                    )


def test_upsampled_maps_are_bilinear_on_the_inputs(cnn64, images64):
    layer = ia.model(cnn64).on(images64).layer("conv3")
    small, large = ia.compute(layer.layer_cam(2, upsample=False), layer.layer_cam(2))
    resized = nn.functional.interpolate(
        torch.from_numpy(small.values)[:, None], size=(8, 8), mode="bilinear", align_corners=False
    )[:, 0]
    np.testing.assert_allclose(large.values, resized.numpy(), rtol=1e-12)


def test_guided_grad_cam_equals_captum(cnn64, images64, parity64):
    result = ia.model(cnn64).on(images64).layer("conv3").guided_grad_cam("all").compute()
    for c in range(5):
        theirs = ca.GuidedGradCam(cnn64, cnn64.conv3).attribute(images64.clone(), target=c)
        parity64(result.isel(target=c), theirs)


def test_eigen_cam_is_the_first_principal_component(cnn64, images64):
    result = ia.model(cnn64).on(images64).layer("conv2").eigen_cam(relu=False, upsample=False)
    result = result.compute()
    assert result.dims == ("sample", "y", "x")
    acts, _ = layer_grads(cnn64, images64, "conv2", [0])
    for n in range(len(images64)):
        m = acts[n].reshape(acts.shape[1], -1).T
        m = m - m.mean(axis=0)
        _, _, vt = np.linalg.svd(m)
        expected = (m @ vt[0]).reshape(acts.shape[2:])
        np.testing.assert_allclose(result.values[n], expected, rtol=1e-8, atol=1e-12)


def reference_score_cam(net, x, acts, target):
    """pytorch-grad-cam's ScoreCAM for one sample, one forward per channel."""
    up = nn.UpsamplingBilinear2d(size=x.shape[-2:])(acts[None])[0]
    scores = []
    for k in range(acts.shape[0]):
        mask = (up[k] - up[k].min()) / (up[k].max() - up[k].min() + 1e-8)
        with torch.no_grad():
            scores.append(net((x * mask)[None])[0, target])
    weights = torch.softmax(torch.stack(scores), 0)
    return (weights[:, None, None] * acts).sum(0)


@pytest.mark.parametrize("budget", [None, 40_000])
def test_score_cam_equals_the_channel_loop(cnn64, images64, budget):
    q = ia.model(cnn64).on(images64).layer("pool")  # a 4 x 4 grid: the masks are upsampled
    with ia.set_options(memory_budget=budget):
        result = q.score_cam(ia.topk(2), relu=False, upsample=False).compute(session=ia.Session())
    acts, _ = layer_grads(cnn64, images64, "pool", [0])
    for n in range(len(images64)):
        for t in range(2):
            target = int(result["class"].values[n, t])
            expected = reference_score_cam(cnn64, images64[n], torch.from_numpy(acts[n]), target)
            np.testing.assert_allclose(result.values[n, t], expected.numpy(), rtol=1e-10)


def test_score_cam_is_a_chunked_stream_of_masked_forwards(cnn, images, counting, passes):
    net = counting(cnn)
    layer = ia.model(net).on(images).layer("net.conv2")  # 6 channels: 24 masked inputs
    exprs = [layer.score_cam("all"), layer.score_cam(0)]
    _, counted, planned = passes(net, exprs)
    assert counted == planned == (2, 4 + 24, 0)  # every target scored by the same forwards
    with ia.set_options(memory_budget=3_000):
        _, chunked, planned = passes(net, exprs)
    assert chunked == planned and chunked[0] > 2 and chunked[1] == 4 + 24


def test_several_cams_and_layers_come_from_one_backward(cnn, images, counting, passes):
    net = counting(cnn)
    q = ia.model(net, classes=list("abcde")).on(images)
    exprs = [
        getattr(q.layer(layer), m)(t)
        for m in METHODS
        for layer in ("net.relu1", "net.conv2")
        for t in ("all", ia.topk(2))
    ]
    exprs += [q.layer("net.conv2").eigen_cam(), q.layer("net.relu1").activation()]
    _, counted, planned = passes(net, exprs)
    assert counted == planned == (1, 4, 1)
    _, counted, planned = passes(net, exprs, backward="sequential")
    assert counted == planned == (1, 4, 5)  # one backward per class, to both layers


class TinyViT(nn.Module):
    """Patches -> class token + tokens ``[N, 1 + 4 * 4, 8]`` -> a token-wise block -> head;
    or, ``channels_last``, a Swin-like ``[N, 4, 4, 8]`` stage."""

    def __init__(self, channels_last: bool = False):
        super().__init__()
        torch.manual_seed(6)
        self.patch = nn.Conv2d(3, 8, 2, stride=2)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.block = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.head = nn.Linear(8, 4)
        self.channels_last = channels_last

    def forward(self, x):
        p = self.patch(x)
        if self.channels_last:
            return self.head(self.block(p.permute(0, 2, 3, 1)).mean((1, 2)))
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), p.flatten(2).transpose(1, 2)], 1)
        h = self.block(tokens)
        return self.head(h[:, 0] + h[:, 1:].mean(1))


@pytest.mark.parametrize("channels_last", [False, True])
def test_transformer_layers_give_spatial_maps(channels_last):
    net = TinyViT(channels_last).double().eval()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    layer = ia.model(net).on(x).layer("block")
    exprs = [layer.grad_cam(0, upsample=False), layer.grad_cam(0, upsample=False, grid=(4, 4))]
    if not channels_last:
        exprs.append(layer.grad_cam(0, upsample=False, grid="auto"))
        reshape = lambda t: t[:, 1:].reshape(len(t), 4, 4, 8).permute(0, 3, 1, 2)  # noqa: E731
        exprs.append(layer.grad_cam(0, upsample=False, grid=reshape))
    results = ia.compute(*exprs)
    # reference: the patch tokens row by row, the class token dropped, hidden size = channels
    tokens = {}
    handle = net.block.register_forward_hook(lambda m, i, o: tokens.setdefault("a", o))
    out = net(x)
    handle.remove()
    (g,) = torch.autograd.grad(out[:, 0].sum(), tokens["a"])
    a = tokens["a"].detach()
    if not channels_last:
        a, g = a[:, 1:].reshape(2, 4, 4, 8), g[:, 1:].reshape(2, 4, 4, 8)
    expected = torch.relu((g.mean((1, 2))[:, None, None, :] * a).sum(-1))
    for result in results:
        assert result.dims == ("sample", "y", "x") and result.shape == (2, 4, 4)
        np.testing.assert_allclose(result.values, expected.numpy(), rtol=1e-10, atol=1e-14)
    assert results[0].attrs["grid"] == "auto"  # images through tokens or channels last: detected


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda q: q.layer("fc").grad_cam_pp(0),
            ValueError,
            "grad_cam_pp: layer 'fc' outputs \\[N, 5\\]; a CAM needs",
        ),
        (
            lambda q: q.layer("flat").score_cam(0),
            ValueError,
            "score_cam: layer 'flat' outputs \\[N, 24\\]",
        ),
        (lambda q: q.layer("fc").eigen_cam(), ValueError, "eigen_cam: layer 'fc'"),
        (lambda q: q.layer("fc").guided_grad_cam(0), ValueError, "guided_grad_cam: layer 'fc'"),
        (lambda q: q.layer_cam(0), ValueError, "layer_cam: select a layer first"),
        (
            lambda q: q.layer("conv2").xgrad_cam(0, grid="atuo"),
            ValueError,
            "grid: expected .* Did you mean 'auto'",
        ),
        (
            lambda q: q.layer("conv2").hires_cam(0, grid=(3, 3)),
            ValueError,
            "grid: 3 x 3 does not fit layer 'conv2'",
        ),
        (lambda q: q.layer("conv2").eigen_cam(sign="neg"), ValueError, "sign: expected one of"),
        (
            lambda q: q.layer("conv2").layer_cam(0, relu=1),
            TypeError,
            "relu: expected True or False",
        ),
        (
            lambda q: q.layer("conv2").layer_cam(ia.units("conv9")),
            ValueError,
            "unit: the model has no layer 'conv9'",
        ),
    ],
)
def test_bad_cams_are_refused_when_built(cnn, images, assert_untouched, call, error, match):
    with pytest.raises(error, match=match):
        call(ia.model(cnn).on(images))
    assert_untouched(cnn)


def test_upsampling_needs_inputs_on_the_same_grid(mlp):
    # tokens [N, 17, 3] as inputs: the map's 4 x 4 grid has no image to be resized to
    net = nn.Sequential(nn.Linear(3, 3), nn.Flatten(), nn.Linear(51, 2)).eval()
    q = ia.model(net).on(torch.rand(2, 17, 3)).layer("0")
    with pytest.raises(ValueError, match="upsample: the map on layer '0''s 2-D grid"):
        q.grad_cam_pp(0, grid=(4, 4))
    assert q.grad_cam_pp(0, grid=(4, 4), upsample=False).compute().dims == ("sample", "y", "x")
