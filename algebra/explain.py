"""``explain()``'s text: the plan at each optimizer stage, with pass counts and batch sizes."""

from __future__ import annotations

from dataclasses import dataclass

from .kernels.plan import Group, Points, TargetSpec
from .operators import Attribution
from .options import OptimizerOptions
from .planner import Planned, describe


@dataclass(frozen=True)
class Cut:
    """How the kernels will chunk one group (mirrors ``kernels.sizing.Sizing``)."""

    per_chunk: int
    chunks: int
    targets_per_backward: int


@dataclass
class JobSizes:
    """A job's memory budget (bytes, ``None`` when chunking is off), its groups' cuts, and
    whether they rest on measured activation sizes (else on a conservative guess)."""

    budget: int | None
    cuts: list[Cut]
    measured: bool = True
    classes: int | None = None


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _points(points: Points, n: int) -> str:
    if points.kind == "inputs":
        what = "inputs"
    elif points.kind == "baseline":
        assert points.path is not None
        what = f"baseline {_baseline(points.path.baseline_key)}"
    else:
        path = points.path
        assert path is not None
        through = f" through layer {points.layer!r}" if points.layer else ""
        what = f"path{through}: {path.steps} steps x {n} samples, {path.rule}"
        if path.window is not None:
            what += f", window {list(path.window)}"
    return what + (" (private)" if points.owner else "")


def _baseline(key: str) -> str:
    # Keys of other queries' inputs are node tokens; numbers and tensors show as they are.
    if key.startswith(("source-", "edit-")):
        return "other inputs" if key.startswith("source-") else "other (edited) inputs"
    return key


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _target(spec: TargetSpec) -> str:
    if spec.kind == "fn":
        return "callable"
    if spec.kind == "topk":
        return f"topk({spec.value})"
    if spec.kind in ("index", "classes"):
        return str(list(spec.value) if isinstance(spec.value, tuple) else spec.value)
    return spec.kind


def _wrt(layer: str | None) -> str:
    return "input" if layer is None else f"layer {layer!r}"


def _count(group: Group, classes: int | None) -> int | None:
    """Targets of the group's one batched backward (``None``: depends on unknown classes)."""
    counts = [r.target.count(classes) for r in group.requests if r.target.kind != "fn"]
    if any(c is None for c in counts):
        return classes
    total = sum(c for c in counts if c is not None)
    return min(total, classes) if classes else total


def _rows(group: Group, n: int, shared_baseline: bool) -> int:
    if group.points.kind == "baseline" and shared_baseline:
        return 1
    return n * group.points.steps


class _Tally:
    """Forward and backward counts; backward counts may have a term in the unknown ``C``."""

    def __init__(self) -> None:
        self.forwards = self.rows = self.backwards = self.per_class = 0

    def text(self, estimated: bool) -> str:
        f, b = self.forwards, self.backwards
        per_class = f"{self.per_class if self.per_class != 1 else ''}C"
        back = f"{b}" if not self.per_class else (f"{b} + {per_class}" if b else per_class)
        plural = "s" if (b != 1 or self.per_class) else ""
        tail = " (chunks estimated before measuring activations)" if estimated else ""
        return (
            f"total: {f} forward{'s' if f != 1 else ''} ({self.rows} rows), "
            f"{back} backward{plural}{tail}"
        )


