"""Stage 3, fuse: each physical job becomes a frozen kernel :class:`~algebra.kernels.plan.Job`.

With ``share_forward`` each point set is one forward; with ``fuse_targets`` all its targets
and layers share one batched backward (otherwise one backward per request and target).
The executor settings are resolved from ``ia.options`` here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import OptimizerOptions, options
from ..ir.attribution import Attribution
from ..ir.views import Noise, Source
from ..kernels.plan import ExecConfig, Job
from ..kernels.point_specs import NoiseSpec
from .physical import PhysicalJob
from .simplify import inputs_of


@dataclass(frozen=True)
class Planned:
    """One frozen job with the attributions it computes (by token)."""

    source: Source
    job: Job
    nodes: dict[str, Attribution]
    edited: bool = False


def fuse(jobs: tuple[PhysicalJob, ...], rules: OptimizerOptions) -> tuple[Planned, ...]:
    """Freeze each physical job into the kernel job the executor runs.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags, physical, simplify
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> nodes = [q.saliency(0).node, q.input_x_gradient(1).node]
    >>> [planned] = fuse(physical(simplify(nodes, flags()), flags()), flags())
    >>> [len(g.requests) for g in planned.job.groups], planned.job.groups[0].fuse_targets
    ([2], True)
    """
    config = ExecConfig(
        rules.chunk, options.memory_budget, options.precision, options.compile, options.backward
    )
    return tuple(_freeze(job, rules, config) for job in jobs)


def _freeze(job: PhysicalJob, rules: OptimizerOptions, config: ExecConfig) -> Planned:
    model = job.source.model
    frozen = Job(
        model.torch_module,
        inputs_of(job.base),
        None if job.source.labels is None else job.source.labels.value,
        groups=tuple(replace(g, fuse_targets=rules.fuse_targets) for g in job.groups),
        results=tuple(item.output for item in job.items),
        outputs=model.num_classes,
        config=config,
        reference=None if model.reference is None else model.reference.torch_module,
        noise=None if job.noise is None else noise_spec(job.noise),
    )
    return Planned(job.source, frozen, job.nodes, edited=job.base is not job.source)


def noise_spec(noise: Noise) -> NoiseSpec:
    """The kernels' spec of a noise node (the given draws unwrapped).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> q = ia.model(torch.nn.Linear(4, 3)).on(torch.rand(2, 4)).noise(8, 0.1, seed=3)
    >>> spec = noise_spec(q.node)
    >>> spec.samples, spec.seed, spec.key == q.node.token
    (8, 3, True)
    """
    given = None if noise.noise is None else noise.noise.value
    return NoiseSpec(noise.samples, noise.stdev, noise.relative, noise.seed, given, noise.token)
