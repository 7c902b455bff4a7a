"""Feature visualisation: parameterisation, transforms, one batch, guide, masks, refusals."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from algebra.kernels.augment import random_affine, transform
from algebra.kernels.clip_guide import TextImageGuide, open_clip_guide
from algebra.kernels.fourier import COLOUR, init_spectrum, spectrum_scale, to_images
from algebra.kernels.visualize import visualize


def test_spectrum_scale_follows_the_reference_formula():
    h, w = 6, 10
    scale = spectrum_scale(h, w)
    d = 0.5**0.5
    for y in range(h):
        for x in range(w // 2 + 1):
            fy = (y if y <= h // 2 - (h % 2 == 0) else y - h) / (h * d)
            f = (fy**2 + (x / (w * d)) ** 2) ** 0.5
            expected = 1 / max(f**1.5, 1 / (max(h, w) * d))
            assert float(scale[y, x]) == pytest.approx(expected, rel=1e-5)


def test_images_invert_an_ortho_spectrum_then_decorrelate_and_squash():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(2, 3, 8, 8, generator=g)
    scale = spectrum_scale(8, 8)
    coefficients = torch.fft.rfft2(raw, norm="ortho") / scale
    spectrum = torch.stack([coefficients.real, coefficients.imag], -1)
    expected = torch.sigmoid(torch.einsum("bchw,dc->bdhw", raw, COLOUR))
    torch.testing.assert_close(to_images(spectrum, 8, 8, scale), expected, atol=1e-5, rtol=1e-5)
    grey = to_images(spectrum[:, :1], 8, 8, scale)  # one channel: no colour matrix
    torch.testing.assert_close(grey, torch.sigmoid(raw[:, :1]), atol=1e-5, rtol=1e-5)
    assert init_spectrum(64, 3, 8, 8, generator=g).std().item() == pytest.approx(1e-3, rel=0.05)


def test_transforms_translate_rescale_and_offset_each_image_on_its_own():
    g = torch.Generator().manual_seed(0)
    theta = random_affine(500, 16, 24, g)
    half = torch.diag(torch.tensor([12.0, 8.0]))
    pixels = half @ theta[:, :, :2] @ torch.linalg.inv(half)  # R⁻¹ S⁻¹ in pixel units
    angles = torch.atan2(pixels[:, 1, 0], pixels[:, 0, 0])
    assert angles.abs().max() <= torch.deg2rad(torch.tensor(15.0)) + 1e-5
    assert angles.abs().max() > torch.deg2rad(torch.tensor(14.0))
    scales = 1 / torch.linalg.vector_norm(pixels, dim=1)  # column norms: 1/sx, 1/sy
    assert scales.min() >= 0.6 - 1e-5 and scales.max() <= 1.2 + 1e-5
    assert scales.min() < 0.62 and scales.max() > 1.18
    shifts = torch.linalg.vector_norm(half @ theta[:, :, 2:], dim=(1, 2))  # |R⁻¹t| = |t|, pixels
    bound = (3.6**2 + 2.4**2) ** 0.5  # 0.15 of 24 and of 16 pixels
    assert shifts.max() <= bound + 1e-4 and shifts.max() > 0.9 * bound
    assert theta.std(0).gt(0).all()  # every image its own draw
    # A pure translation by +2 columns of an 8-column image moves content right by 2 pixels.
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 3, 2] = 1.0
    moved = transform(image, torch.Generator(), degrees=0, translate=0, scale=(1, 1))
    torch.testing.assert_close(moved, image)
    shift = torch.tensor([[[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]]])  # 0.5 of half-width = 2 px
    grid = nn.functional.affine_grid(shift, [1, 1, 8, 8], align_corners=False)
    out = nn.functional.grid_sample(image, grid, align_corners=False)
    assert out[0, 0, 3, 4] == pytest.approx(1.0)
    noisy = transform(torch.zeros(4, 3, 8, 8), g, noise=0.2, degrees=0, translate=0, scale=(1, 1))
    offsets = noisy[:, :, 0, 0]
    assert torch.equal(noisy, offsets[:, :, None, None].expand(-1, -1, 8, 8))
    assert offsets.flatten().unique().numel() == 12


def test_all_neurons_and_images_run_as_one_batch(cnn, counting):
    net = counting(cnn)
    vis = visualize(net, "net.relu2", [0, 3, 5], steps=6, images=2, size=8, channels=3, seed=0)
    assert vis.images.shape == (3, 2, 3, 8, 8) and vis.masks.shape == (3, 2, 8, 8)
    assert net.calls == 6 + 2  # one probe, one pass per step, one for the final images
    assert net.rows == 1 + 6 * 6 + 6
    assert vis.images.min() >= 0 and vis.images.max() <= 1
    assert vis.neurons.tolist() == [0, 3, 5] and vis.cls is None


def test_seeded_runs_repeat_and_the_objective_rises(cnn):
    a = visualize(cnn, "relu2", [1], steps=30, images=2, size=8, channels=3, seed=3)
    b = visualize(cnn, "relu2", [1], steps=30, images=2, size=8, channels=3, seed=3)
    c = visualize(cnn, "relu2", [1], steps=30, images=2, size=8, channels=3, seed=4)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.losses[-5:].mean() < a.losses[:5].mean()
    torch.manual_seed(7)
    d = visualize(cnn, "relu2", [1], steps=2, images=1, size=8, channels=3)
    torch.manual_seed(7)
    assert visualize(cnn, "relu2", [1], steps=2, images=1, size=8, channels=3).seed == d.seed


def test_masks_threshold_the_z_scored_upsampled_map(cnn):
    vis = visualize(cnn, "conv1", [2], steps=3, images=2, size=8, channels=3, seed=0)
    with torch.no_grad():
        act = cnn.conv1(vis.images[0])[:, 2]  # same size as the image: no upsampling
    z = (act - act.mean((1, 2), keepdim=True)) / act.flatten(1).std(1)[:, None, None]
    assert torch.equal(vis.masks[0], z > 0.25)
    torch.testing.assert_close(vis.activation[0], act.mean((1, 2)))
    torch.testing.assert_close(vis.logits[0], cnn(vis.images[0]))


def test_class_term_and_guide_enter_the_objective(cnn):
    seen = []

    def guide(images, cls):
        seen.append((tuple(images.shape), cls, images.requires_grad))
        return images.mean((1, 2, 3))

    plain = visualize(cnn, "relu2", [0], steps=25, images=2, size=8, channels=3, seed=1)
    cond = visualize(cnn, "relu2", [0], cls=4, steps=25, images=2, size=8, channels=3, seed=1)
    assert cond.logits[..., 4].mean() > plain.logits[..., 4].mean()
    visualize(cnn, "relu2", [0], cls=4, guide=guide, steps=2, images=2, size=8, channels=3)
    assert seen[0] == ((2, 3, 8, 8), 4, False)  # the early shape check, without gradients
    assert seen[1] == ((2, 3, 8, 8), 4, True)  # then the transformed images, differentiable


def test_example_gives_size_channels_and_normalisation(cnn):
    x = torch.rand(5, 3, 10, 12)
    vis = visualize(cnn, "relu2", [0], steps=1, images=1, example=x, mean=[0.5] * 3, std=0.25)
    assert vis.images.shape == (1, 1, 3, 10, 12)
    vis = visualize(cnn, "relu2", [0], steps=1, images=1, example=(3, 9, 9), size=(6, 7))
    assert vis.images.shape == (1, 1, 3, 6, 7)


def test_the_model_comes_back_unchanged(cnn):
    cnn.conv1.train()
    state = {k: v.clone() for k, v in cnn.state_dict().items()}
    with pytest.warns(UserWarning, match="training mode"):
        visualize(cnn, "relu2", [0], cls=1, steps=3, images=1, size=8, channels=3)
    assert cnn.conv1.training and not cnn.conv2.training
    assert all(p.requires_grad and p.grad is None for p in cnn.parameters())
    assert all(not m._forward_hooks for m in cnn.modules())
    assert all(torch.equal(v, state[k]) for k, v in cnn.state_dict().items())


def test_progress_is_reported_every_step(cnn):
    calls = []
    visualize(
        cnn,
        "relu2",
        [0],
        steps=4,
        images=1,
        size=8,
        channels=3,
        progress=lambda *a: calls.append(a),
    )
    assert [c[:2] for c in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(isinstance(c[2], float) for c in calls)


def test_bad_inputs_name_the_argument(cnn):
    common = dict(steps=1, images=1, size=8, channels=3)
    with pytest.raises(
        ValueError,
        match=r"neurons: 6 is out of range for the channels of layer 'relu2' \(6 neurons",
    ):
        visualize(cnn, "relu2", [6], **common)
    with pytest.raises(ValueError, match="cls: class 5 is out of range"):
        visualize(cnn, "relu2", [0], cls=5, **common)
    with pytest.raises(
        ValueError,
        match=r"guide: expected one similarity per image, a tensor of shape \(2,\); got \(2, 1\)",
    ):
        visualize(
            cnn,
            "relu2",
            [0],
            cls=1,
            guide=lambda x, c: x.mean((2, 3))[:, :1],
            **{**common, "images": 2},
        )
    with pytest.raises(ValueError, match=r"guide: expected one similarity per image.*got list"):
        visualize(cnn, "relu2", [0], cls=1, guide=lambda x, c: [0.0], **common)
    with pytest.raises(ValueError, match=r"guide: .*pass cls="):
        visualize(cnn, "relu2", [0], guide=lambda x, c: x.mean((1, 2, 3)), **common)
    with pytest.raises(ValueError, match="size: the input size is unknown"):
        visualize(cnn, "relu2", [0], steps=1)
    with pytest.raises(ValueError, match="layer: the model has no submodule 'relu3'"):
        visualize(cnn, "relu3", [0], **common)
    with pytest.raises(ValueError, match="steps: expected a positive integer"):
        visualize(cnn, "relu2", [0], **{**common, "steps": 0})
    with pytest.raises(ValueError, match="std: expected 1 or 3 values"):
        visualize(cnn, "relu2", [0], std=[1.0, 1.0], **common)


def test_open_clip_guide_needs_the_optional_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"guide: open_clip is not installed.*ialgebra\[clip\]"):
        open_clip_guide("ViT-B-32", "clip.pt", ["cat"])


def fake_open_clip(calls: list) -> types.ModuleType:
    """A stand-in for open_clip: 'images' embed by channel means, 'texts' by prompt length."""

    class Visual:
        image_size = 6
        image_mean = (0.0, 0.0, 0.0)
        image_std = (1.0, 1.0, 1.0)

    class Model(nn.Module):
        visual = Visual()

        def encode_image(self, x):
            calls.append(("image", tuple(x.shape)))
            return torch.stack(
                [x[:, 0].mean((1, 2)), x[:, 1].mean((1, 2)), x[:, 2].mean((1, 2))], 1
            )

        def encode_text(self, tokens):
            calls.append(("text", tuple(tokens.shape)))
            return tokens

    module = types.ModuleType("open_clip")
    module.create_model_and_transforms = lambda name, pretrained: (Model(), None, None)
    module.get_tokenizer = lambda name: (
        lambda prompts: torch.tensor([[len(p), 1.0, len(p) % 3] for p in prompts])
    )
    return module


def test_open_clip_guide_scores_cosine_similarity_with_the_mean_prompt(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setitem(sys.modules, "open_clip", fake_open_clip(calls))
    checkpoint = tmp_path / "clip.pt"
    with pytest.raises(FileNotFoundError, match="checkpoint_path: no file"):
        open_clip_guide("ViT-B-32", checkpoint, ["cat", "dog"])
    checkpoint.write_bytes(b"weights")
    templates = ["a {}.", "a photo of the {}!"]
    guide = open_clip_guide("ViT-B-32", checkpoint, ["cat", "dog"], templates=templates)
    images = torch.rand(4, 1, 9, 9, requires_grad=True)  # grey, another size: resized, repeated
    s = guide(images, 1)
    assert s.shape == (4,) and s.requires_grad
    tokens = torch.tensor(
        [[len(t.format("dog")), 1.0, len(t.format("dog")) % 3] for t in templates]
    )
    text = nn.functional.normalize(tokens, dim=-1).mean(0)
    resized = nn.functional.interpolate(images.expand(-1, 3, -1, -1), size=(6, 6), mode="bilinear")
    embedding = nn.functional.normalize(resized.mean((2, 3)), dim=-1)
    torch.testing.assert_close(s, embedding @ text / text.norm())
    guide(images, 1)
    assert [c for c in calls if c[0] == "text"] == [("text", (2, 3))]  # text embedded once
    with pytest.raises(ValueError, match="cls: class 2 has no name"):
        guide(images, 2)
    assert isinstance(guide, TextImageGuide)


def test_guide_drives_visualize(cnn):
    guide = TextImageGuide(
        lambda x: x.mean((2, 3)),
        lambda t: t,
        lambda prompts: torch.tensor([[1.0, 0.0, 0.0]] * len(prompts)),
        ["red"],
        image_size=8,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )
    red = visualize(
        cnn, "relu2", [0], cls=0, guide=guide, steps=40, images=2, size=8, channels=3, seed=0
    )
    plain = visualize(cnn, "relu2", [0], cls=0, steps=40, images=2, size=8, channels=3, seed=0)
    share = lambda v: (v.images[:, :, 0].mean() / v.images.mean()).item()  # noqa: E731
    assert share(red) > share(plain)
