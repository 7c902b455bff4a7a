"""``explain()``'s text: the plan at each optimizer stage, with pass counts and batch sizes."""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.format import describe
from ..kernels.plan import Group, Passes, Points, TargetSpec
from .plan import Plan
from .point_text import family_points


@dataclass(frozen=True)
class JobSizes:
    """A job's memory budget (bytes, ``None`` when chunking is off), its groups' passes as
    the kernels describe them, and whether they rest on measured activation sizes (else on
    a conservative guess)."""

    budget: int | None
    passes: list[Passes]
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
    family = family_points(points, n)
    if family is not None:
        what = family
    elif points.kind == "inputs":
        what = "inputs"
    elif points.kind == "copies":
        assert points.path is not None
        through = f" of layer {points.layer!r}" if points.layer else ""
        what = f"copies{through}, baseline {_baseline(points.path.baseline_key)}"
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
    if spec.kind in ("unit", "units"):
        count = spec.value[2]
        return f"{count} unit{'s' if count != 1 else ''} of {spec.value[0]!r}"
    if spec.kind == "topk":
        return f"topk({spec.value})"
    if spec.kind in ("index", "classes"):
        return str(list(spec.value) if isinstance(spec.value, tuple) else spec.value)
    return spec.kind


def _wrt(layer: str | None) -> str:
    return "input" if layer is None else f"layer {layer!r}"


class _Tally:
    """Forward and backward counts; backward counts may have a term in the unknown ``C``,
    and are a bound (``at_most``) when data-dependent targets split over several backwards
    (the executor packs the classes each sample needs, which can be fewer)."""

    def __init__(self) -> None:
        self.forwards = self.rows = self.backwards = self.per_class = 0
        self.at_most = False

    def text(self, estimated: bool) -> str:
        f, b = self.forwards, self.backwards
        per_class = f"{self.per_class if self.per_class != 1 else ''}C"
        back = f"{b}" if not self.per_class else (f"{b} + {per_class}" if b else per_class)
        back = f"at most {back}" if self.at_most else back
        plural = "s" if (b != 1 or self.per_class) else ""
        tail = " (chunks estimated before measuring activations)" if estimated else ""
        return (
            f"total: {f} forward{'s' if f != 1 else ''} ({self.rows} rows), "
            f"{back} backward{plural}{tail}"
        )


