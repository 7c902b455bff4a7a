"""``ia.options.compile``: the fused step (forward plus batched backward) through torch.compile.

``torch.autograd.grad(..., is_grads_batched=True)`` cannot run a compiled graph's backward
(its kernels have no batching rules), so the compiled step is written with ``torch.func``:
``vjp`` of the model, ``vmap`` over the one-hot rows of every target. Only passes without
hooks use it (hooks would force recompilation).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

_steps: weakref.WeakKeyDictionary[torch.nn.Module, Callable] = weakref.WeakKeyDictionary()


def fused_step(module: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], tuple]:
    """A compiled ``(points, one_hot [T, B, C]) -> (outputs, gradients [T, B, ...])``.

    Examples
    --------
    >>> net = torch.nn.Linear(3, 2).requires_grad_(False)
    >>> step = fused_step(net)
    >>> out, grads = step(torch.ones(4, 3), torch.eye(2)[:, None].expand(2, 4, 2))  # doctest: +SKIP
    """
    if module not in _steps:

        def step(points: torch.Tensor, one_hot: torch.Tensor) -> tuple:
            outputs, pullback = torch.func.vjp(module, points)
            (grads,) = torch.vmap(pullback)(one_hot)
            return outputs, grads

        _steps[module] = torch.compile(step)
    return _steps[module]
