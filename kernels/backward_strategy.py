"""How a fused group's targets are differentiated: one vmapped backward, or one backward per
target after the shared forward.

``torch.autograd.grad(..., is_grads_batched=True)`` runs on the legacy vmap, which has no
batching rule for ``convolution_backward``, ``max_pool2d_with_indices_backward``,
``avg_pool2d_backward`` or batch norm's backward (torch 2.13): it loops over the targets
inside each of those operators and concatenates the results. On a CPU that is slower than
one plain backward per target (measured on the benchmark CNN: 1.2 to 1.6 times, see
docs/performance.md), so with ``backward="auto"`` a model on the CPU with such layers gets
sequential backwards; elsewhere the batched one. Either way the forward is shared and the
gradients are the same.
"""

from __future__ import annotations

import torch

from .plan import Request
from .unit_targets import is_unit

BACKWARDS = ("auto", "batched", "sequential")

# Layers whose backward operators the legacy vmap runs target by target.
UNBATCHED = (
    torch.nn.modules.conv._ConvNd,
    torch.nn.modules.pooling._MaxPoolNd,
    torch.nn.modules.pooling._AvgPoolNd,
    torch.nn.modules.batchnorm._BatchNorm,
)


def sequential(module: torch.nn.Module, device: torch.device, backward: str = "auto") -> bool:
    """Whether a fused group differentiates its targets one backward at a time.

    Examples
    --------
    >>> cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    >>> mlp = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> cpu = torch.device("cpu")
    >>> sequential(cnn, cpu), sequential(mlp, cpu), sequential(mlp, cpu, "sequential")
    (True, False, True)
    """
    if backward not in BACKWARDS:
        raise ValueError(f"backward: expected one of {BACKWARDS}; got {backward!r}")
    if backward != "auto":
        return backward == "sequential"
    if device.type != "cpu":
        return False
    return any(isinstance(m, UNBATCHED) for m in module.modules())


def sequential_rows(
    requests: list[Request], rows: list[torch.Tensor], classes: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Target rows ``[T, B]`` of sequential backwards and each request's slots in them.

    Unlike :func:`~algebra.kernels.targets.pack` (the fewest rows the data allows, for one
    batched backward), the rows depend only on the requests, so ``explain()`` counts the
    backwards exactly: each distinct target spec's rows in turn, or every class once when
    that is fewer; the units of layers (columns after the classes) follow.

    Examples
    --------
    >>> from algebra.kernels.plan import TargetSpec
    >>> reqs = [Request("a", TargetSpec("pred")), Request("b", TargetSpec("topk", 2))]
    >>> packed, slots = sequential_rows(reqs, [torch.tensor([[2, 0]]), torch.tensor([[2, 0], [1, 3]])], 5)
    >>> packed.tolist(), slots[0].tolist(), slots[1].tolist()
    ([[2, 0], [2, 0], [1, 3]], [[0, 0]], [[1, 1], [2, 2]])
    >>> sequential_rows(reqs, [torch.tensor([[2, 0]]), torch.tensor([[2, 0], [1, 3]])], 2)[0].tolist()
    [[0, 0], [1, 1]]
    """
    n = rows[0].shape[1]
    device = rows[0].device
    distinct: dict[str, tuple[torch.Tensor, bool]] = {}
    for req, r in zip(requests, rows, strict=True):
        distinct.setdefault(f"{req.target.kind}|{req.target.value!r}", (r, is_unit(req.target)))
    class_rows = sum(len(r) for r, unit in distinct.values() if not unit)
    every = class_rows > classes  # all classes once is fewer backwards
    starts: dict[str, int] = {}
    parts = [torch.arange(classes, device=device)[:, None].expand(classes, n)] if every else []
    for key, (r, unit) in distinct.items():
        if unit or not every:
            starts[key] = sum(len(p) for p in parts)
            parts.append(r)
    slots = []
    for req, r in zip(requests, rows, strict=True):
        key = f"{req.target.kind}|{req.target.value!r}"
        if key in starts:
            positions = starts[key] + torch.arange(len(r), device=device)
            slots.append(positions[:, None].expand(len(r), n))
        else:  # a class's row is the class itself
            slots.append(r)
    return torch.cat(parts), slots
