"""The CAM family: each map equals its reference formula, written here independently (NumPy,
loops), on gradients of a float64 CNN from one batched backward over all targets and two
layers. GradCAM and Guided GradCAM are also compared with Captum (``rtol=1e-5``, ``atol``
``1e-5`` times the largest magnitude of Captum's result).
"""

from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch
from torch import nn

from algebra.kernels.cams import (
    cam_maps,
    eigen_cam,
    finish,
    grid_grads,
    guided_grad_cam,
    weighted_sum,
)
from algebra.kernels.capture import captured
from algebra.kernels.chunks import sample_chunks
from algebra.kernels.gradients import target_gradients
from algebra.kernels.grids import detect_layout, to_grid
from algebra.kernels.plan import TargetSpec
from algebra.kernels.rules import relu_rules
from algebra.kernels.score_cam import masked_inputs, score_cam_masks, score_cam_weights

from .models import make_cnn

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU:UserWarning")

LAYERS = ("relu1", "conv2")


def mask_scores(logits: torch.Tensor, rows: torch.Tensor, channels: int) -> torch.Tensor:
    """Scores ``[T, N, K]`` of the classes ``rows`` ``[T, N]`` from the logits ``[N * K, C]``
    of the masked inputs, sample-major (the engine scores them channel-major, by chunk)."""
    t, n = rows.shape
    per = logits.reshape(n, channels, logits.shape[-1])
    index = rows[:, :, None, None].expand(t, n, channels, 1)
    return per[None].expand(t, -1, -1, -1).gather(3, index)[..., 0]


CLASSES = [0, 1, 2, 3, 4]


def images(n=3, seed=2) -> torch.Tensor:
    return torch.rand(
        n, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def assert_parity(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.detach()
    assert float(theirs.abs().max()) > 0, "degenerate reference: all zeros"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))


def layer_pass(net, x, layers=LAYERS, classes=CLASSES):
    """Activations and gradients ``[T, N, ...]`` of every layer: one forward, one backward."""
    with captured(net, layers) as acts:
        out = net(x)
    rows = torch.tensor(classes)[:, None].expand(-1, len(x))
    wrt = tuple(acts[layer] for layer in layers)
    grads = target_gradients(out, wrt, rows, TargetSpec("classes", tuple(classes)), False)
    return {layer: (acts[layer].detach(), g) for layer, g in zip(layers, grads, strict=True)}


# Independent references (pytorch-grad-cam's definitions), one map at a time -------------


