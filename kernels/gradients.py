"""Gradients of several targets from one forward pass, in one batched backward."""

from __future__ import annotations

import torch

from .plan import TargetSpec
from .targets import scalar_outputs


def target_gradients(
    outputs: torch.Tensor,
    wrt: torch.Tensor,
    rows: torch.Tensor | None,
    target: TargetSpec,
    retain_graph: bool,
) -> torch.Tensor:
    """Gradient of each target's score with respect to ``wrt``: shape ``[T, *wrt.shape]``.

    ``rows`` (``[T, B]``) names the class differentiated for each of the ``B`` rows of
    ``outputs``; ``None`` means the callable ``target`` gives the scores. Several targets
    share one vmapped backward (``is_grads_batched``), with a per-target loop as fallback for
    models whose operators have no batching rule.

    Examples
    --------
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> out = x * torch.tensor([1.0, 2.0, 3.0])
    >>> rows = torch.tensor([[0, 0], [2, 1]])
    >>> target_gradients(out, x, rows, TargetSpec("classes", (0, 2)), retain_graph=False)[1]
    tensor([[0., 0., 3.],
            [0., 2., 0.]])
    """
    if rows is None:
        scores = scalar_outputs(target, outputs)
        (grad,) = torch.autograd.grad(
            scores.sum(), wrt, retain_graph=retain_graph, allow_unused=True
        )
        return _or_zeros(grad, wrt)[None]
    one_hot = torch.nn.functional.one_hot(rows, outputs.shape[1]).to(outputs.dtype)
    if len(rows) == 1:
        (grad,) = torch.autograd.grad(
            outputs, wrt, one_hot[0], retain_graph=retain_graph, allow_unused=True
        )
        return _or_zeros(grad, wrt)[None]
    try:  # keep the graph: the fallback loop below needs it if vmap fails part-way
        (grad,) = torch.autograd.grad(
            outputs,
            wrt,
            one_hot,
            retain_graph=True,
            is_grads_batched=True,
            allow_unused=True,
        )
        if grad is None:
            return torch.zeros(len(rows), *wrt.shape, dtype=wrt.dtype, device=wrt.device)
        return grad
    except RuntimeError:  # vmap cannot batch this backward (data-dependent ops, some custom ops)
        grads = [
            _or_zeros(
                torch.autograd.grad(outputs, wrt, g, retain_graph=True, allow_unused=True)[0], wrt
            )
            for g in one_hot
        ]
        return torch.stack(grads)


def _or_zeros(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    # allow_unused gives None where the target does not depend on ``like``: its gradient is 0.
    return torch.zeros_like(like) if grad is None else grad