def _backward_lines(
    group: Group, classes: int | None, tally: _Tally, repeat: int, per_backward: int = 0
) -> list[str]:
    lines = []
    classed = [r for r in group.requests if r.target.kind != "fn"]
    for req in group.requests:
        if req.target.kind == "fn":
            lines.append(f"    1 backward: callable {req.target.value.__class__.__name__} target")
            tally.backwards += repeat
    if not classed:
        return lines
    wrt = ", ".join(_wrt(w) for w in dict.fromkeys(r.wrt for r in classed))
    if group.fuse_targets:
        count = _count(group, classes)
        shown = "C" if count is None else str(count)
        upto = "up to " if len(classed) > 1 else ""
        noun = "target" if shown == "1" else "targets"
        kind = "batched backward" if shown != "1" or upto else "backward"
        splits = -(-count // per_backward) if count and per_backward else 1
        lines.append(f"    1 {kind}: {upto}{shown} {noun} wrt {wrt}")
        tally.backwards += repeat * splits
        return lines
    for req in classed:
        count = req.target.count(classes)
        shown = "C" if count is None else str(count)
        lines.append(
            f"    {shown} backward{'s' if shown != '1' else ''} (one per target): "
            f"{_target(req.target)} wrt {_wrt(req.wrt)}"
        )
        if count is None:
            tally.per_class += repeat
        else:
            tally.backwards += count * repeat
    return lines


def _edited(entry: Planned) -> bool:
    from .operators import Edit, base_of

    node = next(iter(entry.nodes.values()))
    return isinstance(base_of(node.view), Edit)


def explain_text(
    nodes: list[Attribution],
    planned: list[Planned],
    sizes: list[JobSizes],
    rules: OptimizerOptions,
    shared_baselines: list[list[bool]],
) -> str:
    """The plan of ``nodes`` at every stage, as text.

    ``shared_baselines[j][g]`` says whether job ``j``'s group ``g`` evaluates one shared
    baseline row (a scalar baseline) instead of one per sample.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3).eval(), name="lin").on(torch.rand(2, 4))
    >>> print(q.saliency("all").explain(optimized=False))  # doctest: +ELLIPSIS
    plan: 1 expression on 1 batch of inputs (unoptimized)
    logical: 1 expression
      saliency(target='all', abs=True)
    simplified: off
    physical: model 'lin' on inputs [2, 4]: 2 point sets
    ...
    """
    unique = {n.token: n for n in nodes}
    head = (
        f"plan: {len(unique)} expression{'s' if len(unique) != 1 else ''} on {len(planned)} "
        f"batch{'es' if len(planned) != 1 else ''} of inputs"
    )
    optimized = any(vars(rules).values())
    lines = [head + ("" if optimized else " (unoptimized)")]
    lines.append(f"logical: {len(nodes)} expression{'s' if len(nodes) != 1 else ''}")
    lines += [f"  {describe(node)}" for node in nodes]
    requests = sum(len(g.requests) for p in planned for g in p.job.groups)
    if rules.simplify:
        lines.append(
            f"simplified: {len(unique)} unique expression{'s' if len(unique) != 1 else ''}, "
            f"{requests} gradient request{'s' if requests != 1 else ''}"
        )
    else:
        lines.append("simplified: off")
    tally = _Tally()
    fused_lines: list[str] = []
    chunk_lines: list[str] = []
    unknown = False
    for j, entry in enumerate(planned):
        source, job = entry.source, entry.job
        model = source.wrapped_model
        n = source.n
        edited = " (edited)" if entry.nodes and _edited(entry) else ""
        lines.append(
            f"physical: model {model.name!r} on inputs {list(source.shape)}{edited}: "
            f"{len(job.groups)} point set{'s' if len(job.groups) != 1 else ''}"
        )
        cuts = sizes[j].cuts
        classes = model.num_classes or sizes[j].classes
        if job.reference is not None:  # the left model's outputs resolve 'pred' and 'topk'
            fused_lines.append(
                f"  forward reference model (left) on inputs ({_n(n, 'row')}; no gradients)"
            )
            tally.forwards += 1
            tally.rows += n
        for g, group in enumerate(job.groups):
            rows = _rows(group, n, shared_baselines[j][g])
            wants = "; ".join(f"{_target(r.target)} wrt {_wrt(r.wrt)}" for r in group.requests)
            lines.append(
                f"  {_points(group.points, n)} ({_n(rows, 'row')}){': ' + wants if wants else ''}"
            )
            notes = ["with gradients" if group.grad else "no gradients"]
            capture = [*group.capture]
            if group.points.kind != "path":
                capture += [w for w in group.wrt if w]
            if capture:
                notes.append("capture " + ", ".join(repr(c) for c in dict.fromkeys(capture)))
            if group.points.layer:
                notes.append(f"replace {group.points.layer!r} by the path points")
            cut = cuts[g] if cuts and rules.chunk else None
            repeat = cut.chunks if cut else 1
            fused_lines.append(
                f"  forward {_points(group.points, n)} ({_n(rows, 'row')}; {'; '.join(notes)})"
            )
            per_backward = cut.targets_per_backward if cut else 0
            fused_lines += _backward_lines(group, classes, tally, repeat, per_backward)
            tally.forwards += repeat
            tally.rows += rows
            if cut and cut.chunks > 1:
                per_back = (
                    f", {_n(cut.targets_per_backward, 'target')} per backward"
                    if group.grad and cut.targets_per_backward < (_count(group, classes) or 0)
                    else ""
                )
                chunk_lines.append(
                    f"  {_points(group.points, n)}: {cut.chunks} chunks of up to "
                    f"{_n(cut.per_chunk, 'row')}{per_back}"
                )
        if not sizes[j].measured and any(c.chunks > 1 for c in cuts):
            unknown = True
    lines.append("fused:" if rules.fuse_targets or rules.share_forward else "fused: off")
    lines += fused_lines
    if not rules.chunk:
        lines.append("chunked: off")
    elif chunk_lines:
        budget = max(s.budget or 0 for s in sizes)
        lines.append(f"chunked: memory budget {_bytes(budget)}")
        lines += chunk_lines
    else:
        lines.append("chunked: every pass fits the memory budget in one chunk")
    lines.append(tally.text(estimated=unknown))
    return "\n".join(lines)
