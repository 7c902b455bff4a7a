"""Perturbation workloads: ``ia.compute`` (one deduplicated forward stream) against
Captum's looped calls.

``python -m benchmarks.perturbation [--repeat R] [--samples S] [--quick] [--json PATH]``

On the benchmark CNN (3x32x32 inputs, 10 classes), 8 images and 64 players (an 8 x 8 grid
spanning channels), zero baseline. Ours is always the public API: the expressions built on
a model wrapped once, computed by ``ia.compute`` in a fresh ``ia.Session`` per call (so no
repetition reads another's memo), up to labelled xarray results.

- ``shapley_all``: ``q.shapley("all", ...)``: one stream, every class read off the same
  logits. Captum: ``ShapleyValueSampling`` once per class.
- ``three_methods``: ``shapley``, ``occlusion`` (window 3x8x8, stride 3x4x4) and
  ``feature_ablation`` of ``ia.topk(2)`` in one ``ia.compute``: one stream for the three.
  Captum: a forward for the top-2, then each method per target rank.
- ``deletion4``: ``.deletion(steps)`` of four per-pixel maps of the predicted class
  (saliency, input x gradient and integrated gradients summed over the channels, GradCAM
  of ``block3``) in one ``ia.compute``: the maps, then one stream for the four curves.
  Loop: the same maps by one ``ia.compute``, then per map and step one forward of the
  images with the top pixels removed.

Captum's ``perturbations_per_eval`` is tuned per method (the fastest of a few, timed once
on one target), and its Shapley sampler is handed the permutations our seed draws, so the
results must agree (checked after timing). Timing uses :func:`benchmarks.measure.measure`:
interleaved rounds, medians, then one instrumented call counting forward rows.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from captum.attr import FeatureAblation, Occlusion, ShapleyValueSampling

import algebra as ia
from algebra.kernels.coalitions import shapley_design
from algebra.kernels.players import grid

from . import cli
from .measure import measure
from .models import NUM_CLASSES, make_images, make_model

WINDOW, STRIDE = (3, 8, 8), (3, 4, 4)
GOALS = {"shapley_all": 5.0, "three_methods": 2.0, "deletion4": 2.0}  # on a 2-core CPU
Run = Callable[[], Any]


def _tensor(result: Any, *lead: str) -> torch.Tensor:
    """A result's values with the ``lead`` dims first, as a tensor."""
    return torch.from_numpy(result.transpose(*lead, ...).values)


def _tune(candidates: list[int], call: Callable[[int], Any], log) -> int:
    times = {}
    for ppe in candidates:
        start = time.perf_counter()
        call(ppe)
        times[ppe] = time.perf_counter() - start
    best = min(times, key=times.__getitem__)
    log(f"  tuned perturbations_per_eval: {best} (of {candidates})")
    return best


def shapley_all(model, x, samples: int, log) -> tuple[Run, Run]:
    """Ours and Captum for Shapley sampling of every class."""
    players = grid(tuple(x.shape), 8, 8)
    mask = players.ids.to(x.device)  # [1, 1, 32, 32]: players span channels
    orders = shapley_design(players, samples=samples, seed=0).orders.tolist()  # what seed=0 draws
    wrapped = ia.model(model, name="cnn3")

    def sampler() -> ShapleyValueSampling:
        s = ShapleyValueSampling(model)
        s.permutation_generator = lambda _p, n: iter(orders[:n])
        return s

    def captum_call(ppe: int, classes=range(NUM_CLASSES), n=samples) -> torch.Tensor:
        return torch.stack(
            [
                sampler().attribute(
                    x,
                    baselines=0.0,
                    target=c,
                    feature_mask=mask,
                    n_samples=n,
                    perturbations_per_eval=ppe,
                )
                for c in classes
            ]
        )

    ppe = _tune([16, 32, 64], lambda p: captum_call(p, [0], 1), log)

    def ours() -> torch.Tensor:
        expr = wrapped.on(x).shapley("all", groups=ia.grid(8, 8), samples=samples, seed=0)
        (result,) = ia.compute(expr, session=ia.Session())
        return _tensor(result, "target", "sample")

    return ours, lambda: captum_call(ppe)


def three_methods(model, x, samples: int, log) -> tuple[Run, Run]:
    """Ours and Captum for Shapley sampling, occlusion and ablation of the top-2 classes."""
    players = grid(tuple(x.shape), 8, 8)
    mask = players.ids.to(x.device)  # [1, 1, 32, 32]: players span channels
    orders = shapley_design(players, samples=samples, seed=0).orders.tolist()
    wrapped = ia.model(model, name="cnn3")

    def ours() -> dict[str, torch.Tensor]:
        q, top2 = wrapped.on(x), ia.topk(2)
        exprs = {
            "shapley": q.shapley(top2, groups=ia.grid(8, 8), samples=samples, seed=0),
            "occlusion": q.occlusion(top2, size=WINDOW, stride=STRIDE),
            "feature_ablation": q.feature_ablation(top2, groups=ia.grid(8, 8)),
        }
        results = ia.compute(exprs, session=ia.Session())
        return {k: _tensor(r, "target", "sample") for k, r in results.items()}

    sv = ShapleyValueSampling(model)
    sv.permutation_generator = lambda _p, n: iter(orders[:n])
    occ, fa = Occlusion(model), FeatureAblation(model)

    def run_sv(target, ppe, n=samples):
        return sv.attribute(
            x,
            baselines=0.0,
            target=target,
            feature_mask=mask,
            n_samples=n,
            perturbations_per_eval=ppe,
        )

    def run_occ(target, ppe):
        return occ.attribute(
            x, WINDOW, strides=STRIDE, baselines=0.0, target=target, perturbations_per_eval=ppe
        )

    def run_fa(target, ppe):
        return fa.attribute(
            x, baselines=0.0, target=target, feature_mask=mask, perturbations_per_eval=ppe
        )

    ppe_sv = _tune([16, 32, 64], lambda p: run_sv(0, p, 1), log)
    ppe_occ = _tune([16, 49], lambda p: run_occ(0, p), log)
    ppe_fa = _tune([16, 64], lambda p: run_fa(0, p), log)

    def captum() -> dict[str, torch.Tensor]:
        with torch.no_grad():
            top = model(x).topk(2, dim=1).indices.T
        return {
            "shapley": torch.stack([run_sv(t, ppe_sv) for t in top]),
            "occlusion": torch.stack([run_occ(t, ppe_occ) for t in top]),
            "feature_ablation": torch.stack([run_fa(t, ppe_fa) for t in top]),
        }

    return ours, captum


