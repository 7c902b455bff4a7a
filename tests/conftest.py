"""Small, seeded models and inputs shared by the tests."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn


class CountingForward(nn.Module):
    """Wraps a model and counts forward calls and the rows they evaluated.

    The counts live in a dict: plain attributes (numbers) are part of a model's state
    token, so counting in them would make every computation change the model.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.train(net.training)
        self.counts = {"calls": 0, "rows": 0}

    calls = property(
        lambda self: self.counts["calls"],
        lambda self, value: self.counts.__setitem__("calls", value),
    )
    rows = property(
        lambda self: self.counts["rows"],
        lambda self, value: self.counts.__setitem__("rows", value),
    )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.counts["calls"] += 1
        self.counts["rows"] += x.shape[0]
        return self.net(x)


def make_cnn(classes: int = 5) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 4, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(4, 6, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(2),
            flat=nn.Flatten(),
            fc=nn.Linear(24, classes),
        )
    ).eval()


def make_mlp(classes: int = 4) -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(
        OrderedDict(fc1=nn.Linear(6, 16), act=nn.Tanh(), fc2=nn.Linear(16, classes))
    ).eval()


@pytest.fixture
def cnn() -> nn.Sequential:
    return make_cnn()


@pytest.fixture
def mlp() -> nn.Sequential:
    return make_mlp()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def features() -> torch.Tensor:
    return torch.randn(5, 6, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def counting() -> type[CountingForward]:
    """The counting wrapper class (conftest is not importable under importlib mode)."""
    return CountingForward


@pytest.fixture
def cnn_factory():
    """Builds a fresh, seeded CNN each call."""
    return make_cnn
