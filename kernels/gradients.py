"""Gradients of several targets, with respect to several tensors, in one batched backward."""

from __future__ import annotations

import torch

from .plan import TargetSpec
from .targets import scalar_outputs


def check_differentiable(outputs: torch.Tensor, wrts: dict[str | None, torch.Tensor]) -> None:
    """Name the cause when the model's ``outputs`` cannot be differentiated w.r.t. ``wrts``.

    ``wrts`` maps ``None`` (the input) or a layer name to the tensor differentiated.
    Raises ``ValueError`` (``TypeError`` for integer outputs) instead of autograd's
    "element 0 of tensors does not require grad".

    Examples
    --------
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> check_differentiable(x * 2, {None: x})
    >>> check_differentiable((x * 2).detach(), {None: x})
    Traceback (most recent call last):
    ValueError: model: its outputs do not depend differentiably on its input: the forward cuts the gradient (torch.no_grad(), .detach(), argmax or integer operations on the way to the outputs); attribution needs gradients through the forward pass
    """
    if not (outputs.is_floating_point() or outputs.is_complex()):
        raise TypeError(
            f"model: returns outputs of dtype {outputs.dtype}; attribution differentiates the "
            "outputs, so they must be floating point (return the logits, not classes or "
            "rounded scores)"
        )
    if outputs.requires_grad:
        return
    off = [name for name, t in wrts.items() if name is not None and not t.requires_grad]
    if off:
        raise ValueError(
            f"layer {off[0]!r} ran with gradients disabled: the model's forward runs it under "
            "torch.no_grad() (or inference mode); attribution needs gradients through the "
            "forward pass"
        )
    what = " and ".join("its input" if w is None else f"layer {w!r}" for w in wrts)
    layers = [w for w in wrts if w is not None]
    reach = (
        f"{'layer ' + repr(layers[0]) if len(layers) == 1 else 'the layers'} may not reach "
        "the outputs (a side branch), or "
        if layers
        else ""
    )
    raise ValueError(
        f"model: its outputs do not depend differentiably on {what}: {reach}the forward "
        "cuts the gradient (torch.no_grad(), .detach(), argmax or integer operations on "
        "the way to the outputs); attribution needs gradients through the forward pass"
    )


def unreached(outputs: torch.Tensor, wrts: dict[str | None, torch.Tensor]) -> bool:
    """Whether every tensor differentiated is a layer's activation, recorded with
    gradients, that does not reach the ``outputs`` (a side branch, or a layer whose result
    the forward drops): their gradients are zero.

    Examples
    --------
    >>> a = torch.ones(2, 3, requires_grad=True)
    >>> unreached(torch.ones(2, 4), {"side": a}), unreached(a * 2, {"side": a})
    (True, False)
    >>> unreached(torch.ones(2, 4), {None: a})  # the input: a cut gradient is an error
    False
    """
    return (
        bool(wrts)
        and not outputs.requires_grad
        and (outputs.is_floating_point() or outputs.is_complex())
        and all(name is not None and t.requires_grad for name, t in wrts.items())
    )


def target_gradients(
    outputs: torch.Tensor,
    wrt: tuple[torch.Tensor, ...],
    rows: torch.Tensor | None,
    target: TargetSpec,
    retain_graph: bool,
    batched: bool = True,
    trusted: bool = False,
    status: dict[str, bool] | None = None,
) -> tuple[torch.Tensor, ...]:
    """Gradient of each target's score with respect to each of ``wrt``: ``[T, *w.shape]`` each.

    ``rows`` (``[T, B]``) names the class differentiated for each of the ``B`` rows of
    ``outputs``; ``None`` means the callable ``target`` gives the scores. With ``batched``,
    all targets share one vmapped backward (``is_grads_batched``), falling back to a
    per-target loop for models whose operators have no batching rule. The batched backward
    keeps the graph for that fallback unless ``trusted`` (it is known to work on this
    model), so the last backward of a pass can free activations as it goes; ``status``
    records whether the batched backward worked (``status["batched"]``).

    Examples
    --------
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> out = x * torch.tensor([1.0, 2.0, 3.0])
    >>> rows = torch.tensor([[0, 0], [2, 1]])
    >>> target_gradients(out, (x,), rows, TargetSpec("classes", (0, 2)), retain_graph=False)[0][1]
    tensor([[0., 0., 3.],
            [0., 2., 0.]])
    """
    if rows is None:
        scores = scalar_outputs(target, outputs).sum()
        return tuple(g[None] for g in _grad(scores, wrt, None, retain_graph))
    one_hot = torch.nn.functional.one_hot(rows, outputs.shape[1]).to(outputs.dtype)
    if len(rows) == 1:
        return tuple(g[None] for g in _grad(outputs, wrt, one_hot[0], retain_graph))
    if batched:
        keep = retain_graph or not trusted  # the fallback needs the graph if vmap fails part-way
        try:
            grads = _grad(outputs, wrt, one_hot, keep, is_grads_batched=True)
            if status is not None:
                status["batched"] = True
            return grads
        except RuntimeError:  # no batching rule (data-dependent ops, some custom ops)
            if not keep:
                raise
            if status is not None:
                status["batched"] = False
    last = len(one_hot) - 1
    per_target = [_grad(outputs, wrt, g, retain_graph or i < last) for i, g in enumerate(one_hot)]
    return tuple(torch.stack(gs) for gs in zip(*per_target, strict=True))


def _grad(
    outputs: torch.Tensor,
    wrt: tuple[torch.Tensor, ...],
    grad_outputs: torch.Tensor | None,
    retain_graph: bool,
    is_grads_batched: bool = False,
) -> tuple[torch.Tensor, ...]:
    grads = torch.autograd.grad(
        outputs,
        wrt,
        grad_outputs,
        retain_graph=retain_graph,
        allow_unused=True,
        is_grads_batched=is_grads_batched,
    )
    # allow_unused gives None where the target does not depend on a tensor: its gradient is 0.
    batch = (len(grad_outputs),) if is_grads_batched and grad_outputs is not None else ()
    return tuple(
        torch.zeros(*batch, *w.shape, dtype=w.dtype, device=w.device) if g is None else g
        for g, w in zip(grads, wrt, strict=True)
    )
