"""Memory: activation sizes measured in a forward pass, the budget, and chunk sizes.

One policy sizes every expanded axis: a chunk of ``rows`` evaluated points with ``targets``
targets is estimated to need ``rows * (saved + points + targets * per_target)`` bytes,
from the activation sizes recorded (per sample) the first time a model sees a shape.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .capture import hookable

# Before a model's activations are measured, assume they take this many times the input.
GUESS_EXPANSION = 64
# Backward through a vmapped (batched) graph holds a few layer-sized buffers per target.
GRAD_BUFFERS = 3


@dataclass
class Profile:
    """Bytes per sample of a model's forward pass on one input shape.

    ``saved`` sums every module's output (what autograd keeps, counted generously),
    ``largest`` is the largest single output, ``layers`` each named module's output and
    ``shapes`` its shape without the batch dim (what copies of a layer are laid over).
    """

    saved: int
    largest: int
    layers: dict[str, int] = field(default_factory=dict)
    classes: int | None = None
    measured: bool = True
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


_profiles: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, Profile]] = (
    weakref.WeakKeyDictionary()
)


def _shape_key(x: torch.Tensor) -> tuple:
    return (tuple(x.shape[1:]), x.dtype, x.device.type)


def known_profile(module: torch.nn.Module, x: torch.Tensor) -> Profile | None:
    """The measured profile of ``module`` on inputs shaped like ``x``, if any.

    Examples
    --------
    >>> known_profile(torch.nn.Linear(2, 2), torch.ones(1, 2)) is None
    True
    """
    return _profiles.get(module, {}).get(_shape_key(x))


def guessed_profile(x: torch.Tensor) -> Profile:
    """A conservative stand-in before the first forward has measured the model.

    Examples
    --------
    >>> guessed_profile(torch.ones(1, 4)).measured
    False
    """
    per_sample = x[0].numel() * x.element_size()
    return Profile(GUESS_EXPANSION * per_sample, 8 * per_sample, measured=False)


@contextlib.contextmanager
def profiling(module: torch.nn.Module, x: torch.Tensor) -> Iterator[None]:
    """Record output sizes of every submodule during the forward inside the block.

    Skipped (no hooks) once the model's profile for this input shape is known.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU())
    >>> with profiling(net, torch.ones(4, 2)):
    ...     _ = net(torch.ones(4, 2))
    >>> known_profile(net, torch.ones(1, 2)).layers["0"]
    32
    """
    if known_profile(module, x) is not None or not hookable(module):
        yield
        return
    sizes: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    rows = x.shape[0]

    def record(name: str):
        def hook(_m: torch.nn.Module, _i: object, out: object) -> None:
            if isinstance(out, torch.Tensor):
                sizes[name] = sizes.get(name, 0) + out.numel() * out.element_size() // rows
                shapes[name] = tuple(out.shape[1:])

        return hook

    with contextlib.ExitStack() as stack:
        for name, sub in module.named_modules():
            stack.callback(sub.register_forward_hook(record(name)).remove)
        yield
    if not sizes:
        return
    outputs = sizes.pop("", None)
    classes = None if outputs is None else outputs // x.element_size()
    profile = Profile(
        saved=sum(sizes.values()) + (outputs or 0),
        largest=max(sizes.values(), default=outputs or 0),
        layers=sizes,
        classes=classes,
        shapes=shapes,
    )
    _profiles.setdefault(module, {})[_shape_key(x)] = profile


def default_budget(device: torch.device) -> int:
    """Half the free memory of a CUDA device, or a quarter of the available RAM.

    Examples
    --------
    >>> default_budget(torch.device("cpu")) > 0
    True
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: line.split()[1] for line in f}
        return int(info["MemAvailable"]) * 1024 // 4
    except (OSError, KeyError, ValueError):
        return 4 * 2**30


def row_bytes(profile: Profile, point_bytes: int, wrt_bytes: int, targets: int, grad: bool) -> int:
    """Estimated bytes per evaluated point for a forward and a backward of ``targets``.

    Examples
    --------
    >>> row_bytes(Profile(saved=100, largest=40), 8, 8, targets=2, grad=True)
    372
    """
    if not grad:
        return 2 * profile.largest + point_bytes
    per_target = GRAD_BUFFERS * profile.largest + wrt_bytes
    return profile.saved + 2 * point_bytes + targets * per_target


def chunk_rows(rows: int, per_row: int, budget: int | None) -> int:
    """Rows per chunk: as many as fit in ``budget`` (at least one; all without a budget).

    Examples
    --------
    >>> chunk_rows(1000, 10, 2500), chunk_rows(1000, 10, None), chunk_rows(5, 10**9, 1)
    (250, 1000, 1)
    """
    if budget is None:
        return rows
    return max(1, min(rows, budget // max(per_row, 1)))


def chunk_targets(
    targets: int, rows: int, profile: Profile, point_bytes: int, wrt_bytes: int, budget: int | None
) -> int:
    """Targets per backward for a chunk of ``rows`` already evaluated (at least one).

    Examples
    --------
    >>> chunk_targets(10, 1, Profile(saved=100, largest=10), 0, 0, budget=200)
    3
    """
    if budget is None:
        return targets
    free = budget - rows * (profile.saved + 2 * point_bytes)
    per_target = rows * (GRAD_BUFFERS * profile.largest + wrt_bytes)
    return max(1, min(targets, free // max(per_target, 1)))
