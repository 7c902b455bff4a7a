"""The physical plan: what the kernels execute, in plain data (no expression nodes, no torch).

The optimizer (:mod:`algebra.optimizer`) builds a :class:`Job` per model and batch of inputs.
Every class here is frozen: a plan is built once, then only read.
A job is a list of :class:`Group`: one per set of points the model is evaluated at (the
inputs, a baseline, an integration path, a stream of perturbed copies). Each gradient group
runs one forward (per chunk) and one batched backward over all its :class:`Request` (every
target, every layer) when fused; a copies group runs one deduplicated stream of forwards for
all its :class:`Perturbation` designs. :class:`Output` says how each expression's result is
assembled from a request's gradients or a design's scores.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# The integration rules of integrated gradients, in Captum's names.
INTEGRATION_RULES = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)

MAX_STEPS = {
    "gausslegendre": 10_000,
    "riemann_left": 1_000_000,
    "riemann_right": 1_000_000,
    "riemann_middle": 1_000_000,
    "riemann_trapezoid": 1_000_000,
}


def check_path_steps(steps: Any, rule: str) -> int:
    """Validate the number of integration steps for ``rule``: an integer in ``1..MAX_STEPS``.

    Raises ``ValueError`` naming ``steps`` (never ``OverflowError``, however large the
    number) or ``TypeError`` for a non-integer.

    Examples
    --------
    >>> check_path_steps(2000, "gausslegendre")
    2000
    >>> check_path_steps(10**100, "gausslegendre")
    Traceback (most recent call last):
    ValueError: steps: about 10^100 is more than the 10000 steps the gausslegendre rule is built for; use at most 10000 steps, or a riemann rule (up to 1000000 steps)
    """
    if isinstance(steps, bool) or not hasattr(steps, "__index__"):
        raise TypeError(f"steps: expected an integer; got {type(steps).__name__}")
    steps = operator.index(steps)
    if rule not in MAX_STEPS:
        raise ValueError(
            f"method: unknown integration rule {rule!r}; expected one of {INTEGRATION_RULES}"
        )
    if steps < 1:
        raise ValueError(f"steps: expected an integer >= 1; got {_shown(steps)}")
    cap = MAX_STEPS[rule]
    if steps > cap:
        other = (
            ""
            if rule != "gausslegendre"
            else (f", or a riemann rule (up to {MAX_STEPS['riemann_left']} steps)")
        )
        raise ValueError(
            f"steps: {_shown(steps)} is more than the {cap} steps the {rule} rule is built "
            f"for; use at most {cap} steps{other}"
        )
    return steps


def _shown(number: int) -> str:
    # str() of an int of thousands of digits raises; a size is what the reader needs.
    if abs(number) < 10**12:
        return str(number)
    return f"about {'-' if number < 0 else ''}10^{int(abs(number).bit_length() * math.log10(2))}"


TargetKind = Literal["index", "per_sample", "pred", "label", "topk", "all", "classes", "fn"]
OutputKind = Literal["gradient", "times_input", "grad_cam", "integrated", "perturbation"]
# The perturbation methods the copies runner knows, in the query language's names.
PERTURBATION_METHODS = (
    "shapley",
    "kernel_shap",
    "lime",
    "occlusion",
    "feature_ablation",
    "feature_permutation",
)


@dataclass(frozen=True)
class TargetSpec:
    """Which output scalar(s) to differentiate: a kind and its value."""

    kind: TargetKind
    value: int | tuple[int, ...] | Callable[[Any], Any] | None = None

    def count(self, num_classes: int | None) -> int | None:
        """Targets per sample (``None`` when it depends on an unknown number of classes).

        Examples
        --------
        >>> TargetSpec("topk", 3).count(None), TargetSpec("all").count(10)
        (3, 10)
        """
        if self.kind == "topk":
            return int(self.value)  # type: ignore[arg-type]
        if self.kind == "classes":
            return len(self.value)  # type: ignore[arg-type]
        if self.kind == "all":
            return num_classes
        return 1


# A window ``(r0, r1, c0, c1)``: rows r0:r1 and columns c0:c1 of a spatial grid.
Window = tuple[int, int, int, int]


@dataclass(frozen=True)
class Edited:
    """Inputs made from other inputs: ``base`` (a tensor or another ``Edited``) changed.

    ``patch`` sets ``window`` to ``value`` (a number or a tensor broadcastable to the
    patch), ``replace`` copies ``window`` from ``value`` (a tensor or ``Edited`` of the same
    shape), ``fn`` maps the whole batch through the callable ``value``. ``key`` identifies
    the edit, so one computation makes it once however many passes read it.
    """

    base: Any
    kind: Literal["patch", "replace", "fn"]
    window: Window | None
    value: Any
    key: str = ""


@dataclass(frozen=True)
class PathSpec:
    """An integration path: ``steps`` points from ``baseline`` to the input, by ``rule``.

    ``baseline_key`` identifies the baseline (a number's repr, or a tensor's fingerprint).
    With a ``window``, the path runs only inside it: outside, the start is the end point
    (the input, or its activation), so those features are context with a zero difference.
    """

    steps: int
    rule: str
    baseline: Any  # float, tensor broadcastable to the inputs, or Edited
    baseline_key: str
    window: Window | None = None


@dataclass(frozen=True)
class Points:
    """A set of points the model is evaluated at.

    ``kind`` is ``"inputs"``, ``"baseline"`` (the baseline of ``path``, for layer
    activations), ``"path"`` (integration points; through ``layer``'s activations when
    given) or ``"copies"`` (perturbed copies of the inputs, or of ``layer``'s activation,
    whose removed features take ``path.baseline``; only the path's baseline and its key are
    read). A non-empty ``owner`` keeps the point set private to one request, when a
    sharing rule is switched off.
    """

    kind: Literal["inputs", "baseline", "path", "copies"]
    path: PathSpec | None = None
    layer: str | None = None
    owner: str = ""

    @property
    def key(self) -> str:
        """Equal for point sets that one forward can serve.

        Examples
        --------
        >>> p = PathSpec(8, "riemann_left", 0.0, "0.0")
        >>> Points("path", p).key == Points("path", p).key != Points("path", p, "fc").key
        True
        """
        if self.kind == "inputs":
            return f"inputs|{self.owner}"
        assert self.path is not None
        base = self.path.baseline_key
        if self.kind == "baseline":
            return f"baseline|{base}|{self.owner}"
        if self.kind == "copies":
            return f"copies|{base}|{self.layer}|{self.owner}"
        window = self.path.window
        return f"path|{self.path.steps}|{self.path.rule}|{base}|{window}|{self.layer}|{self.owner}"

    @property
    def steps(self) -> int:
        """Rows evaluated per input sample."""
        return self.path.steps if self.kind == "path" and self.path is not None else 1


@dataclass(frozen=True)
class PlayerSpec:
    """The players of a perturbation, in plain data; the kernels lay them on the perturbed
    tensor's shape (``kernels/run_copies.py``).

    ``kind`` is ``"default"`` (an 8 x 8 grid over 4-D tensors, every feature otherwise),
    ``"grid"`` (``args`` rows, cols), ``"patches"`` (``args`` the size) or ``"mask"`` (the
    integer tensor ``mask``, identified by ``mask_key``). With a ``window`` the players lie
    inside it only.

    Examples
    --------
    >>> PlayerSpec("grid", (4, 4), window=(0, 8, 0, 8)).key
    'grid(4, 4)|window(0, 8, 0, 8)'
    """

    kind: Literal["default", "grid", "patches", "mask"]
    args: tuple[int, ...] = ()
    mask: Any = None
    mask_key: str = ""
    window: Window | None = None

    @property
    def key(self) -> str:
        """Equal for specs that give the same players."""
        if self.kind == "mask":
            what = f"mask:{self.mask_key}"
        else:
            what = f"{self.kind}({', '.join(map(str, self.args))})"
        return f"{what}|window{self.window}"


@dataclass(frozen=True)
class DesignSpec:
    """One perturbation method's copies: the method, its players and its parameters.

    ``samples`` (permutations, drawn coalitions, or ``"exact"``), ``seed`` (``None``: drawn
    from torch's global generator when the design is built), ``antithetic``,
    ``kernel_width`` (LIME), ``size`` and ``stride`` (occlusion's sliding window).

    Examples
    --------
    >>> a = DesignSpec("shapley", PlayerSpec("default"), samples=4, seed=0)
    >>> a.key == DesignSpec("shapley", PlayerSpec("default"), samples=4, seed=0).key
    True
    """

    method: str
    players: PlayerSpec
    samples: int | str | None = None
    seed: int | None = None
    antithetic: bool = False
    kernel_width: float | None = None
    size: int | tuple[int, ...] | None = None
    stride: int | tuple[int, ...] | None = None

    @property
    def key(self) -> str:
        """Equal for designs that draw the same coalitions."""
        return (
            f"{self.method}|{self.players.key}|{self.samples}|{self.seed}|{self.antithetic}|"
            f"{self.kernel_width}|{self.size}|{self.stride}"
        )


@dataclass(frozen=True)
class Perturbation:
    """A design's attributions of ``target``: the copies group's counterpart of a request."""

    key: str
    design: DesignSpec
    target: TargetSpec


@dataclass(frozen=True)
class Request:
    """Gradients of ``target`` with respect to the input (``wrt=None``) or a layer's output."""

    key: str
    target: TargetSpec
    wrt: str | None = None


@dataclass(frozen=True)
class Output:
    """How one expression's result is assembled from its request's gradients.

    ``gradient`` (saliency; ``absolute`` takes ``abs``), ``times_input`` (times the input or
    activation), ``grad_cam`` (channel weights from the spatial mean of the layer gradient;
    ``relu`` and ``upsample`` to the input's resolution) or ``integrated`` (path-integrated
    gradient times ``end - start``). With a ``window``, values outside it are zero.
    """

    key: str
    request: str
    kind: OutputKind
    layer: str | None = None
    absolute: bool = False
    relu: bool = False
    upsample: bool = False
    window: Window | None = None


@dataclass(frozen=True)
class Group:
    """One point set and the requests differentiated there.

    ``capture`` lists layers whose activations this pass keeps for later use (path ends,
    times-activation, GradCAM). ``fuse_targets`` runs one batched backward over all
    targets and layers; otherwise one backward per request and target. A copies group holds
    ``perturbations`` instead of requests: every design's copies go through one stream.
    """

    points: Points
    requests: tuple[Request, ...] = ()
    capture: tuple[str, ...] = ()
    fuse_targets: bool = True
    perturbations: tuple[Perturbation, ...] = ()

    @property
    def grad(self) -> bool:
        """Whether this pass records a graph to differentiate."""
        return bool(self.requests)

    @property
    def wrt(self) -> tuple[str | None, ...]:
        """The tensors differentiated: ``None`` for the input, else layer names."""
        return tuple(dict.fromkeys(r.wrt for r in self.requests))


@dataclass(frozen=True)
class ExecConfig:
    """Executor settings, resolved from ``ia.options`` by the caller.

    ``memory_budget`` is in bytes (``None``: derived from free device memory); ``chunk``
    switches chunking off entirely.
    """

    chunk: bool = True
    memory_budget: int | None = None
    precision: str = "fp32"
    compile: bool = False


@dataclass(frozen=True)
class Job:
    """All groups on one model and one batch of inputs; ``groups[0]`` is the inputs.

    ``outputs`` is the number of model outputs the caller expects (from class names),
    checked after the first forward pass so a mismatch fails before the expensive passes.
    ``inputs`` is a tensor or an :class:`Edited` (made into a tensor before execution).
    ``reference`` is a module whose outputs resolve data-dependent targets (``pred``,
    ``topk``) and the logits reported, in place of ``module``'s own: the left model of a
    disagreement ``f - g``.
    """

    module: Any
    inputs: Any
    labels: Any = None
    groups: tuple[Group, ...] = ()
    results: tuple[Output, ...] = ()
    outputs: int | None = None
    config: ExecConfig = field(default_factory=ExecConfig)
    reference: Any = None

    def request(self, key: str) -> tuple[Group, Request]:
        """The group and request with ``key``.

        Examples
        --------
        >>> job = Job(None, None, groups=(Group(Points("inputs"), (Request("r", TargetSpec("pred")),)),))
        >>> job.request("r")[1].target.kind
        'pred'
        """
        for group in self.groups:
            for req in group.requests:
                if req.key == key:
                    return group, req
        raise KeyError(key)


@dataclass(frozen=True)
class Passes:
    """How one group runs: ``rows`` evaluated (samples x steps; one row for a shared
    baseline) in ``chunks`` of up to ``per_chunk`` rows; ``targets`` of its fused backward
    (``None`` when they depend on a number of classes not known yet) taken
    ``targets_per_backward`` at a time.

    A copies group also gives the ``copies`` its designs ask for, the ``unique`` ones
    evaluated (``rows`` is ``unique`` x samples, ``chunks`` its forward batches) and each
    design's ``(method, players, copies)`` in ``designs``; ``known`` is ``False`` when a
    layer's shape is not measured yet, so nothing could be counted."""

    rows: int
    per_chunk: int
    chunks: int
    targets: int | None
    targets_per_backward: int
    needed: int | None = None  # bytes needed when even one row cannot fit the budget
    copies: int = 0
    unique: int = 0
    designs: tuple[tuple[str, int, int], ...] = ()
    known: bool = True
