"""The float64 CNN the gradient-family kernel tests compare with Captum (imported by them;
a module-level factory, as their parametrizations name it)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def make_cnn() -> nn.Module:
    """Two convolutions with ReLUs, max pooling and a linear head over 3 x 8 x 8 inputs."""
    torch.manual_seed(0)
    return (
        nn.Sequential(
            OrderedDict(
                conv1=nn.Conv2d(3, 4, 3, padding=1),
                relu1=nn.ReLU(),
                conv2=nn.Conv2d(4, 6, 3, padding=1),
                relu2=nn.ReLU(),
                pool=nn.MaxPool2d(2),
                flat=nn.Flatten(),
                fc=nn.Linear(96, 5),
            )
        )
        .double()
        .eval()
    )