def _backward_lines(
    group: Group, passes: Passes, classes: int | None, tally: _Tally, repeat: int
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
    if group.fuse_targets and passes.sequential and passes.targets != 1:
        # after the shared forward, one backward per target (kernels.backward_strategy)
        count = passes.targets
        shown = "C" if count is None else str(count)
        lines.append(f"    {shown} backwards, one per target after the shared forward: wrt {wrt}")
        if passes.backwards is None:
            tally.per_class += repeat
        else:
            tally.backwards += repeat * passes.backwards
        return lines
    if group.fuse_targets:
        count, per_backward = passes.targets, passes.targets_per_backward
        shown = "C" if count is None else str(count)
        upto = "up to " if len(classed) > 1 else ""
        noun = "target" if shown == "1" else "targets"
        kind = "batched backward" if shown != "1" or upto else "backward"
        splits = -(-count // per_backward) if count and per_backward else 1
        sources = passes.sources  # the logits, and each layer's units: a backward each
        several = f"{sources} {kind}s (one per source of scores)" if sources > 1 else f"1 {kind}"
        lines.append(f"    {several}: {upto}{shown} {noun} wrt {wrt}")
        calls = passes.backwards if passes.backwards is not None else splits * sources
        tally.backwards += repeat * calls
        tally.at_most |= bool(upto) and calls > sources
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


def _copies(count: int) -> str:
    return f"{count} cop{'ies' if count != 1 else 'y'}"


def _stream_rows(passes: Passes) -> str:
    return _n(passes.rows, "row") if passes.known else "rows known after a first forward"


def _wants(group: Group) -> str:
    """What a copies group's perturbations read: each method and its target."""
    seen = dict.fromkeys(f"{p.design.method} of {_target(p.target)}" for p in group.perturbations)
    return "; ".join(seen)


def _copies_lines(group: Group, passes: Passes, n: int, tally: _Tally, chunk: bool) -> list[str]:
    """The stream of a copies group: its designs, copies, what was shared, its batches."""
    head = f"  forward {_points(group.points, n)}"
    if not passes.known:
        return [
            f"{head} (no gradients; the layer's shape, so its copies, are known after the "
            "model's first forward on these inputs)"
        ]
    batches = passes.chunks if chunk else 1
    shared = passes.copies - passes.unique
    lines = [
        f"{head} ({_n(passes.rows, 'row')}; no gradients): {_n(len(passes.designs), 'design')}, "
        f"{_copies(passes.copies)}, {passes.unique} unique ({shared} shared), "
        f"{batches} batch{'es' if batches != 1 else ''}"
    ]
    for method, players, copies in passes.designs:
        over = f"{copies - 1} windows" if method == "occlusion" else f"over {players} players"
        lines.append(f"    {method} {over}: {_copies(copies)}")
    targets = dict.fromkeys(_target(p.target) for p in group.perturbations)
    lines.append(f"    targets {', '.join(targets)}: read from the same logits, no extra forward")
    tally.forwards += batches
    tally.rows += passes.rows
    return lines


def explain_text(plan: Plan, sizes: list[JobSizes]) -> str:
    """The plan at every stage, as text; ``sizes[j]`` describes fused job ``j``'s passes.

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
    rules, nodes, planned = plan.rules, plan.logical, plan.fused
    unique = len(plan.simplified.items)
    head = (
        f"plan: {unique} expression{'s' if unique != 1 else ''} on {len(planned)} "
        f"batch{'es' if len(planned) != 1 else ''} of inputs"
    )
    optimized = any(vars(rules).values())
    lines = [head + ("" if optimized else " (unoptimized)")]
    lines.append(f"logical: {len(nodes)} expression{'s' if len(nodes) != 1 else ''}")
    lines += [f"  {describe(node)}" for node in nodes]
    requests, designs = plan.simplified.requests, plan.simplified.designs
    if rules.simplify:
        lines.append(
            f"simplified: {unique} unique expression{'s' if unique != 1 else ''}, "
            f"{requests} gradient request{'s' if requests != 1 else ''}"
            + (f", {_n(designs, 'perturbation design')}" if designs else "")
        )
    else:
        lines.append("simplified: off")
    tally = _Tally()
    fused_lines: list[str] = []
    chunk_lines: list[str] = []
    over: list[str] = []
    unknown = False
    for entry, size in zip(planned, sizes, strict=True):
        source, job = entry.source, entry.job
        n = source.n
        edited = " (edited)" if entry.edited else ""
        if job.noise is not None:  # every point set is built on the noisy copies
            copies = job.noise.noise.shape[0] if job.noise.noise is not None else job.noise.samples
            edited += f" with {copies} noisy copies ({copies} x {n} rows)"
            n *= copies
        lines.append(
            f"physical: model {source.model.name!r} on inputs {list(source.shape)}{edited}: "
            f"{len(job.groups)} point set{'s' if len(job.groups) != 1 else ''}"
        )
        if job.reference is not None:  # the left model's outputs resolve 'pred' and 'topk'
            fused_lines.append(
                f"  forward reference model (left) on inputs ({_n(n, 'row')}; no gradients)"
            )
            tally.forwards += 1
            tally.rows += n
        for group, passes in zip(job.groups, size.passes, strict=True):
            rows = passes.rows
            if group.points.kind == "copies":
                lines.append(
                    f"  {_points(group.points, n)} ({_stream_rows(passes)}): " + _wants(group)
                )
                fused_lines += _copies_lines(group, passes, n, tally, rules.chunk)
                if rules.chunk and passes.chunks > 1:
                    chunk_lines.append(
                        f"  {_points(group.points, n)}: {passes.chunks} batches of up to "
                        f"{_n(passes.per_chunk, 'row')}"
                    )
                continue
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
            if group.points.layer and group.points.kind == "path":
                notes.append(f"replace {group.points.layer!r} by the path points")
            starts = rows - group.points.steps * n if group.points.kind == "path" else 0
            if starts > 0:
                notes.append(f"{_n(starts, 'start row')} for the delta")
            repeat = passes.chunks if rules.chunk else 1
            for what, count, chunks in passes.extra:  # gradient-free forwards the set needs
                fused_lines.append(f"  forward {what} ({_n(count, 'row')}; no gradients)")
                tally.forwards += chunks if rules.chunk else 1
                tally.rows += count
            fused_lines.append(
                f"  forward {_points(group.points, n)} ({_n(rows, 'row')}; {'; '.join(notes)})"
            )
            if group.grad:
                fused_lines += _backward_lines(group, passes, size.classes, tally, repeat)
            tally.forwards += repeat
            tally.rows += rows
            if rules.chunk and passes.chunks > 1:
                per_back = (
                    f", {_n(passes.targets_per_backward, 'target')} per backward"
                    if group.grad and passes.targets_per_backward < (passes.targets or 0)
                    else ""
                )
                chunk_lines.append(
                    f"  {_points(group.points, n)}: {passes.chunks} chunks of up to "
                    f"{_n(passes.per_chunk, 'row')}{per_back}"
                )
        if not size.measured and any(p.chunks > 1 for p in size.passes):
            unknown = True
        for group, passes in zip(job.groups, size.passes, strict=True):
            # Before measuring, sizes are a conservative guess: only measured ones can say
            # that a pass cannot fit (the compute warns either way).
            if passes.needed is not None and size.budget is not None and size.measured:
                over.append(
                    f"  over budget: {_points(group.points, n)} needs about "
                    f"{_bytes(passes.needed)} at one row a chunk; it runs, using more memory"
                )
    lines.append("fused:" if rules.fuse_targets or rules.share_forward else "fused: off")
    lines += fused_lines
    if not rules.chunk:
        lines.append("chunked: off")
    elif chunk_lines or over:
        budget = max(s.budget or 0 for s in sizes)
        lines.append(f"chunked: memory budget {_bytes(budget)}")
        lines += chunk_lines + over
    else:
        lines.append("chunked: every pass fits the memory budget in one chunk")
    lines.append(tally.text(estimated=unknown))
    return "\n".join(lines)