def ref_weights(method: str, g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Channel weights ``[K]`` for one map: ``g``, ``a`` are ``[K, h, w]``."""
    if method == "grad_cam":
        return g.mean(axis=(1, 2))
    if method == "grad_cam_pp":
        total = a.sum(axis=(1, 2))[:, None, None]
        alpha = g**2 / (2 * g**2 + total * g**3 + 1e-6)
        alpha = np.where(g != 0, alpha, 0)
        return (np.maximum(g, 0) * alpha).sum(axis=(1, 2))
    assert method == "xgrad_cam"
    total = a.sum(axis=(1, 2))[:, None, None]
    return (g * a / (total + 1e-7)).sum(axis=(1, 2))


def ref_map(method: str, g: np.ndarray, a: np.ndarray) -> np.ndarray:
    if method == "layer_cam":
        return (np.maximum(g, 0) * a).sum(axis=0)
    if method == "hires_cam":
        return (g * a).sum(axis=0)
    w = ref_weights(method, g, a)
    return (w[:, None, None] * a).sum(axis=0)


@pytest.mark.parametrize(
    "method", ["grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "hires_cam"]
)
def test_cams_equal_their_formulas(method):
    net, x = make_cnn(), images()
    for layer, (acts, grads) in layer_pass(net, x).items():
        ours = cam_maps(method, grads, acts)
        assert ours.shape == (5, 3, 8, 8)
        for t in range(5):
            for n in range(3):
                expected = ref_map(method, grads[t, n].numpy(), acts[n].numpy())
                np.testing.assert_allclose(ours[t, n].numpy(), expected, rtol=1e-10, atol=1e-14)
        assert float(ours.abs().max()) > 0, layer


def test_methods_differ_on_the_same_gradients():
    net, x = make_cnn(), images()
    acts, grads = layer_pass(net, x)["conv2"]
    maps = {
        m: cam_maps(m, grads, acts)
        for m in ("grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "hires_cam")
    }
    names = list(maps)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not torch.allclose(maps[a], maps[b]), (a, b)


@pytest.mark.parametrize("layer", LAYERS)
def test_grad_cam_equals_captum(layer):
    net, x = make_cnn(), images()
    acts, grads = layer_pass(net, x)[layer]
    ours = finish(cam_maps("grad_cam", grads, acts), relu=True, size=(8, 8))
    module = dict(net.named_modules())[layer]
    theirs = [
        ca.LayerGradCam(net, module).attribute(x.clone(), target=c, relu_attributions=True)
        for c in CLASSES
    ]
    theirs = ca.LayerAttribution.interpolate(torch.cat(theirs), (8, 8), "bilinear")
    assert_parity(ours, theirs.reshape(5, 3, 8, 8))


def test_guided_grad_cam_equals_captum():
    net, x = make_cnn(), images()
    acts, grads = layer_pass(net, x, ("conv2",))["conv2"]
    cam = cam_maps("grad_cam", grads, acts)
    xg = x.clone().requires_grad_(True)
    with relu_rules("guided_backprop", net):
        out = net(xg)
    rows = torch.tensor(CLASSES)[:, None].expand(-1, len(x))
    (guided,) = target_gradients(out, (xg,), rows, TargetSpec("classes", tuple(CLASSES)), False)
    ours = guided_grad_cam(guided, cam)
    theirs = [ca.GuidedGradCam(net, net.conv2).attribute(x.clone(), target=c) for c in CLASSES]
    assert_parity(ours, torch.stack(theirs))


# EigenCAM ----------------------------------------------------------------------------------


def ref_projection(a: np.ndarray) -> np.ndarray:
    """First principal component projection of one activation ``[K, h, w]`` (NumPy's SVD)."""
    m = a.reshape(a.shape[0], -1).T
    m = m - m.mean(axis=0)
    _, _, vt = np.linalg.svd(m, full_matrices=True)
    return (m @ vt[0]).reshape(a.shape[1:])


@pytest.mark.parametrize("layer", LAYERS)
def test_eigen_cam_is_the_first_principal_component(layer):
    net, x = make_cnn(), images(4)
    acts, _ = layer_pass(net, x, (layer,))[layer]
    ours = eigen_cam(acts)
    positive = eigen_cam(acts, sign="positive")
    for n in range(4):
        expected = ref_projection(acts[n].numpy())
        np.testing.assert_allclose(ours[n].numpy(), expected, rtol=1e-8, atol=1e-12)
        assert torch.allclose(positive[n], ours[n]) or torch.allclose(positive[n], -ours[n])
        total = acts[n].sum(0)
        assert float(((total - total.mean()) * positive[n]).sum()) >= 0
    # the sign convention follows the activations, whatever sign the SVD returns
    assert torch.allclose(eigen_cam(acts * 3, sign="positive"), positive * 3)
    flipped = eigen_cam(-acts, sign="positive")  # same component, correlated with -sum_k A_k
    assert torch.allclose(flipped, -positive) or torch.allclose(flipped, positive)


# Score-CAM ---------------------------------------------------------------------------------


def ref_score_cam(net, x, acts, target: int) -> torch.Tensor:
    """pytorch-grad-cam's ScoreCAM for one sample, one forward per channel."""
    up = nn.UpsamplingBilinear2d(size=x.shape[-2:])(acts[None])[0]
    scores = []
    for k in range(acts.shape[0]):
        m = (up[k] - up[k].min()) / (up[k].max() - up[k].min() + 1e-8)
        with torch.no_grad():
            scores.append(net((x * m)[None])[0, target])
    w = torch.softmax(torch.stack(scores), 0)
    return (w[:, None, None] * acts).sum(0)


@pytest.mark.parametrize("chunk", [1, 7, 18])
def test_score_cam_equals_the_channel_loop(chunk):
    net, x = make_cnn(), images()
    acts, _ = layer_pass(net, x, ("pool",), [0])["pool"]  # a 4 x 4 grid: upsampling matters
    n, k = acts.shape[:2]
    masks = score_cam_masks(acts, (8, 8))
    logits = []
    with torch.no_grad():
        for start, stop in sample_chunks(n * k, chunk):  # batched, chunked masked forwards
            logits.append(net(masked_inputs(x, masks, start, stop)))
    rows = torch.tensor([[0, 3, 1], [4, 4, 2]])  # two targets, per-sample classes
    weights = score_cam_weights(mask_scores(torch.cat(logits), rows, k))
    ours = weighted_sum(weights, acts)
    for t in range(2):
        for i in range(n):
            expected = ref_score_cam(net, x[i], acts[i], int(rows[t, i]))
            torch.testing.assert_close(ours[t, i], expected, rtol=1e-10, atol=1e-12)


def test_score_cam_masks_are_normalised_per_channel():
    acts = torch.rand(2, 3, 4, 4, dtype=torch.float64) * 5 - 1
    masks = score_cam_masks(acts, (8, 8))
    flat = masks.reshape(2, 3, -1)
    torch.testing.assert_close(flat.amin(-1), torch.zeros(2, 3, dtype=torch.float64))
    torch.testing.assert_close(
        flat.amax(-1), torch.ones(2, 3, dtype=torch.float64), rtol=0, atol=1e-7
    )
    with pytest.raises(ValueError, match="score_cam"):
        score_cam_masks(acts, (8,))


# Grids: transformer layers -----------------------------------------------------------------


class TinyViT(nn.Module):
    """Patches -> class token + tokens -> a token-wise block -> head (layout [N, 1 + hw, D])."""

    def __init__(self, channels_last: bool = False):
        super().__init__()
        torch.manual_seed(6)
        self.patch = nn.Conv2d(3, 8, 2, stride=2)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.block = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.head = nn.Linear(8, 4)
        self.channels_last = channels_last

    def forward(self, x):
        p = self.patch(x)  # [N, 8, 4, 4]
        if self.channels_last:  # Swin-like stage output [N, h, w, D]
            h = self.block(p.permute(0, 2, 3, 1))
            return self.head(h.mean((1, 2)))
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), p.flatten(2).transpose(1, 2)], 1)
        h = self.block(tokens)
        return self.head(h[:, 0] + h[:, 1:].mean(1))


