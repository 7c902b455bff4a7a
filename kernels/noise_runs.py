"""A job on noisy copies: every group runs on ``S * N`` rows while targets resolve at the inputs.

The noisy copies (noise-major, row ``s * N + n``) replace the job's inputs, so every
method on them shares each point set's forward and batched backward; per-sample targets,
labels and per-sample baselines are tiled to the ``S * N`` rows. One gradient-free
forward of the clean inputs gives the logits that resolve ``pred`` and ``topk`` (each
copy explains its sample's prediction, as SmoothGrad does) and label the samples.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .chunks import sample_chunks
from .noise import check_samples, noisy_copies
from .plan import Group, Job, TargetSpec
from .point_specs import NoiseSpec


def samples_of(spec: NoiseSpec) -> int:
    """The number of noisy copies: the given draws' first dim, else ``spec.samples``.

    Examples
    --------
    >>> samples_of(NoiseSpec(8, 0.1)), samples_of(NoiseSpec(8, 0.1, noise=torch.zeros(3, 2)))
    (8, 3)
    """
    return spec.noise.shape[0] if spec.noise is not None else spec.samples


def check_noise(noise: Any, x: torch.Tensor) -> torch.Tensor:
    """Given noise draws: a finite tensor ``[S, N, ...]`` or ``[S, ...]`` for inputs ``x``.

    Examples
    --------
    >>> check_noise(torch.zeros(4, 2, 3), torch.ones(2, 3)).shape
    torch.Size([4, 2, 3])
    >>> check_noise(torch.zeros(4, 5), torch.ones(2, 3))
    Traceback (most recent call last):
    ValueError: noise: expected a tensor of shape [S, 2, 3] (or [S, 3]); got [4, 5]
    """
    shape = ", ".join(str(d) for d in x.shape)
    per_sample = ", ".join(str(d) for d in x.shape[1:])
    ok = isinstance(noise, torch.Tensor) and tuple(noise.shape[1:]) in (
        tuple(x.shape),
        tuple(x.shape[1:]),
    )
    if not ok:
        got = list(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise ValueError(
            f"noise: expected a tensor of shape [S, {shape}] (or [S, {per_sample}]); got {got}"
        )
    check_samples(noise.shape[0], "noise")
    if not noise.is_floating_point() or not bool(torch.isfinite(noise).all()):
        raise ValueError("noise: expected finite floating-point values")
    return noise


def tiled_target(target: TargetSpec, samples: int) -> TargetSpec:
    """A per-sample target repeated for every noisy copy (others are unchanged).

    Examples
    --------
    >>> tiled_target(TargetSpec("per_sample", (1, 0)), 2).value
    (1, 0, 1, 0)
    """
    if target.kind != "per_sample":
        return target
    return TargetSpec("per_sample", tuple(target.value) * samples)


def _tiled_group(group: Group, x: torch.Tensor, samples: int) -> Group:
    requests = tuple(replace(r, target=tiled_target(r.target, samples)) for r in group.requests)
    points = group.points
    path = points.path
    base = None if path is None else path.baseline
    several = points.kind == "paired" and bool(points.spec.baselines)  # B, not one per sample
    n = x.shape[0]
    per_sample = isinstance(base, torch.Tensor) and base.ndim == x.ndim and base.shape[0] == n
    if per_sample and not several and n > 1:
        tiled = base.repeat(samples, *([1] * (base.ndim - 1)))
        points = replace(points, path=replace(path, baseline=tiled))
    return replace(group, points=points, requests=requests)


def noised(
    job: Job, x: torch.Tensor, labels: torch.Tensor | None
) -> tuple[Job, torch.Tensor, torch.Tensor | None]:
    """The job over noisy copies of ``x`` (on its device): its per-sample targets and
    baselines tiled, the copies ``[S * N, ...]`` and the labels tiled.

    Examples
    --------
    >>> job = Job(None, None, noise=NoiseSpec(3, 1.0, relative=False, seed=0))
    >>> _, copies, labels = noised(job, torch.zeros(2, 4), torch.tensor([0, 1]))
    >>> tuple(copies.shape), labels.tolist()
    ((6, 4), [0, 1, 0, 1, 0, 1])
    """
    spec: NoiseSpec = job.noise
    samples = samples_of(spec)
    copies = noisy_copies(x, spec.samples, spec.stdev, spec.relative, spec.seed, spec.noise)
    groups = tuple(_tiled_group(g, x, samples) for g in job.groups)
    tiled = None if labels is None else labels.repeat(samples)
    return replace(job, groups=groups), copies.flatten(0, 1), tiled


def clean_logits(job: Job, clean: torch.Tensor, per_chunk: int, forward: Any) -> torch.Tensor:
    """Logits ``[N, C]`` of the clean inputs (of ``job.reference`` when set), without
    gradients, in chunks of ``per_chunk`` rows.

    Examples
    --------
    >>> net = torch.nn.Linear(3, 2)
    >>> clean_logits(Job(net, None), torch.ones(5, 3), 2, lambda m, x: m(x)).shape
    torch.Size([5, 2])
    """
    model = job.reference if job.reference is not None else job.module
    parts = []
    with torch.no_grad():
        for n0, n1 in sample_chunks(clean.shape[0], per_chunk):
            parts.append(forward(model, clean[n0:n1]))
    logits = torch.cat(parts)
    if job.outputs is not None and logits.shape[1] != job.outputs:
        raise ValueError(
            f"classes: {job.outputs} class names were given, but the model has "
            f"{logits.shape[1]} outputs"
        )
    return logits


def rows_view(job: Job) -> Any:
    """The job's inputs as the groups see them: a stand-in ``[S * N, ...]`` (no copy) for
    a job on noisy copies, else the inputs themselves.

    Examples
    --------
    >>> rows_view(Job(None, torch.ones(2, 3), noise=NoiseSpec(4, 0.1))).shape
    torch.Size([8, 3])
    """
    if job.noise is None:
        return job.inputs
    x = job.inputs
    return x[:1].expand(x.shape[0] * samples_of(job.noise), *x.shape[1:])
