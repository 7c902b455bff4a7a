"""Attributions to labelled device frames: plan them, run the frozen jobs, label the outputs.

Phase one of a computation runs the attributions its roots read; phase two
(:mod:`algebra.runtime.metrics`) runs the re-attributions a sensitivity metric needs
through the same function, so they are planned and fused like any other.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import OptimizerOptions
from ..ir.attribution import Attribution
from ..kernels.edits import materialize_job
from ..kernels.execute import execute
from ..kernels.frame import Frame
from ..kernels.plan import ExecConfig
from ..optimizer import optimize
from ..results.frames import to_frame


def attribution_frames(
    leaves: list[Attribution],
    rules: OptimizerOptions,
    made: dict[str, Any],
    config: ExecConfig | None = None,
) -> dict[str, Frame]:
    """The frame of every attribution in ``leaves``, by token (still on the device).

    ``made`` holds the what-if edits already made in this computation, so each is made once;
    ``config`` overrides the executor settings the optimizer takes from ``ia.options`` (the
    dask executor gives each chunk its share of the memory budget this way).

    Examples
    --------
    >>> import torch, algebra as ia
    >>> from algebra.optimizer import flags
    >>> q = ia.model(torch.nn.Linear(4, 3).eval()).on(torch.rand(2, 4))
    >>> node = q.saliency(0).node
    >>> attribution_frames([node], flags(), {})[node.token].dims
    ('sample', 'feature')
    """
    frames: dict[str, Frame] = {}
    for planned in optimize(leaves, rules).fused:
        job = planned.job if config is None else replace(planned.job, config=config)
        out = execute(materialize_job(job, made))
        for output in planned.job.results:
            node = planned.nodes[output.key]
            frames[output.key] = to_frame(node, out.tasks[output.key], out.logits)
    return frames
