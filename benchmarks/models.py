"""The benchmark models: a small 3-block CNN for 3x32x32 inputs, and wide CNNs for 3x64x64
inputs whose large classifier gives them 41 MiB or 146 MB of parameters; 10 classes."""

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


class WideCNN(nn.Module):
    """Three conv blocks on 3x64x64 inputs, then a wide two-layer classifier.

    ``block3`` (16x16 grid) is the block GradCAM explains. The classifier's hidden width
    sets the size: 640 gives 41 MiB of parameters (``wide41``), 2200 gives 146 MB
    (``wide146``), as in the models of issue 10's measurements.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.block1 = _block(3, 64, pool=True)
        self.block2 = _block(64, 128, pool=True)
        self.block3 = _block(128, 256, pool=False)
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(256 * 8 * 8, hidden)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.block3(self.block2(self.block1(x))))
        return self.fc(self.relu(self.fc1(self.flatten(h))))


# Model name -> (constructor, image side).
MODELS = {
    "cnn3": (CNN3, IMAGE_SHAPE[-1]),
    "wide41": (lambda: WideCNN(640), 64),
    "wide146": (lambda: WideCNN(2200), 64),
}


def make_model(device: str | torch.device = "cpu", seed: int = 0, name: str = "cnn3") -> nn.Module:
    """Build a benchmark model with a seeded random initialisation, in eval mode.

    Parameters
    ----------
    device : str or torch.device
        Where the parameters live.
    seed : int
        Seed of the initialisation, so every run measures the same function.
    name : str
        A key of :data:`MODELS`.

    Returns
    -------
    torch.nn.Module
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS[name][0]()
    return model.to(device).eval()


def make_images(
    n: int, device: str | torch.device = "cpu", seed: int = 1, size: int = IMAGE_SHAPE[-1]
) -> torch.Tensor:
    """Seeded uniform random images of shape ``[n, 3, size, size]``.

    Parameters
    ----------
    n : int
        Number of images.
    device : str or torch.device
        Where the tensor lives.
    seed : int
        Seed of the generator.
    size : int
        Height and width.

    Returns
    -------
    torch.Tensor
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, IMAGE_SHAPE[0], size, size, generator=generator).to(device)
