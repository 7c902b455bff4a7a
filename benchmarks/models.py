"""The benchmark model: a small 3-block CNN for 3x32x32 inputs and 10 classes."""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10


def _block(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    # Not in-place: an in-place ReLU would overwrite the tensor a layer hook captured.
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class CNN3(nn.Module):
    """Three conv blocks, global average pooling and a linear classifier.

    ``block3`` (no pooling, an 8x8 grid) is "the last block" that GradCAM explains.
    """

    def __init__(self) -> None:
        super().__init__()
        self.block1 = _block(3, 16, pool=True)
        self.block2 = _block(16, 32, pool=True)
        self.block3 = _block(32, 64, pool=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.block3(self.block2(self.block1(x))))))


def make_model(device: str | torch.device = "cpu", seed: int = 0) -> CNN3:
    """Build the benchmark CNN with a seeded random initialisation, in eval mode.

    Parameters
    ----------
    device : str or torch.device
        Where the parameters live.
    seed : int
        Seed of the initialisation, so every run measures the same function.

    Returns
    -------
    CNN3
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CNN3()
    return model.to(device).eval()


def make_images(n: int, device: str | torch.device = "cpu", seed: int = 1) -> torch.Tensor:
    """Seeded uniform random images of shape ``[n, 3, 32, 32]``.

    Parameters
    ----------
    n : int
        Number of images.
    device : str or torch.device
        Where the tensor lives.
    seed : int
        Seed of the generator.

    Returns
    -------
    torch.Tensor
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, *IMAGE_SHAPE, generator=generator).to(device)
