"""Adversarial inputs by signed gradient steps: FGSM and projected gradient descent (L-inf).

The model runs guarded (eval mode, parameters frozen, both restored on any exit), and the
gradient is taken with ``torch.autograd.grad`` with respect to the inputs only, so no
parameter ever receives a ``.grad``. Rows are independent: the loss is a sum of per-row
cross-entropies, so a chunk of rows gives exactly the per-sample attacks.
"""

from __future__ import annotations

import torch

from .guard import guarded


def perturb(
    module: torch.nn.Module,
    inputs: torch.Tensor,
    classes: torch.Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float,
    targeted: bool = False,
    start: torch.Tensor | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 256,
) -> torch.Tensor:
    """Signed-gradient steps on ``inputs`` inside the L-inf ball of radius ``eps``.

    Each step moves every feature by ``step_size`` in the sign of the gradient of the
    cross-entropy of ``classes`` (up, to leave them; down when ``targeted``, to reach
    them), then projects onto the ball around ``inputs`` and clamps to ``bounds``. A
    feature whose gradient is exactly zero does not move. FGSM is one step of size
    ``eps`` from the inputs; PGD starts from ``start`` (a random point of the ball).

    Parameters
    ----------
    module
        A classifier returning logits ``[N, C]``.
    inputs
        The clean inputs ``[N, ...]`` on the module's device.
    classes
        ``[N]`` class indices: the true classes (untargeted) or the targets.
    eps, steps, step_size
        The radius, the number of steps and the size of each step.
    targeted
        Descend the loss of ``classes`` rather than ascend it.
    start
        Where the steps begin (default: the inputs), already inside the ball.
    bounds
        The valid range of a feature, or ``None``.
    batch_size
        Rows attacked together (memory, not results, depends on it).

    Returns
    -------
    torch.Tensor
        The adversarial inputs, detached, shaped and typed like ``inputs``.

    Examples
    --------
    >>> net = torch.nn.Linear(2, 2, bias=False).eval()
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> x = torch.tensor([[0.6, 0.4]])
    >>> perturb(net, x, torch.tensor([0]), eps=0.1, steps=1, step_size=0.1)
    tensor([[0.5000, 0.5000]])
    >>> net.weight.requires_grad, net.weight.grad is None
    (True, True)
    """
    out = torch.empty_like(inputs)
    low, high = (None, None) if bounds is None else bounds
    with guarded(module), torch.enable_grad():
        for rows in torch.arange(len(inputs), device=inputs.device).split(batch_size):
            clean = inputs[rows].detach()
            x = (clean if start is None else start[rows]).detach()
            for _ in range(steps):
                x = x.clone().requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(module(x), classes[rows], reduction="sum")
                (grad,) = torch.autograd.grad(loss, x)
                step = step_size * grad.sign()
                x = x.detach() + (-step if targeted else step)
                x = torch.max(torch.min(x, clean + eps), clean - eps)
                if bounds is not None:
                    x = x.clamp(low, high)
            out[rows] = x.detach()
    return out


def random_start(
    inputs: torch.Tensor,
    eps: float,
    seed: int | None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    """A uniform random point of the L-inf ball around each input, clamped to ``bounds``.

    With a ``seed`` the draw is made on the CPU and moved, so it is the same on every
    device; without one it comes from torch's global generator.

    Examples
    --------
    >>> x = torch.full((2, 3), 0.5)
    >>> s = random_start(x, 0.1, seed=0)
    >>> bool(((s - x).abs() <= 0.1).all()), torch.equal(s, random_start(x, 0.1, seed=0))
    (True, True)
    """
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    noise = torch.rand(inputs.shape, generator=generator, dtype=inputs.dtype)
    start = inputs + (2 * noise.to(inputs.device) - 1) * eps
    return start if bounds is None else start.clamp(*bounds)
