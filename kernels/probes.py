"""One-sample probes, so bad input fails when a query is built rather than when it runs.

A layer's output (its shape: unit indices, CAM grids) and DeepLift's rules (an unsupported
nonlinearity) can only be checked by running the model. A probe runs it once on the first
sample, without changing it (:func:`~algebra.kernels.guard.guarded`), and remembers the
answer per model, input shape and layer.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Iterator

import torch

from .capture import captured
from .deeplift import deeplift_rules
from .guard import device_of, guarded
from .pairs import paired

_seen: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, torch.Tensor | bool]] = (
    weakref.WeakKeyDictionary()
)


def _key(x: torch.Tensor, what: str) -> tuple:
    return (tuple(x.shape[1:]), x.dtype, x.device.type, what)


@contextlib.contextmanager
def _quietly_guarded(module: torch.nn.Module) -> Iterator[None]:
    # A model in training mode is warned about when it is computed, not by a probe.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="model (is|has submodules) in training mode")
        with guarded(module):
            yield


def layer_output(module: torch.nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The layer's output for the first sample of ``x``: ``[1, ...]``, without gradients.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU())
    >>> tuple(layer_output(net, torch.rand(4, 3, 8, 8), "0").shape)
    (1, 5, 6, 6)
    """
    seen = _seen.setdefault(module, {})
    key = _key(x, f"layer:{layer}")
    if key not in seen:
        sample = x[:1].to(device_of(module, default=x.device))
        with _quietly_guarded(module), torch.no_grad(), captured(module, (layer,)) as acts:
            module(sample)
        seen[key] = acts[layer].detach()
    return seen[key]  # type: ignore[return-value]


def check_deeplift(module: torch.nn.Module, x: torch.Tensor) -> None:
    """Run the first sample paired with a zero reference under DeepLift's rules: a
    ``ValueError`` names a nonlinearity without a rule.

    Examples
    --------
    >>> check_deeplift(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()), torch.ones(2, 3))
    >>> check_deeplift(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.GELU()), torch.ones(2, 3))
    Traceback (most recent call last):
    ValueError: deeplift: the model applies gelu, which has no DeepLift rule; ...
    """
    seen = _seen.setdefault(module, {})
    key = _key(x, "deeplift")
    if key in seen:
        return
    sample = x[:1].to(device_of(module, default=x.device))
    points = paired(sample, 0.0).requires_grad_(True)
    with _quietly_guarded(module), torch.enable_grad(), deeplift_rules(module):
        module(points)
    seen[key] = True
