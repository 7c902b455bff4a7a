"""Memory: activation sizes measured in a forward pass, the budget, and chunk sizes.

One policy sizes every expanded axis: a chunk of ``rows`` evaluated points with ``targets``
targets is estimated to need ``rows * (saved + points + targets * per_target)`` bytes,
from the activation sizes recorded (per sample) the first time a model sees a shape.
What a job holds across its chunks (captured activations, baseline activations, windowed
path starts, gradient accumulators and the assembled results: :func:`resident_bytes`)
comes out of the budget first; when not even one row fits in what is left,
:func:`warn_over_budget` says so with the figures.
"""

from __future__ import annotations

import contextlib
import math
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from .capture import hookable, own_hooks, tagged
from .plan import Job

# Before a model's activations are measured, assume they take this many times the input.
GUESS_EXPANSION = 64
# Backward through a vmapped (batched) graph holds a few layer-sized buffers per target.
GRAD_BUFFERS = 3


@dataclass
class Profile:
    """Bytes per sample of a model's forward pass on one input shape.

    ``saved`` sums every module's output (what autograd keeps, counted generously),
    ``largest`` is the largest single output, ``layers`` each named module's output,
    ``grids`` one channel of it (what a GradCAM map of the layer takes) and ``shapes`` its
    shape without the batch dim (what copies of a layer are laid over).
    """

    saved: int
    largest: int
    layers: dict[str, int] = field(default_factory=dict)
    grids: dict[str, int] = field(default_factory=dict)
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
    grids: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    rows = x.shape[0]

    def record(name: str):
        @tagged
        def hook(_m: torch.nn.Module, _i: object, out: object) -> None:
            if isinstance(out, torch.Tensor) and mine():
                sizes[name] = sizes.get(name, 0) + out.numel() * out.element_size() // rows
                if out.ndim >= 3:
                    grids[name] = out[0, 0].numel() * out.element_size()
                shapes[name] = tuple(out.shape[1:])

        return hook

    with contextlib.ExitStack() as stack:
        mine = stack.enter_context(own_hooks())
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
        grids=grids,
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
    if not grad:  # an operator's input, its output and a workspace (mkldnn's convolution)
        return 3 * profile.largest + point_bytes
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
    if targets * per_target <= free:
        return targets
    # Split: the gradients of all targets are gathered into one buffer as they come.
    free -= targets * rows * wrt_bytes
    return max(1, min(targets, free // max(per_target, 1)))


def resident_bytes(job: Job, profile: Profile, x: torch.Tensor, classes: int) -> int:
    """Bytes a job holds across the chunks of its passes, for all ``N`` samples at once.

    Captured layer activations (one copy per layer, and one per layer and baseline),
    windowed path starts and each request's gradient accumulator ``[T, N, ...]``.

    Examples
    --------
    >>> from algebra.kernels.plan import Group, Output, Points, Request, TargetSpec
    >>> group = Group(Points("inputs"), [Request("r", TargetSpec("all"))])
    >>> job = Job(None, torch.ones(4, 3), groups=[group], results=[Output("g", "r", "gradient")])
    >>> resident_bytes(job, Profile(saved=0, largest=0), torch.ones(1, 3), classes=10)
    480
    """
    n, size, targets = _sizes(job, profile, x, classes)
    held = n * sum(size(layer) for layer in {c for g in job.groups for c in g.capture})
    for group in job.groups:
        if group.points.kind == "baseline":
            held += n * sum(size(layer) for layer in group.capture)
        path = group.points.path
        if group.points.kind == "path" and path is not None and path.window is not None:
            held += n * size(group.points.layer)
        held += sum(targets[r.key] * n * size(r.wrt) for r in group.requests)
    return held


def results_bytes(job: Job, profile: Profile, x: torch.Tensor, classes: int) -> int:
    """Bytes of the job's assembled results, after its passes (while the gradients are held).

    Every output's values ``[T, N, ...]``, and the largest temporary of one: ``end -
    start`` of an integrated path, a GradCAM map before upsampling.

    Examples
    --------
    >>> from algebra.kernels.plan import Group, Output, Points, Request, TargetSpec
    >>> group = Group(Points("inputs"), [Request("r", TargetSpec("all"))])
    >>> job = Job(None, torch.ones(4, 3), groups=[group], results=[Output("g", "r", "gradient")])
    >>> results_bytes(job, Profile(saved=0, largest=0), torch.ones(1, 3), classes=10)
    480
    """
    n, size, targets = _sizes(job, profile, x, classes)
    values, temporaries = [], [0]
    for out in job.results:
        t = targets.get(out.request, 1)
        if out.kind != "grad_cam":
            values.append(t * n * size(out.layer))
            if out.kind == "integrated":
                temporaries.append(n * size(out.layer))
            continue
        # [T, N, *grid] maps (one channel of the layer), then [T, N, H, W] when upsampled.
        grid = t * n * profile.grids.get(out.layer or "", size(out.layer))
        image = t * n * math.prod(x.shape[2:]) * x.element_size() if out.upsample else 0
        values.append(image or grid)
        temporaries.append(grid if image else 0)
    return sum(values) + max(temporaries)


def _sizes(
    job: Job, profile: Profile, x: torch.Tensor, classes: int
) -> tuple[int, Callable[[str | None], int], dict[str, int]]:
    """Samples, bytes per sample of a layer (``None``: the input), targets per request."""
    point = x[0].numel() * x.element_size()

    def size(layer: str | None) -> int:
        return point if layer is None else profile.layers.get(layer, profile.largest)

    targets = {
        r.key: 1 if r.target.kind == "fn" else r.target.count(classes) or classes
        for g in job.groups
        for r in g.requests
    }
    return len(job.inputs), size, targets


def spare_budget(
    job: Job, profile: Profile, x: torch.Tensor, budget: int | None, classes: int
) -> int | None:
    """What is left of ``budget`` for one chunk's passes after :func:`resident_bytes`.

    Examples
    --------
    >>> job = Job(None, torch.ones(4, 3))
    >>> spare_budget(job, Profile(saved=0, largest=0), torch.ones(1, 3), 1000, 10)
    1000
    """
    if budget is None:
        return None
    return max(0, budget - resident_bytes(job, profile, x, classes))


def warn_over_budget(what: str, budget: int, resident: int, one_row: int, results: int = 0) -> bool:
    """Warn when even one row of a pass, or the assembled results, exceed the memory budget.

    Returns whether it warned.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_over_budget("the inputs pass", 1000, 900, 300, 200)
    True
    >>> print(caught[0].message)
    memory budget: 1000 bytes cannot hold this computation: about 1200 bytes are needed (the inputs pass, one row at a time: 300 bytes a row besides 900 held across chunks; the results: 200 bytes more than those). It goes on and will use more memory; raise ia.options.memory_budget, or ask for fewer samples, targets or layers at once
    """
    need = resident + max(one_row, results)
    if need <= budget:
        return False
    warnings.warn(
        f"memory budget: {budget} bytes cannot hold this computation: about {need} bytes "
        f"are needed ({what}, one row at a time: {one_row} bytes a row besides {resident} "
        f"held across chunks; the results: {results} bytes more than those). It goes on "
        "and will use more memory; raise ia.options.memory_budget, or ask for fewer "
        "samples, targets or layers at once",
        UserWarning,
        stacklevel=2,
    )
    return True
