"""Copies groups: every perturbation design of a job in one deduplicated forward stream.

A copies group holds the perturbations of one job that share a fill (the baseline): their
designs are laid over the shape of what is perturbed (the inputs, or a layer's activation
captured by the inputs' pass), deduplicated, and evaluated by
:func:`~algebra.kernels.perturb.evaluate` in batches under the memory budget. Targets
resolve from the inputs' logits, so every target of a design is read off the same logits:
``target="all"`` costs the forwards of one class. Each perturbation's per-player values
are spread back to full resolution, with the player map kept beside them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from .capture import replaced
from .coalitions import (
    Design,
    ablation_design,
    kernel_shap_design,
    lime_design,
    permutation_design,
    shapley_design,
)
from .dedup import deduplicate
from .design_specs import DesignSpec, PlayerSpec
from .estimators import attribute, scores
from .guard import device_of
from .memory import known_profile
from .occlusion import occlusion_design
from .perturb import Forward, count_batches, evaluate
from .plan import Group, Job, Passes, TargetSpec
from .players import Players, default_players, grid, patches, player_mask, spread, within
from .probes import site_shape
from .targets import class_rows, scalar_outputs


def players_of(spec: PlayerSpec, shape: tuple[int, ...]) -> Players:
    """The players ``spec`` describes, over a tensor of ``shape`` ``[N, ...]``.

    Examples
    --------
    >>> players_of(PlayerSpec("grid", (2, 2), window=(0, 4, 0, 4)), (1, 3, 8, 8)).count
    4
    >>> players_of(PlayerSpec("default"), (2, 6)).count
    6
    """
    window = spec.window
    if spec.kind == "grid":
        return grid(shape, spec.args[0], spec.args[1], window)
    if spec.kind == "patches":
        return patches(shape, spec.args[0], window)
    if spec.kind == "mask":
        players = player_mask(spec.mask, shape)
    elif len(shape) == 4:  # the default over images: an 8 x 8 grid of the region
        r0, r1, c0, c1 = window or (0, shape[-2], 0, shape[-1])
        return grid(shape, min(8, r1 - r0), min(8, c1 - c0), window)
    else:
        players = default_players(shape)
    return players if window is None else within(players, window, shape)


def _occlusion(spec: DesignSpec, shape: tuple[int, ...]) -> Design:
    # Windows slide over the projection window only; features outside are no player.
    assert spec.size is not None
    window = spec.players.window
    if window is None:
        return occlusion_design(shape, spec.size, spec.stride)
    r0, r1, c0, c1 = window
    inner = occlusion_design((*shape[:-2], r1 - r0, c1 - c0), spec.size, spec.stride)
    ids = torch.full((1, *shape[1:]), -1, dtype=torch.long)
    ids[..., r0:r1, c0:c1] = inner.players.ids
    return replace(inner, players=Players(ids, inner.players.count))


_DESIGNS: dict[str, Any] = {
    "shapley": lambda s, p, n: shapley_design(p, s.samples, s.seed, s.antithetic),
    "kernel_shap": lambda s, p, n: kernel_shap_design(p, s.samples, s.seed),
    "lime": lambda s, p, n: lime_design(p, s.samples, s.seed, s.kernel_width or 1.0),
    "feature_ablation": lambda s, p, n: ablation_design(p),
    "feature_permutation": lambda s, p, n: permutation_design(p, n, s.seed),
}


def design_of(spec: DesignSpec, shape: tuple[int, ...]) -> Design:
    """The coalition design ``spec`` describes, over a tensor of ``shape``, on the CPU.

    Examples
    --------
    >>> spec = DesignSpec("feature_ablation", PlayerSpec("grid", (2, 2)))
    >>> design_of(spec, (3, 1, 4, 4)).keep.shape
    torch.Size([5, 4])
    """
    if spec.method == "occlusion":
        return _occlusion(spec, shape)
    players = players_of(spec.players, shape)
    return _DESIGNS[spec.method](spec, players, shape[0])


def designs_of(group: Group, shape: tuple[int, ...]) -> tuple[list[Design], dict[str, int]]:
    """The group's designs, each once, and the design of each perturbation (by key).

    Examples
    --------
    >>> from algebra.kernels.plan import PathSpec, Perturbation, Points
    >>> spec = DesignSpec("feature_ablation", PlayerSpec("default"))
    >>> ps = tuple(Perturbation(f"p{t}", spec, TargetSpec("index", t)) for t in range(3))
    >>> group = Group(Points("copies", PathSpec(1, "copies", 0.0, "0.0")), perturbations=ps)
    >>> designs, which = designs_of(group, (2, 5))
    >>> len(designs), which
    (1, {'p0': 0, 'p1': 0, 'p2': 0})
    """
    keys: dict[str, int] = {}
    designs: list[Design] = []
    which = {}
    for p in group.perturbations:
        if p.design.key not in keys:
            keys[p.design.key] = len(designs)
            designs.append(design_of(p.design, shape))
        which[p.key] = keys[p.design.key]
    return designs, which


def run_copies(module: torch.nn.Module, job: Job, group: Group, state: Any) -> None:
    """Run one copies group and leave each perturbation's result in ``state.perturbed``.

    ``state`` is the executor's: the inputs ``x``, their ``logits`` and ``labels``, the
    ``budget``, and the activations (``acts``, ``baselines``) a layer's copies start from.
    A result is ``(values [T, N, ...], classes [T, N] or None, player map)``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from algebra.kernels.plan import PathSpec, Perturbation, Points
    >>> net = torch.nn.Linear(3, 2).eval()
    >>> x = torch.ones(2, 3)
    >>> spec = DesignSpec("feature_ablation", PlayerSpec("default"))
    >>> group = Group(Points("copies", PathSpec(1, "copies", 0.0, "0.0")),
    ...               perturbations=(Perturbation("p", spec, TargetSpec("index", 1)),))
    >>> state = SimpleNamespace(x=x, logits=net(x).detach(), labels=None, budget=None,
    ...                         acts={}, baselines={}, perturbed={})
    >>> run_copies(net, Job(net, x), group, state)
    >>> values, classes, ids = state.perturbed["p"]
    >>> torch.allclose(values[0], net.weight[1].detach().expand(2, 3))
    True
    """
    points = group.points
    assert points.path is not None and state.logits is not None
    layer = points.layer
    if layer is None:
        target, fill = state.x, points.path.baseline
        forward: Forward | None = None
    else:
        target = state.acts[layer]
        fill = state.baselines[(points.path.baseline_key, layer)]
        forward = layer_forward(module, layer, state.x)
    shape = tuple(target.shape)
    designs, which = designs_of(group, shape)
    out = evaluate(
        module, target, designs, fill, state.budget, forward=forward, sizing=_sizing(state.x, layer)
    )
    for p in group.perturbations:
        d = which[p.key]
        design, index = designs[d], out.index[d]
        rows = class_rows(p.target, state.logits, state.labels)
        s = _scores(out.logits, index, p.target, rows)
        values = attribute(design, s, target, fill)
        ids = design.players.ids
        player_map = ids.expand(ids.shape[0], *shape[1:])
        state.perturbed[p.key] = (spread(values, design.players, shape), rows, player_map)


def layer_forward(module: torch.nn.Module, layer: str, x: torch.Tensor) -> Forward:
    """A batch of copies of ``layer``'s activation -> the model's logits.

    The model runs on the matching input rows, repeated once per copy, with the layer's
    output replaced by the copies (the hook is removed after each batch).

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU()).eval()
    >>> run = layer_forward(net, "0", torch.ones(4, 2))
    >>> run(-torch.ones(6, 3), (1, 3), 3).shape
    torch.Size([6, 3])
    """

    def forward(flat: torch.Tensor, samples: tuple[int, int], copies: int) -> torch.Tensor:
        n0, n1 = samples
        inputs = x[n0:n1].repeat(copies, *([1] * (x.ndim - 1)))
        with replaced(module, layer, flat):
            return module(inputs)

    return forward


def copies_passes(job: Job, group: Group, budget: int | None) -> Passes:
    """How a copies group will run: its copies, unique copies and forward batches.

    Builds the designs as the executor will (a design without a seed draws from torch's
    global generator, which is left as it was). A layer's copies are counted once its
    shape is measured (after the model's first forward on these inputs).

    Examples
    --------
    >>> from algebra.kernels.plan import PathSpec, Perturbation, Points
    >>> net = torch.nn.Linear(3, 2).eval()
    >>> spec = DesignSpec("shapley", PlayerSpec("default"), samples="exact")
    >>> group = Group(Points("copies", PathSpec(1, "copies", 0.0, "0.0")),
    ...               perturbations=(Perturbation("p", spec, TargetSpec("all")),))
    >>> p = copies_passes(Job(net, torch.ones(4, 3)), group, None)
    >>> p.copies, p.unique, p.rows, p.chunks
    (8, 8, 32, 1)
    """
    x = job.inputs
    n = x.shape[0]
    device = device_of(job.module, default=x.device)
    layer = group.points.layer
    if layer is None:
        shape = tuple(x.shape)
    else:
        profile = known_profile(job.module, x[:1].to(device))
        if profile is None:
            return Passes(0, 0, 0, None, 0, known=False)
        # A module's output by its name; one call, element or input from its probe.
        measured = profile.shapes.get(layer) or site_shape(job.module, x, layer)
        if measured is None:
            return Passes(0, 0, 0, None, 0, known=False)
        shape = (n, *measured)
    with torch.random.fork_rng(devices=[]):
        designs, _ = designs_of(group, shape)
    unique = deduplicate(designs, shape)
    copied = torch.empty(shape, dtype=x.dtype, device="meta")
    sizing = _sizing(x[:1].to(device), layer)
    if sizing is None:
        batches = count_batches(job.module, x[:1].to(device).expand(shape), unique.count, budget)
    else:
        batches = count_batches(job.module, copied, unique.count, budget, sizing=sizing)
    described = tuple((d.method, d.players.count, d.keep.shape[0]) for d in designs)
    per_batch = -(-unique.count * n // max(batches, 1))
    return Passes(
        unique.count * n,
        per_batch,
        batches,
        None,
        0,
        copies=unique.copies,
        unique=unique.count,
        designs=described,
    )


def _sizing(x: torch.Tensor, layer: str | None) -> torch.Tensor | None:
    return None if layer is None else x


def _scores(
    logits: torch.Tensor, index: torch.Tensor, target: TargetSpec, rows: torch.Tensor | None
) -> torch.Tensor:
    if rows is not None:
        return scores(logits, index, rows)
    # A callable target maps each copy's logits to one score.
    picked = logits[:, index.to(logits.device)]
    n, k, c = picked.shape
    return scalar_outputs(target, picked.reshape(n * k, c)).reshape(1, n, k)