@pytest.mark.parametrize(
    ("channels_last", "grid"), [(False, (4, 4)), (False, "auto"), (True, "auto"), (True, (4, 4))]
)
def test_transformer_layers_give_spatial_maps(channels_last, grid):
    net, x = TinyViT(channels_last).double().eval(), images()
    acts, grads = layer_pass(net, x, ("block",), [0, 3])["block"]
    a, g = to_grid(acts, grid, "block"), grid_grads(grads, grid, "block")
    assert a.shape == (3, 8, 4, 4) and g.shape == (2, 3, 8, 4, 4)
    cam = cam_maps("grad_cam", g, a)
    assert cam.shape == (2, 3, 4, 4)
    # reference: the patch tokens laid out row by row, the class token dropped
    raw_a = acts if channels_last else acts[:, 1:].reshape(3, 4, 4, 8)
    raw_g = grads if channels_last else grads[:, :, 1:].reshape(2, 3, 4, 4, 8)
    weights = raw_g.mean((2, 3))  # [T, N, D]
    expected = (weights[:, :, None, None, :] * raw_a[None]).sum(-1)
    torch.testing.assert_close(cam, expected, rtol=1e-12, atol=1e-14)


def test_reshape_callable_and_layout_errors():
    acts = torch.arange(2 * 17 * 3.0).reshape(2, 17, 3)
    reshape = lambda t: t[:, 1:].reshape(len(t), 4, 4, 3).permute(0, 3, 1, 2)  # noqa: E731
    assert torch.equal(to_grid(acts, reshape), to_grid(acts, (4, 4)))
    assert torch.equal(to_grid(acts, "auto"), to_grid(acts, (4, 4)))
    assert detect_layout((2, 16, 3)) == ("tokens", (4, 4))
    with pytest.raises(ValueError, match="grid: 3 x 3 does not fit layer 'blk'"):
        to_grid(acts, (3, 3), "blk")
    with pytest.raises(ValueError, match="grid: expected None, 'auto', \\(rows, cols\\)"):
        to_grid(acts, (4,), "blk")
    with pytest.raises(ValueError, match="grid: the reshape function must return"):
        to_grid(acts, lambda t: t.sum(), "blk")
    with pytest.raises(ValueError, match="pass grid=\\(rows, cols\\)"):
        to_grid(torch.zeros(2, 30, 3), "auto")


def test_a_layer_without_spatial_dims_is_refused():
    net, x = make_cnn(), images()
    acts, grads = layer_pass(net, x, ("fc",), [0])["fc"]
    with pytest.raises(ValueError, match="layer 'fc' outputs shape \\[3, 5\\]; a CAM needs"):
        to_grid(acts, None, "fc")
    for method in ("grad_cam_pp", "layer_cam"):
        with pytest.raises(ValueError, match=f"{method}: activations of shape \\[3, 5\\]"):
            cam_maps(method, grads, acts)
    with pytest.raises(ValueError, match="eigen_cam"):
        eigen_cam(acts)
    with pytest.raises(ValueError, match="method: expected one of"):
        cam_maps("gradcam", grads, acts)
