"""Lucid-style image parameterisation: a learnable Fourier spectrum, decorrelated colours, sigmoid.

Optimising pixels directly yields high-frequency noise. Parameterising an image by its
Fourier coefficients, scaled down as frequency grows, makes gradient steps favour smooth
structure; a fixed colour matrix does the same across channels.
"""

from __future__ import annotations

import math

import torch

# Square root of the colour correlation of natural images (Lucid's ImageNet estimate),
# columns normalised so the largest has unit length. Only used for three channels.
_COLOUR = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR = _COLOUR / torch.linalg.vector_norm(_COLOUR, dim=0).max()


def spectrum_scale(height: int, width: int, decay: float = 1.5) -> torch.Tensor:
    """Per-frequency scale ``[height, width // 2 + 1]``: 1 / max(|f|^decay, 1 / (size·√0.5)).

    Frequencies are those of a grid with sample spacing √0.5 (so the lowest non-zero
    frequencies have scale about 1), ``size`` is the larger side; the floor caps the
    constant and lowest frequencies.

    Examples
    --------
    >>> s = spectrum_scale(8, 8)
    >>> s.shape, round(float(s[0, 0]), 3), bool(s[0, 1] > s[0, 4])
    (torch.Size([8, 5]), 5.657, True)
    """
    spacing = math.sqrt(0.5)
    fy = torch.fft.fftfreq(height, d=spacing)[:, None]
    fx = torch.fft.rfftfreq(width, d=spacing)[None, :]
    magnitude = (fx * fx + fy * fy).sqrt() ** decay
    floor = 1.0 / (max(height, width) * spacing)
    return 1.0 / magnitude.clamp(min=floor)


def init_spectrum(
    batch: int, channels: int, height: int, width: int, std: float = 1e-3, generator=None
) -> torch.Tensor:
    """Random real and imaginary parts ``[batch, channels, height, width // 2 + 1, 2]``, N(0, std²).

    Examples
    --------
    >>> init_spectrum(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 3, 8, 5, 2])
    """
    shape = (batch, channels, height, width // 2 + 1, 2)
    return torch.randn(shape, generator=generator) * std


def to_images(spectrum: torch.Tensor, height: int, width: int, scale: torch.Tensor) -> torch.Tensor:
    """Images ``[B, C, H, W]`` in (0, 1) from a spectrum: scale, inverse real FFT ("ortho"),
    colour decorrelation (three channels only), sigmoid.

    Examples
    --------
    >>> spec = torch.zeros(1, 3, 8, 5, 2)
    >>> to_images(spec, 8, 8, spectrum_scale(8, 8)).unique()
    tensor([0.5000])
    """
    coefficients = torch.complex(spectrum[..., 0], spectrum[..., 1]) * scale
    images = torch.fft.irfft2(coefficients, s=(height, width), norm="ortho")
    if images.shape[1] == 3:
        colour = COLOUR.to(images.device, images.dtype)
        images = torch.einsum("bchw,dc->bdhw", images, colour)
    return torch.sigmoid(images)