def _maps(q: Any) -> list[Any]:
    """Four per-pixel maps of the predicted class, as expressions."""
    return [
        q.saliency("pred").sum("channel"),
        q.input_x_gradient("pred").sum("channel"),
        q.integrated_gradients("pred", steps=8).sum("channel"),
        q.layer("block3").grad_cam("pred"),
    ]


def deletion4(model, x, steps: int) -> tuple[Run, Run]:
    """Ours and a hand-written loop for deletion curves of four per-pixel maps.

    Both compute the maps with ``ia.compute``; ours then adds the curves to the same call
    (one stream for the four), the loop runs one forward per map and step.
    """
    wrapped = ia.model(model, name="cnn3")

    def ours() -> torch.Tensor:
        curves = [m.deletion(steps=steps) for m in _maps(wrapped.on(x))]
        return torch.stack(
            [_tensor(c, "sample") for c in ia.compute(*curves, session=ia.Session())]
        )

    def loop() -> torch.Tensor:
        maps = ia.compute(*_maps(wrapped.on(x)), session=ia.Session())
        curves = []
        with torch.no_grad():
            for m in maps:
                flat = torch.from_numpy(m.values).to(x.device).reshape(x.shape[0], -1)
                pred = torch.from_numpy(m["class"].values).to(x.device)[:, None]
                rank = torch.sort(flat, dim=1, descending=True, stable=True).indices.argsort(dim=1)
                points = []
                for s in range(steps + 1):
                    hide = (rank < s * flat.shape[1] // steps).reshape(x.shape[0], 1, *x.shape[2:])
                    copy = torch.where(hide, torch.zeros_like(x), x)
                    points.append(model(copy).gather(1, pred)[:, 0])
                curves.append(torch.stack(points, 1).cpu())
        return torch.stack(curves)

    return ours, loop


def _agree(a: Any, b: Any) -> float:
    if isinstance(a, dict):
        return max(_agree(a[k], b[k]) for k in a)
    a, b = a.cpu(), b.to(device="cpu", dtype=a.dtype)
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**20:.0f}"


def main(argv: list[str] | None = None) -> int:
    """Run the perturbation workloads; print medians, ratios and goals; return 0 or 1.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name.

    Returns
    -------
    int
        1 when ``--check`` is given and a goal is missed or results disagree.
    """
    parser = cli.parser(
        "python -m benchmarks.perturbation", list(GOALS), 3, "2 permutations, 10 steps"
    )
    parser.add_argument("--samples", type=int, default=10, help="Shapley permutations")
    parser.add_argument("--steps", type=int, default=20, help="deletion steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.steps = 2, 10
    warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, x = make_model(device), make_images(8, device)

    print(
        f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"8 images, 64 players, {args.samples} permutations, {args.steps} steps, "
        f"median of {args.repeat}"
    )
    records, ok = [], True
    for name in args.workloads.split(","):
        cli.log(f"== {name}")
        if name == "deletion4":
            ours, theirs = deletion4(model, x, args.steps)
        else:
            ours, theirs = globals()[name](model, x, args.samples, cli.log)
        measured = measure({"ours": ours, "captum": theirs}, model, device, args.repeat, cli.log)
        error = _agree(ours(), theirs())
        m_ours, m_theirs = measured["ours"], measured["captum"]
        ratio = (m_theirs.median or 0) / (m_ours.median or float("inf"))
        passed = ratio >= GOALS[name] and error < 1e-4
        ok &= passed
        rows = {k: m.counts.forward_rows if m.counts else None for k, m in measured.items()}
        record = {
            "name": name,
            "ours_s": m_ours.median,
            "captum_s": m_theirs.median,
            "speedup": ratio,
            "goal": GOALS[name],
            "forward_rows": rows,
            "peak_bytes": {k: m.peak_bytes for k, m in measured.items()},
            "max_rel_diff": error,
        }
        records.append(record)
        print(
            f"{name:14s} ours {m_ours.median:8.3f} s  captum/loop {m_theirs.median:8.3f} s  "
            f"speedup {ratio:5.2f}x (goal {GOALS[name]:.0f}x: {'PASS' if passed else 'FAIL'})  "
            f"forward rows {rows['ours']} vs {rows['captum']}  "
            f"peak MiB {_mib(m_ours.peak_bytes)} vs {_mib(m_theirs.peak_bytes)}  "
            f"max rel diff {error:.1e}",
            flush=True,
        )
    cli.save(args.json, "workloads", records)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
