"""Split a classifier into pooled decision features z and its linear decision layer (W, b)."""

from __future__ import annotations

import contextlib
import difflib
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .batches import Inputs, batches, call, take
from .capture import refuse_script
from .guard import device_of, guarded

#: Rows of the one forward that :func:`find_decision` runs to see which layers are called.
PROBE_ROWS = 8


@dataclass(frozen=True)
class Decision:
    """A model's decision layer and where its input features come from.

    ``layer`` is the submodule whose (spatially mean-pooled) output gives the features,
    or ``None`` when the features are the input of ``head``. ``weight`` ``[C, D]`` and
    ``bias`` ``[C]`` are detached views of the head's parameters (never written to).
    """

    head: str
    layer: str | None
    weight: torch.Tensor
    bias: torch.Tensor

    @property
    def classes(self) -> int:
        """Number of classes C.

        Examples
        --------
        >>> Decision("fc", None, torch.zeros(3, 2), torch.zeros(3)).classes
        3
        """
        return self.weight.shape[0]

    @property
    def neurons(self) -> int:
        """Number of decision features (neurons) D.

        Examples
        --------
        >>> Decision("fc", None, torch.zeros(3, 2), torch.zeros(3)).neurons
        2
        """
        return self.weight.shape[1]

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The decision layer applied to features ``[..., D]``.

        Examples
        --------
        >>> Decision("fc", None, torch.eye(2), torch.ones(2)).logits(torch.tensor([[1.0, 2.0]]))
        tensor([[2., 3.]])
        """
        return nn.functional.linear(features, self.weight, self.bias)


def pool(activation: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension after the channel one: ``[N, K, ...]`` -> ``[N, K]``.

    Examples
    --------
    >>> pool(torch.ones(2, 3, 4, 4)).shape
    torch.Size([2, 3])
    """
    return activation.flatten(2).mean(2) if activation.ndim > 2 else activation


def find_decision(
    module: nn.Module, example: Inputs, layer: str | None = None, head: str | None = None
) -> Decision:
    """Locate the decision layer of ``module`` by running it once on ``example``.

    The head is the ``nn.Linear`` named by ``head``, by default the last ``nn.Linear``
    called in the forward pass. With ``layer``, the features are that layer's output
    mean-pooled over space, and the split is accepted only when ``W pool(layer) + b``
    reproduces the head's output, i.e. nothing but pooling and flattening lies between.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 3)).eval()
    >>> d = find_decision(net, torch.rand(2, 1, 6, 6), layer="1")
    >>> d.head, d.layer, d.classes, d.neurons
    ('4', '1', 3, 4)
    >>> find_decision(net, torch.rand(2, 1, 6, 6), layer="0")
    Traceback (most recent call last):
    ValueError: layer: W·pool('0') + b does not reproduce the output of the decision layer '4' (largest difference ...): more than pooling and flattening lies between them. Choose the layer whose pooled output feeds the head, or name the decision layer with head=
    """
    refuse_script(module)
    modules = dict(module.named_modules())
    for argument, name in (("head", head), ("layer", layer)):
        if name is not None and name not in modules:
            raise ValueError(
                f"{argument}: the model has no submodule {name!r}.{_close(name, modules)}"
            )
    if head is not None and not isinstance(modules[head], nn.Linear):
        raise ValueError(
            f"head: {head!r} is a {type(modules[head]).__name__}; the decision layer must be "
            "an nn.Linear"
        )
    linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
    if head is None and not linears:
        raise ValueError(
            "head: the model has no nn.Linear decision layer; name one with head= (an nn.Linear)"
        )
    calls: list[str] = []
    seen: dict[str, Any] = {}
    with contextlib.ExitStack() as stack, guarded(module), torch.no_grad():
        for name in linears if head is None else [head]:
            stack.enter_context(_recording(modules[name], name, calls, seen))
        if layer is not None:
            stack.enter_context(_output(modules[layer], layer, seen))
        call(module, take(example, slice(0, PROBE_ROWS), device_of(module)))
    if not calls:
        what = repr(head) if head else "no nn.Linear"
        raise ValueError(f"head: {what} is not called in the model's forward pass")
    head = head or calls[-1]
    if calls.count(head) > 1:
        raise ValueError(
            f"head: {head!r} is called {calls.count(head)} times in one forward pass; "
            "name a decision layer that is called once with head="
        )
    linear = modules[head]
    weight = linear.weight.detach()
    bias = linear.bias.detach() if linear.bias is not None else weight.new_zeros(len(weight))
    z_in, out = seen[f"in:{head}"], seen[f"out:{head}"]
    if layer is None:
        if z_in.ndim != 2:
            raise ValueError(
                f"head: the input of {head!r} has shape {tuple(z_in.shape)}, not [N, D]; name "
                "the feature layer with layer= or another decision layer with head="
            )
        return Decision(head, None, weight, bias)
    if layer not in seen:
        raise ValueError(f"layer: {layer!r} is not called in the model's forward pass")
    z = pool(seen[layer])
    if z.ndim != 2 or z.shape[1] != weight.shape[1]:
        raise ValueError(
            f"layer: {layer!r} pools to {tuple(z.shape[1:])} a sample but the decision layer "
            f"{head!r} takes {weight.shape[1]} features; choose the layer whose pooled output feeds the "
            "head, or name the decision layer with head="
        )
    _check_reproduces(z, weight, bias, out, layer, head)
    return Decision(head, layer, weight, bias)


