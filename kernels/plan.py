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

from dataclasses import dataclass, field
from typing import Any, Literal

from .design_specs import DesignSpec

TargetKind = Literal[
    "index",
    "per_sample",
    "pred",
    "label",
    "topk",
    "all",
    "classes",
    "fn",
    "unit",
    "units",
    "at",
    "generated",
]
OutputKind = Literal[
    "gradient",
    "times_input",
    "grad_cam",
    "integrated",
    "deeplift",
    "shap",
    "cam",
    "eigen_cam",
    "score_cam",
    "guided_grad_cam",
    "activation",
    "conductance",
    "perturbation",
]
# Point sets of the gradient family beyond inputs, baselines and paths (see point_specs),
# and the perturbation engine's copies.
PointsKind = Literal[
    "inputs", "baseline", "path", "paired", "shap", "masks", "conductance", "copies"
]


@dataclass(frozen=True)
class TargetSpec:
    """Which output scalar(s) to differentiate: a kind and its value."""

    kind: TargetKind
    value: Any = None

    def count(self, num_classes: int | None) -> int | None:
        """Targets per sample (``None`` when it depends on an unknown number of classes).

        Units of a layer (``value = (layer, spec, count)``) count their units; classes at
        a position of sequence scores (``at``) their classes, generated tokens their steps
        (:mod:`~algebra.kernels.sequence_targets`).

        Examples
        --------
        >>> TargetSpec("topk", 3).count(None), TargetSpec("all").count(10)
        (3, 10)
        >>> TargetSpec("units", ("b3", "all", 32)).count(10), TargetSpec("at", (0, (4, 5), 8, 9)).count(None)
        (32, 2)
        """
        if self.kind == "units":
            return int(self.value[2])
        if self.kind == "at":  # one class (an int) or several
            return len(self.value[1]) if isinstance(self.value[1], tuple) else 1
        if self.kind == "generated":
            return int(self.value[0].shape[1])  # the tokens chosen [N, steps]
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
    sharing rule is switched off. ``rule`` names the backward rule of an inputs pass
    (``guided_backprop``, ``deconvolution``). The gradient family's other point sets
    (``paired``, ``shap``, ``masks``, ``conductance``) carry a ``spec`` from
    :mod:`~algebra.kernels.point_specs`.
    """

    kind: PointsKind
    path: PathSpec | None = None
    layer: str | None = None
    owner: str = ""
    rule: str = ""
    spec: Any = None

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
            return f"inputs|{self.owner}" + (f"|{self.rule}" if self.rule else "")
        if self.spec is not None:
            path = "" if self.path is None else self.path.baseline_key
            return f"{self.kind}|{self.spec.key}|{path}|{self.layer}|{self.owner}"
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
        if self.spec is not None:
            return self.spec.rows_per_sample
        return self.path.steps if self.kind == "path" and self.path is not None else 1


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
    gradient times ``end - start``). With a ``window``, values outside it are zero. The
    gradient family's outputs (``deeplift``, ``shap``, the CAMs, ``activation``,
    ``conductance``) read their options from ``params`` (see :mod:`~algebra.kernels.assemble`).
    """

    key: str
    request: str
    kind: OutputKind
    layer: str | None = None
    absolute: bool = False
    relu: bool = False
    upsample: bool = False
    window: Window | None = None
    params: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        """The value of ``params``' entry ``name`` (``default`` without one).

        Examples
        --------
        >>> Output("o", "r", "cam", params=(("cam", "layer_cam"),)).option("cam")
        'layer_cam'
        """
        return dict(self.params).get(name, default)


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
        """Whether this pass records a graph to differentiate (Score-CAM's masks do not)."""
        return bool(self.requests) and self.points.kind != "masks"

    @property
    def wrt(self) -> tuple[str | None, ...]:
        """The tensors differentiated: ``None`` for the input, else layer names."""
        return tuple(dict.fromkeys(r.wrt for r in self.requests))


@dataclass(frozen=True)
class ExecConfig:
    """Executor settings, resolved from ``ia.options`` by the caller.

    ``memory_budget`` is in bytes (``None``: derived from free device memory); ``chunk``
    switches chunking off entirely; ``backward`` is how a fused group's targets are
    differentiated (``auto``, ``batched``, ``sequential``: see
    :mod:`~algebra.kernels.backward_strategy`).
    """

    chunk: bool = True
    memory_budget: int | None = None
    precision: str = "fp32"
    compile: bool = False
    backward: str = "auto"


@dataclass(frozen=True)
class Job:
    """All groups on one model and one batch of inputs; ``groups[0]`` is the inputs.

    ``outputs`` is the number of model outputs the caller expects (from class names),
    checked after the first forward pass so a mismatch fails before the expensive passes.
    ``inputs`` is a tensor or an :class:`Edited` (made into a tensor before execution).
    ``reference`` is a module whose outputs resolve data-dependent targets (``pred``,
    ``topk``) and the logits reported, in place of ``module``'s own: the left model of a
    disagreement ``f - g``. With ``noise``, every group runs on ``S`` noisy copies of the
    inputs (``S * N`` rows, noise-major) while targets resolve at the clean inputs.
    ``scores`` says how the scores ``[N, C]`` are read from what ``module`` returns (an
    :class:`~algebra.kernels.outputs.OutputSpec`; ``None``: a tensor, or its ``logits``).
    """

    module: Any
    inputs: Any
    labels: Any = None
    groups: tuple[Group, ...] = ()
    results: tuple[Output, ...] = ()
    outputs: int | None = None
    config: ExecConfig = field(default_factory=ExecConfig)
    reference: Any = None
    noise: Any = None  # a point_specs.NoiseSpec: every group runs on noisy copies
    scores: Any = None  # an outputs.OutputSpec

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
    ``targets_per_backward`` at a time; ``extra`` gradient-free forwards it runs first.

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
    # Gradient-free forwards the group runs first: (what, rows, chunks) each.
    extra: tuple[tuple[str, int, int], ...] = ()
    # Fused targets differentiated one backward each (kernels.backward_strategy).
    sequential: bool = False
    # Sources of scores differentiated apart: the logits, each layer's units.
    sources: int = 1
    # Backward calls per chunk for the fused targets (None: they depend on unknown classes).
    backwards: int | None = None
