"""One forward stream for the metrics of several attribution maps of the same inputs.

Deletion and insertion curves and faithfulness correlation are coalition designs built from
the maps; infidelity adds explicit noisy copies (one set per noise, however many maps use
it). All of them, and the unperturbed input they share, go through one deduplicated
:func:`~algebra.kernels.perturb.evaluate` stream under the memory budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .coalitions import Design
from .estimators import scores
from .metrics import (
    area,
    curve_designs,
    curves,
    faithfulness_correlation,
    faithfulness_design,
    gaussian_noise,
    infidelity_values,
)
from .perturb import StreamResult, evaluate
from .players import Players, every_feature, grid


@dataclass(frozen=True)
class MetricTask:
    """One metric of one expression: ``maps`` ``[T, N, ...]`` (broadcastable to the inputs)
    explaining the classes ``targets`` ``[T, N]``, and the metric's parameters.

    ``kind`` is ``deletion``, ``insertion``, ``faithfulness_correlation`` or ``infidelity``.
    """

    key: str
    kind: str
    maps: torch.Tensor
    targets: torch.Tensor
    steps: int = 20
    samples: int = 10
    subset: int | None = None
    stdev: float = 0.1
    seed: int | None = None
    normalize: bool = False


@dataclass(frozen=True)
class MetricResult:
    """A task's values ``[T, N]`` (curves ``[T, N, steps + 1]``) and, for curves, areas."""

    values: torch.Tensor
    area: torch.Tensor | None = None


def position_players(shape: tuple[int, ...]) -> Players:
    """One player per position of an image (spanning its channels), else per feature.

    Examples
    --------
    >>> position_players((2, 3, 4, 4)).count, position_players((2, 5)).count
    (16, 5)
    """
    if len(shape) == 4:
        return grid(shape, shape[-2], shape[-1])
    return every_feature(shape)


def default_subset(count: int) -> int:
    """Players removed at once by faithfulness correlation when not given: a tenth.

    Examples
    --------
    >>> default_subset(64), default_subset(6)
    (6, 1)
    """
    return max(1, count // 10)


def run_metrics(
    module: torch.nn.Module,
    x: torch.Tensor,
    tasks: list[MetricTask],
    baseline: float | torch.Tensor = 0.0,
    budget: int | None = None,
) -> tuple[dict[str, MetricResult], StreamResult]:
    """Every task's metric from one stream of forwards over copies of ``x``.

    Removed features take ``baseline`` (deletion, insertion, faithfulness); infidelity's
    copies are ``x - I`` for Gaussian noise ``I`` drawn from its seed.

    Examples
    --------
    >>> net = torch.nn.Linear(4, 2).eval()
    >>> x = torch.rand(3, 4)
    >>> maps, targets = torch.rand(1, 3, 4), torch.zeros(1, 3, dtype=torch.long)
    >>> tasks = [MetricTask("d", "deletion", maps, targets, steps=4),
    ...          MetricTask("i", "insertion", maps, targets, steps=4)]
    >>> results, stream = run_metrics(net, x, tasks)
    >>> results["d"].values.shape, stream.copies, stream.unique  # full and empty shared
    (torch.Size([1, 3, 5]), 11, 8)
    """
    full = Design(
        "full",
        Players(torch.zeros((1, *x.shape[1:]), dtype=torch.long), 1),
        torch.ones(1, 1, dtype=torch.bool),
    )
    designs: list[Design] = [full]
    noise: dict[tuple, torch.Tensor] = {}
    where: dict[str, object] = {}
    for task in tasks:
        maps = task.maps.to(x.device)
        if task.kind in ("deletion", "insertion"):
            where[task.key] = (len(designs), maps.shape[0])
            designs += curve_designs(maps, task.steps, task.kind)
        elif task.kind == "faithfulness_correlation":
            players = position_players(tuple(x.shape))
            subset = task.subset or default_subset(players.count)
            where[task.key] = len(designs)
            designs.append(faithfulness_design(players, task.samples, subset, task.seed))
        else:
            spec = (task.samples, task.stdev, task.seed)
            if spec not in noise:
                noise[spec] = gaussian_noise(x, task.samples, task.stdev, task.seed)
            where[task.key] = list(noise).index(spec)
    out = evaluate(module, x, designs, baseline, budget, noise=list(noise.values()))
    results = {}
    for task in tasks:
        targets = task.targets.to(out.logits.device)
        if task.kind in ("deletion", "insertion"):
            start, count = where[task.key]  # type: ignore[misc]
            curve = curves(out.logits, out.index[start : start + count], targets)
            results[task.key] = MetricResult(curve, area(curve))
        elif task.kind == "faithfulness_correlation":
            d = where[task.key]
            s = scores(out.logits, out.index[d], targets)  # type: ignore[index]
            results[task.key] = MetricResult(
                faithfulness_correlation(s, designs[d], task.maps.to(s.device))  # type: ignore[index]
            )
        else:
            spec = (task.samples, task.stdev, task.seed)
            a, b = out.noisy[where[task.key]]  # type: ignore[index]
            base = scores(out.logits, out.index[0], targets)[..., 0]
            noisy = scores(out.logits, torch.arange(a, b), targets)
            maps = task.maps.to(x.device).expand(-1, *x.shape)
            values = infidelity_values(base, noisy, maps, noise[spec], task.normalize)
            results[task.key] = MetricResult(values)
    return results, out
