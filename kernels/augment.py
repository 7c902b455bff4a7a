"""Per-image random transforms for feature visualisation, one resampling for the whole batch.

Each image gets its own rotation, translation and independent height/width rescale
followed by a centre crop back to its size (composed into one affine map, so the image is
interpolated once, and zero-filled where the map leaves the picture), then its own
per-channel colour offset. Robustness to these transforms keeps the visualisation from
exploiting single pixels.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def random_affine(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    degrees: float = 15.0,
    translate: float = 0.15,
    scale: tuple[float, float] = (0.6, 1.2),
) -> torch.Tensor:
    """Affine maps ``[batch, 2, 3]`` for :func:`torch.nn.functional.affine_grid`.

    An output pixel at ``u`` (normalised coordinates) samples the input at
    ``R⁻¹(S⁻¹u - t)``: rotation ``R`` by up to ``degrees``, translation ``t`` by up to
    ``translate`` of the size, rescale ``S`` by factors drawn independently for height and
    width in ``scale``, then the centre crop. Rotation works in pixel units, so it is a
    true rotation on non-square images.

    Examples
    --------
    >>> theta = random_affine(4, 8, 8, torch.Generator().manual_seed(0))
    >>> theta.shape
    torch.Size([4, 2, 3])
    >>> identity = random_affine(1, 8, 8, torch.Generator(), degrees=0, translate=0, scale=(1, 1))
    >>> torch.equal(identity, torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]))
    True
    """

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, generator=generator)

    angle = uniform(-degrees, degrees) * math.pi / 180.0
    shift = torch.stack([uniform(-translate, translate), uniform(-translate, translate)], 1) * 2
    sx, sy = uniform(*scale), uniform(*scale)
    half = torch.tensor([width / 2.0, height / 2.0])
    cos, sin = torch.cos(angle), torch.sin(angle)
    # R⁻¹ in pixel units (rotation by -angle), conjugated into normalised coordinates.
    inverse = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)
    to_norm = torch.diag(1.0 / half)
    to_pixel = torch.diag(half)
    linear = to_norm @ inverse @ to_pixel @ torch.diag_embed(torch.stack([1 / sx, 1 / sy], 1))
    offset = -(to_norm @ inverse @ to_pixel @ shift[:, :, None])
    return torch.cat([linear, offset], dim=2)


def transform(
    images: torch.Tensor,
    generator: torch.Generator,
    noise: float = 0.0,
    degrees: float = 15.0,
    translate: float = 0.15,
    scale: tuple[float, float] = (0.6, 1.2),
) -> torch.Tensor:
    """Randomly transform each image of ``[B, C, H, W]`` and add a per-image, per-channel
    colour offset drawn from N(0, ``noise``²).

    Examples
    --------
    >>> x = torch.rand(3, 3, 8, 8)
    >>> transform(x, torch.Generator().manual_seed(0), noise=0.1).shape
    torch.Size([3, 3, 8, 8])
    """
    b, c, h, w = images.shape
    theta = random_affine(b, h, w, generator, degrees, translate, scale)
    grid = nn.functional.affine_grid(
        theta.to(images.device, images.dtype), [b, c, h, w], align_corners=False
    )
    out = nn.functional.grid_sample(images, grid, mode="bilinear", align_corners=False)
    if noise > 0:
        offset = torch.randn(b, c, 1, 1, generator=generator) * noise
        out = out + offset.to(images.device, images.dtype)
    return out