@contextlib.contextmanager
def feature_hook(module: nn.Module, decision: Decision) -> Iterator[list[torch.Tensor]]:
    """Collect the pooled decision features of every forward pass inside the block.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2)).eval()
    >>> d = find_decision(net, torch.ones(1, 2))
    >>> with feature_hook(net, d) as got:
    ...     _ = net(torch.ones(4, 2))
    >>> got[0].shape
    torch.Size([4, 3])
    """
    got: list[torch.Tensor] = []
    modules = dict(module.named_modules())
    if decision.layer is None:
        handle = modules[decision.head].register_forward_pre_hook(
            lambda _m, args: got.append(args[0])
        )
    else:
        handle = modules[decision.layer].register_forward_hook(
            lambda _m, _i, out: got.append(pool(out))
        )
    try:
        yield got
    finally:
        handle.remove()


def decision_features(
    module: nn.Module, decision: Decision, data: Any, batch_size: int = 256, argument: str = "data"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pooled features ``[N, D]`` (and labels, when ``data`` has them) in eval mode, no grad.

    The module is evaluated under :func:`~algebra.kernels.guard.guarded`: its modes and
    flags come back as they were, and no hook outlives the call.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2)).eval()
    >>> d = find_decision(net, torch.ones(1, 2))
    >>> z, y = decision_features(net, d, (torch.ones(5, 2), torch.zeros(5, dtype=torch.long)))
    >>> z.shape, y.shape
    (torch.Size([5, 3]), torch.Size([5]))
    """
    zs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    labelled = True
    device = decision.weight.device
    with guarded(module), torch.no_grad(), feature_hook(module, decision) as got:
        for x, y in batches(data, batch_size, argument):
            call(module, take(x, slice(None), device))
            zs.append(got.pop().detach())
            if y is None:
                labelled = False
            else:
                ys.append(torch.as_tensor(y).to(device))
    if not zs:
        raise ValueError(f"{argument}: no samples")
    return torch.cat(zs), (torch.cat(ys).long() if labelled else None)


def check_class(cls: Any, classes: int, argument: str = "cls") -> int:
    """An integer class index in ``range(classes)``, else a clear error naming ``argument``.

    Examples
    --------
    >>> check_class(2, 3)
    2
    >>> check_class(3, 3)
    Traceback (most recent call last):
    ValueError: cls: class 3 is out of range; the decision layer has 3 classes (0..2)
    """
    try:
        if isinstance(cls, bool):
            raise TypeError
        cls = operator.index(cls.item() if isinstance(cls, torch.Tensor) else cls)
    except (TypeError, RuntimeError, ValueError):
        raise TypeError(f"{argument}: expected a class index (int); got {cls!r}") from None
    if not 0 <= cls < classes:
        raise ValueError(
            f"{argument}: class {cls} is out of range; the decision layer has {classes} "
            f"classes (0..{classes - 1})"
        )
    return cls


def check_neurons(neurons: Any, count: int, what: str, argument: str = "neurons") -> torch.Tensor:
    """Distinct neuron indices in ``range(count)`` as a long tensor, else a clear error.

    Examples
    --------
    >>> check_neurons([3, 1], 4, "the decision features")
    tensor([3, 1])
    >>> check_neurons([4], 4, "the decision features")
    Traceback (most recent call last):
    ValueError: neurons: 4 is out of range for the decision features (4 neurons: 0..3)
    """
    index = torch.as_tensor(neurons).flatten() if not isinstance(neurons, int) else None
    if isinstance(neurons, int):
        index = torch.tensor([neurons])
    if (
        index is None
        or index.numel() == 0
        or index.is_floating_point()
        or index.dtype == torch.bool
    ):
        raise ValueError(f"{argument}: expected one or more neuron indices (ints); got {neurons!r}")
    bad = index[(index < 0) | (index >= count)]
    if bad.numel():
        raise ValueError(
            f"{argument}: {int(bad[0])} is out of range for {what} ({count} neurons: 0..{count - 1})"
        )
    if index.unique().numel() != index.numel():
        raise ValueError(f"{argument}: indices repeat; got {index.tolist()}")
    return index.long()


@contextlib.contextmanager
def _recording(linear: nn.Module, name: str, calls: list[str], seen: dict) -> Iterator[None]:
    def pre(_m: nn.Module, args: tuple) -> None:
        calls.append(name)
        seen[f"in:{name}"] = args[0].clone()

    def post(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        seen[f"out:{name}"] = out.clone()

    handles = [linear.register_forward_pre_hook(pre), linear.register_forward_hook(post)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _output(sub: nn.Module, name: str, seen: dict) -> Iterator[None]:
    def post(_m: nn.Module, _i: object, out: object) -> None:
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"layer: {name!r} returns {type(out).__name__}, not a tensor")
        seen[name] = out.clone()  # an in-place op downstream must not change it

    handle = sub.register_forward_hook(post)
    try:
        yield
    finally:
        handle.remove()


def _check_reproduces(
    z: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    out: torch.Tensor,
    layer: str,
    head: str,
) -> None:
    again = nn.functional.linear(z, weight, bias)
    scale = float(out.abs().max()) + 1.0
    tol = (1e-4 if out.dtype in (torch.float32, torch.bfloat16, torch.float16) else 1e-9) * scale
    if out.dtype in (torch.bfloat16, torch.float16):
        tol = 1e-2 * scale
    gap = float((again - out).abs().max()) if again.shape == out.shape else float("inf")
    if not gap <= tol:
        raise ValueError(
            f"layer: W·pool({layer!r}) + b does not reproduce the output of the decision layer "
            f"{head!r} (largest difference {gap:.3g}): more than pooling and flattening lies "
            "between them. Choose the layer whose pooled output feeds the head, or name the "
            "decision layer with head="
        )


def _close(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(name), [c for c in choices if c], n=2)
    return (" Did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
