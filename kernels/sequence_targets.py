"""Targets that name a position of sequence scores ``[N, L, V]``: a class at a position
(``at``), or each generated token at the position that chose it (``generated``).

A job with such targets reads the model's sequence scores flattened, ``[N, L * V]``
(:class:`~algebra.kernels.outputs.OutputSpec` with ``flatten``), so the class ``c`` at
position ``p`` is the column ``p * V + c`` and every (position, class) pair of every
target is differentiated in the same batched backward as any other classes.

``at``: ``value = (position, classes, length, vocabulary)``, the position already counted
from the start (``0..L-1``). ``generated``: ``value = (tokens, prompt, vocabulary)``,
``tokens`` ``[N, k]`` the tokens chosen at steps ``0..k-1``; step ``s`` is read at position
``prompt - 1 + s``.
"""

from __future__ import annotations

import torch

from .plan import Job, TargetSpec

SEQUENCE_KINDS = ("at", "generated")


def is_sequence(target: TargetSpec) -> bool:
    """Whether ``target`` names positions of sequence scores.

    Examples
    --------
    >>> is_sequence(TargetSpec("at", (4, (2,), 5, 10))), is_sequence(TargetSpec("pred"))
    (True, False)
    """
    return target.kind in SEQUENCE_KINDS


def sequence_rows(
    target: TargetSpec, logits: torch.Tensor, samples: slice | None = None
) -> torch.Tensor:
    """The flattened columns ``[T, N]`` the target differentiates, for the samples of
    ``logits`` (a chunk of the batch: ``samples`` says which).

    Examples
    --------
    >>> logits = torch.zeros(2, 3 * 4)                      # L = 3 positions, V = 4
    >>> sequence_rows(TargetSpec("at", (2, (1, 3), 3, 4)), logits)
    tensor([[ 9,  9],
            [11, 11]])
    >>> tokens = torch.tensor([[1, 2], [3, 0]])             # 2 steps after a prompt of 2
    >>> sequence_rows(TargetSpec("generated", (tokens, 2, 4)), logits)
    tensor([[ 5,  7],
            [10,  8]])
    """
    n, width = logits.shape
    device = logits.device
    if target.kind == "at":
        position, classes, length, vocabulary = target.value
        classes = classes if isinstance(classes, tuple) else (classes,)  # one class: an int
        flat = torch.tensor([position * vocabulary + c for c in classes], device=device)
        rows = flat[:, None].expand(len(classes), n)
    else:
        tokens, prompt, vocabulary = target.value
        tokens = tokens[samples or slice(None)].to(device)
        steps = tokens.shape[1]
        positions = torch.arange(prompt - 1, prompt - 1 + steps, device=device)
        rows = (positions[:, None] * vocabulary + tokens.T).long()
        length = prompt - 1 + steps
    if width != length * vocabulary:
        raise ValueError(
            f"target: {target.kind} targets were checked on sequence scores of {length} "
            f"positions x {vocabulary} classes, but the model gives {width} scores per sample "
            "here; its output changed shape since the query was built"
        )
    return rows.long()


def check_sequence_targets(job: Job) -> None:
    """Refuse a job that reads sequence scores flattened for targets that name no position.

    Examples
    --------
    >>> from algebra.kernels.outputs import OutputSpec
    >>> from algebra.kernels.plan import Group, Points, Request
    >>> group = Group(Points("inputs"), (Request("r", TargetSpec("pred")),))
    >>> check_sequence_targets(Job(None, None, groups=(group,), scores=OutputSpec(flatten=True)))
    Traceback (most recent call last):
    ValueError: target: the model's scores are a sequence [N, L, V] read without a position, so every target names one: ia.at(position, class); got 'pred' (or give the model a position: ia.model(module, position=-1))
    """
    if job.scores is None or not job.scores.flatten:
        return
    for group in job.groups:
        for item in (*group.requests, *group.perturbations):
            kind = item.target.kind
            if kind not in (*SEQUENCE_KINDS, "unit", "units"):
                shown = repr(kind) if kind in ("pred", "label", "all") else f"a {kind} target"
                raise ValueError(
                    "target: the model's scores are a sequence [N, L, V] read without a "
                    "position, so every target names one: ia.at(position, class); got "
                    f"{shown} (or give the model a position: ia.model(module, position=-1))"
                )
