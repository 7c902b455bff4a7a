"""The demo's networks and their training: a small CNN, a multi-layer perceptron (a second
architecture to compare with), and a seeded training loop that reports its progress.

Imports only numpy and torch; the data sets are in :mod:`algebra.demo.data`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def small_cnn(channels: int = 3, classes: int = 10, width: int = 8) -> nn.Sequential:
    """A four-block CNN (conv, batch norm, ReLU; max-pooling between blocks) whose last block
    ``block4`` is global-average-pooled into a linear head ``fc``: the decision features
    are its ``4 * width`` channels. Four blocks make every feature see the whole 32x32 image.

    Examples
    --------
    >>> small_cnn()(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

    return nn.Sequential(
        OrderedDict(
            block1=block(channels, width),
            down1=nn.MaxPool2d(2),
            block2=block(width, 2 * width),
            down2=nn.MaxPool2d(2),
            block3=block(2 * width, 2 * width),
            down3=nn.MaxPool2d(2),
            block4=block(2 * width, 4 * width),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(4 * width, classes),
        )
    )


def mlp(channels: int = 3, size: int = 32, classes: int = 10, hidden: int = 128) -> nn.Sequential:
    """A two-layer perceptron on the flattened image (``flat``, ``fc1``, ``act``, ``fc2``):
    a second architecture that sees the same pixels without convolutions.

    Examples
    --------
    >>> mlp()(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    return nn.Sequential(
        OrderedDict(
            flat=nn.Flatten(),
            fc1=nn.Linear(channels * size * size, hidden),
            act=nn.ReLU(),
            fc2=nn.Linear(hidden, classes),
        )
    )


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 10,
    lr: float = 1e-2,
    batch_size: int = 64,
    seed: int = 0,
    extra: torch.Tensor | None = None,
    progress: Callable[[], None] | None = None,
) -> float:
    """Train ``model`` in place with Adam (seeded shuffles, cosine decay); leave it in eval
    mode and return its training accuracy.

    With ``extra`` (a 0/1 flag per sample), the model's last output column is trained on it
    with a logistic loss, beside the classes in the other columns. ``progress`` is called
    after every batch (:func:`steps` of them in all).

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.rand(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    >>> done = []
    >>> _ = torch.manual_seed(0)
    >>> acc = train_classifier(small_cnn(width=4), x, y, epochs=2, batch_size=32,
    ...                        progress=lambda: done.append(1))
    >>> 0 <= acc <= 1, len(done) == steps(64, 2, 32) == 4
    (True, True)
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # Cosine decay to 0: the last epochs settle, so the batch-norm statistics match the weights.
    total = steps(len(x), epochs, batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * s / total)))
    device = next(model.parameters()).device  # data may stay on the CPU: batches move
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=gen).split(batch_size):
            opt.zero_grad()
            out = model(x[batch].to(device))
            target = y[batch].to(device)
            if extra is None:
                loss = nn.functional.cross_entropy(out, target)
            else:
                loss = nn.functional.cross_entropy(out[:, :-1], target)
                loss = loss + nn.functional.binary_cross_entropy_with_logits(
                    out[:, -1], extra[batch].to(device, out.dtype)
                )
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress()
    model.eval()
    with torch.no_grad():
        out = model(x.to(device))
        right = (out if extra is None else out[:, :-1]).argmax(1) == y.to(device)
        return float(right.float().mean())


def steps(n: int, epochs: int, batch_size: int = 64) -> int:
    """The number of batches :func:`train_classifier` takes on ``n`` samples.

    Examples
    --------
    >>> steps(100, 3, 64)
    6
    """
    return epochs * -(-n // batch_size)
