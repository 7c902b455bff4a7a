"""``ia.attacks``: adversarial inputs for a model, to inspect with the other operators.

``fgsm`` (one signed gradient step, Goodfellow et al. 2015) and ``pgd`` (projected
gradient descent in the L-inf ball, Madry et al. 2018), batched, untargeted (leave the
true class) or targeted (reach a class). The model comes back unchanged: it runs in eval
mode with frozen parameters, restored afterwards, and no parameter gets a gradient. The
result is a plain tensor on the model's device: query it like any inputs
(``m.on(adv, labels=y)``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..kernels.attacks import perturb, random_start
from ..kernels.checks import (
    as_inputs,
    as_labels,
    check_gradients_available,
    check_model_ready,
    model_dtype,
)
from ..kernels.guard import device_of
from .model import Model

__all__ = ["fgsm", "pgd"]

MAX_STEPS = 100_000


def fgsm(
    model: Any,
    inputs: Any,
    labels: Any = None,
    *,
    eps: float,
    target: Any = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 256,
) -> torch.Tensor:
    """The fast gradient sign method: ``x + eps * sign(grad CE(f(x), y))``, clamped to ``bounds``.

    Untargeted, it steps up the cross-entropy of ``labels`` (the true classes; the model's
    predictions when ``labels`` is ``None``). With ``target`` it steps down the
    cross-entropy of the target class instead. The same as Captum's ``FGSM`` with a
    cross-entropy loss on the logits.

    Parameters
    ----------
    model : ia.Model or torch.nn.Module
        A classifier returning logits.
    inputs : torch.Tensor
        The clean batch ``[N, ...]`` (within ``bounds``).
    labels : sequence of int or torch.Tensor, optional
        The true classes, for an untargeted attack.
    eps : float
        The size of the step (the L-inf radius), > 0.
    target : int, str or sequence of int, optional
        The class to reach (a class name when the model has names), or one per sample.
    bounds : (float, float) or None
        The valid range of a feature (images in [0, 1] by default); ``None`` clamps nothing.
    batch_size : int
        Rows attacked together.

    Returns
    -------
    torch.Tensor
        The adversarial inputs on the model's device, with the inputs' shape and dtype.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    >>> x = torch.rand(4, 3, 2, 2)
    >>> adv = ia.attacks.fgsm(net, x, [0, 1, 2, 0], eps=0.05)
    >>> float((adv - x).abs().max()) <= 0.05 + 1e-7, adv.shape
    (True, torch.Size([4, 3, 2, 2]))
    >>> ia.attacks.fgsm(net, x, eps=-1)
    Traceback (most recent call last):
    ValueError: eps: expected a finite number > 0; got -1
    """
    return _attack("fgsm", model, inputs, labels, eps, 1, eps, target, None, bounds, batch_size)


def pgd(
    model: Any,
    inputs: Any,
    labels: Any = None,
    *,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    target: Any = None,
    random_start: bool = True,
    seed: int | None = None,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    batch_size: int = 256,
) -> torch.Tensor:
    """Projected gradient descent in the L-inf ball of radius ``eps`` around each input.

    From a uniform random point of the ball (``random_start``), ``steps`` signed gradient
    steps of ``step_size``, each projected back onto the ball and clamped to ``bounds``.
    Untargeted it climbs the cross-entropy of ``labels`` (the model's predictions when
    ``None``); with ``target`` it descends that of the target class. Without random start,
    the same as Captum's ``PGD`` (norm ``"Linf"``) with a cross-entropy loss.

    Parameters
    ----------
    model : ia.Model or torch.nn.Module
        A classifier returning logits.
    inputs : torch.Tensor
        The clean batch ``[N, ...]`` (within ``bounds``).
    labels : sequence of int or torch.Tensor, optional
        The true classes, for an untargeted attack.
    eps : float
        The L-inf radius, > 0.
    steps : int
        The number of steps (10).
    step_size : float, optional
        The size of each step; by default ``2.5 * eps / steps``.
    target : int, str or sequence of int, optional
        The class to reach, or one per sample.
    random_start : bool
        Start from a uniform random point of the ball rather than the input.
    seed : int, optional
        Seeds the random start (drawn on the CPU: the same on every device); without it
        the draw comes from torch's global generator.
    bounds : (float, float) or None
        The valid range of a feature; ``None`` clamps nothing.
    batch_size : int
        Rows attacked together.

    Returns
    -------
    torch.Tensor
        The adversarial inputs on the model's device.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    >>> m = ia.model(net, classes=["ant", "bee", "cat"])
    >>> x = torch.rand(4, 3, 2, 2)
    >>> adv = ia.attacks.pgd(m, x, target="cat", eps=0.5, steps=20, seed=0)
    >>> net(adv).argmax(1).tolist()
    [2, 2, 2, 2]
    >>> torch.equal(adv, ia.attacks.pgd(m, x, target="cat", eps=0.5, steps=20, seed=0))
    True
    """
    if not isinstance(random_start, bool):
        raise TypeError(f"random_start: expected True or False; got {random_start!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed: expected an integer or None; got {seed!r}")
    _positive(eps, "eps")
    steps = _steps(steps)
    size = 2.5 * eps / steps if step_size is None else _positive(step_size, "step_size")
    return _attack(
        "pgd", model, inputs, labels, eps, steps, size, target,
        (seed,) if random_start else None, bounds, batch_size,
    )  # fmt: skip


def _attack(
    name: str,
    model: Any,
    inputs: Any,
    labels: Any,
    eps: float,
    steps: int,
    step_size: float,
    target: Any,
    start: tuple[int | None] | None,
    bounds: Any,
    batch_size: int,
) -> torch.Tensor:
    eps = _positive(eps, "eps")
    module, names = _module(model)
    check_model_ready(module)
    check_gradients_available()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1; got {batch_size!r}")
    bounds = _bounds(bounds)
    device = device_of(module)
    x = as_inputs(inputs, model_dtype(module)).to(device)
    if bounds is not None and (float(x.min()) < bounds[0] or float(x.max()) > bounds[1]):
        raise ValueError(
            f"inputs: values lie in [{float(x.min()):.4g}, {float(x.max()):.4g}], outside "
            f"bounds={bounds}; scale the inputs or pass the bounds of their range"
        )
    classes = len(names) if names is not None else None
    if target is not None:
        if labels is not None:
            raise ValueError(
                "labels: a targeted attack reaches `target` and reads no labels; pass one"
            )
        goal = _target(target, len(x), names).to(device)
    elif labels is not None:
        goal = as_labels(labels, len(x), classes).to(device)
    else:  # attack the prediction
        with torch.no_grad():
            goal = torch.cat([module(rows).argmax(1) for rows in x.split(batch_size)])
    begin = None if start is None else random_start(x, eps, start[0], bounds)
    return perturb(
        module, x, goal, eps=eps, steps=steps, step_size=step_size,
        targeted=target is not None, start=begin, bounds=bounds, batch_size=batch_size,
    )  # fmt: skip


def _module(model: Any) -> tuple[torch.nn.Module, tuple[str, ...] | None]:
    if isinstance(model, Model):
        return model.module, model.classes
    if isinstance(model, torch.nn.Module):
        return model, None
    raise TypeError(f"model: expected an ia.Model or a torch.nn.Module; got {type(model).__name__}")


def _positive(value: Any, argument: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{argument}: expected a finite number > 0; got {value!r}")
    return float(value)


def _steps(steps: Any) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps: expected an integer in 1..{MAX_STEPS}; got {steps!r}")
    return steps


def _bounds(bounds: Any) -> tuple[float, float] | None:
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise TypeError(f"bounds: expected (low, high) or None; got {bounds!r}") from None
    if not low < high:
        raise ValueError(f"bounds: expected low < high; got {bounds!r}")
    return low, high


def _target(target: Any, n: int, names: tuple[str, ...] | None) -> torch.Tensor:
    classes = None if names is None else len(names)
    if isinstance(target, str):
        if names is None or target not in names:
            known = "the model has no class names" if names is None else f"classes: {names}"
            raise ValueError(f"target: no class named {target!r} ({known})")
        return torch.full((n,), names.index(target), dtype=torch.long)
    if isinstance(target, int) and not isinstance(target, bool):
        target = [target] * n
    try:
        return as_labels(target, n, classes)
    except (TypeError, ValueError) as error:
        raise type(error)("target" + str(error)[len("labels") :]) from None
