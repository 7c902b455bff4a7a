"""Gradient-family workloads: fused noisy copies, units and CAMs against Captum's loops.

``python -m benchmarks.gradient_family [--repeat R] [--images N] [--quick] [--json PATH]``

On the benchmark CNN (3x32x32 inputs, 10 classes):

- ``smoothgrad10``: SmoothGrad with 50 noisy copies of every image for all 10 classes.
  Ours: ``q.smoothgrad("all", samples=50)``, the copies one point set (one forward, the
  classes' backwards). Captum: ``NoiseTunnel(Saliency)`` once per class, handed the same
  noise (so the results must agree).
- ``units32``: integrated gradients (16 steps) of each of the 32 channels of ``block2``.
  Ours: ``q.integrated_gradients(ia.units("block2"))``. Captum:
  ``NeuronIntegratedGradients`` once per channel.
- ``cams4``: GradCAM, GradCAM++, LayerCAM and XGradCAM of all 10 classes on ``block2`` and
  ``block3``. Ours: eight expressions, one forward. Loop: pytorch-grad-cam's way (it is not
  installed here), one forward and backward per CAM, layer and class (80). Captum: its
  ``LayerGradCam`` per class and layer, GradCAM only (20 calls): a lower bound for Captum.

Each ours runs in a fresh ``ia.Session``; ``ours_batched`` is ours with
``ia.options.backward = "batched"`` (one vmapped backward per point set). Timing uses
:func:`benchmarks.measure.measure`: a warm-up call each, interleaved rounds, medians, then
one instrumented call counting forwards, rows and backwards.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from captum.attr import LayerAttribution, LayerGradCam, NeuronIntegratedGradients, NoiseTunnel
from captum.attr import Saliency as CaptumSaliency
from captum.attr._core.noise_tunnel import NoiseTunnel as _NoiseTunnel

import algebra as ia
from algebra.kernels.cams import cam_maps, finish
from algebra.kernels.noise import draw_noise

from . import cli
from .measure import measure
from .models import NUM_CLASSES, make_images, make_model

GOALS = {"smoothgrad10": 3.0, "units32": 3.0, "cams4": 3.0}  # vs the loop, 2-core CPU
CAMS = ("grad_cam", "grad_cam_pp", "layer_cam", "xgrad_cam")
LAYERS = ("block2", "block3")
Run = Callable[[], Any]


def _ours(model, run: Callable[[Any], Any], backward: str = "auto") -> Run:
    wrapped = ia.model(model, name="cnn3")

    def call() -> Any:
        with ia.set_options(backward=backward):
            return run(wrapped)

    return call


def smoothgrad10(model, x, samples: int, steps: int) -> dict[str, Run]:
    """Ours (SmoothGrad of all classes over one point set) and Captum's NoiseTunnel loop."""
    noise = draw_noise(x, samples, 0.15, seed=0)

    def run(m):
        e = m.on(x).noise(noise=noise).saliency("all").mean("noise")
        return torch.from_numpy(ia.compute(e, session=ia.Session())[0].values).transpose(0, 1)

    def add(input, stdev, n):  # Captum's NoiseTunnel draws these (its rows: n * S + s)
        return input.repeat_interleave(n, 0) + noise.transpose(0, 1).reshape(-1, *x.shape[1:])

    def captum() -> torch.Tensor:
        saved = _NoiseTunnel._add_noise_to_input
        _NoiseTunnel._add_noise_to_input = staticmethod(add)
        try:
            nt = NoiseTunnel(CaptumSaliency(model))
            return torch.stack(
                [
                    nt.attribute(x, nt_type="smoothgrad", nt_samples=samples, stdevs=0.15, target=c)
                    for c in range(NUM_CLASSES)
                ]
            )
        finally:
            _NoiseTunnel._add_noise_to_input = saved

    return {
        "ours": _ours(model, run),
        "ours_batched": _ours(model, run, "batched"),
        "captum": captum,
    }


def units32(model, x, samples: int, steps: int) -> dict[str, Run]:
    """Ours (every channel of block2 from one path) and Captum's per-channel loop."""

    def run(m):
        e = m.on(x).integrated_gradients(ia.units("block2"), steps=steps)
        return torch.from_numpy(ia.compute(e, session=ia.Session())[0].values).transpose(0, 1)

    def captum() -> torch.Tensor:
        nig = NeuronIntegratedGradients(model, model.block2)
        every = (slice(None), slice(None))
        return torch.stack([nig.attribute(x, (c, *every), n_steps=steps) for c in range(32)])

    return {
        "ours": _ours(model, run),
        "ours_batched": _ours(model, run, "batched"),
        "captum": captum,
    }


def cams4(model, x, samples: int, steps: int) -> dict[str, Run]:
    """Ours (four CAMs on two layers from one forward), pytorch-grad-cam's loop, Captum's
    GradCAM per class and layer."""

    def run(m):
        q = m.on(x)
        exprs = [getattr(q.layer(layer), cam)("all") for layer in LAYERS for cam in CAMS]
        results = ia.compute(*exprs, session=ia.Session())
        return torch.stack([torch.from_numpy(r.values).transpose(0, 1) for r in results])

    modules = dict(model.named_modules())

    def loop() -> torch.Tensor:
        maps = []
        for layer in LAYERS:
            for cam in CAMS:
                for c in range(NUM_CLASSES):  # as pytorch-grad-cam: a pass per CAM and target
                    acts: dict[str, torch.Tensor] = {}
                    hook = modules[layer].register_forward_hook(
                        lambda _m, _i, o, acts=acts: acts.setdefault("a", o)
                    )
                    try:
                        out = model(x)
                    finally:
                        hook.remove()
                    (g,) = torch.autograd.grad(out[:, c].sum(), acts["a"])
                    raw = cam_maps(cam, g[None], acts["a"].detach())
                    maps.append(finish(raw, relu=True, size=tuple(x.shape[2:]))[0])
        return torch.stack(maps).reshape(len(LAYERS) * len(CAMS), NUM_CLASSES, *maps[0].shape)

    def captum() -> torch.Tensor:
        maps = []
        for layer in LAYERS:
            gc = LayerGradCam(model, modules[layer])
            for c in range(NUM_CLASSES):
                raw = gc.attribute(x, target=c, relu_attributions=True)
                maps.append(LayerAttribution.interpolate(raw, tuple(x.shape[2:]), "bilinear")[:, 0])
        return torch.stack(maps)

    return {
        "ours": _ours(model, run),
        "ours_batched": _ours(model, run, "batched"),
        "loop": loop,
        "captum_gradcam_only": captum,
    }


def per_class_bound(model, x, samples: int, repeat: int) -> tuple[float, float, float]:
    """Forward ``F`` and one class's backward ``B`` on the noisy batch (medians), and the best
    speedup any schedule of exact per-class gradients can have over a loop that runs a
    forward and a backward per class: ``C (F + B) / (F + C B)``."""
    frozen = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    rows = x.repeat(samples, *([1] * (x.ndim - 1)))
    forwards, backwards = [], []
    try:
        for _ in range(max(repeat, 1)):
            points = rows.clone().requires_grad_(True)
            start = time.perf_counter()
            out = model(points)
            forwards.append(time.perf_counter() - start)
            classes = out.shape[1]
            start = time.perf_counter()
            for c in range(classes):
                torch.autograd.grad(out[:, c].sum(), points, retain_graph=c < classes - 1)
            backwards.append((time.perf_counter() - start) / classes)
    finally:
        for p, flag in zip(model.parameters(), frozen, strict=True):
            p.requires_grad_(flag)
    f, b = statistics.median(forwards), statistics.median(backwards)
    return f, b, classes * (f + b) / (f + classes * b)


def _agree(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    theirs = theirs.detach().to(ours.dtype).reshape(ours.shape)
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp(min=1e-12))


def _reference(name: str, impls: dict[str, Run], ours: torch.Tensor) -> float:
    if name == "cams4":  # the loop computes the same four maps; Captum GradCAM only
        grad_cams = ours[[0, len(CAMS)]]  # GradCAM of each layer
        return max(_agree(ours, impls["loop"]()), _agree(grad_cams, impls["captum_gradcam_only"]()))
    return _agree(ours, impls["captum"]())


def main(argv: list[str] | None = None) -> int:
    """Run the workloads; print medians, ratios and goals; return 0 or 1.

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
        "python -m benchmarks.gradient_family", list(GOALS), 3, "2 images, 10 copies, 4 steps"
    )
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--samples", type=int, default=50, help="SmoothGrad's noisy copies")
    parser.add_argument("--steps", type=int, default=16, help="integrated gradients' steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.samples, args.steps = 2, 10, 4
    warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
    warnings.filterwarnings("ignore", message="Setting backward hooks")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, x = make_model(device), make_images(args.images, device)

    print(
        f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{args.images} images, {args.samples} noisy copies, {args.steps} steps, "
        f"median of {args.repeat}"
    )
    records, ok = [], True
    for name in args.workloads.split(","):
        cli.log(f"== {name}")
        impls = globals()[name](model, x, args.samples, args.steps)
        measured = measure(impls, model, device, args.repeat, cli.log)
        error = _reference(name, impls, impls["ours"]())
        base = "loop" if "loop" in impls else "captum"
        med = {k: m.median for k, m in measured.items()}
        ratios = {k: (med[base] or 0) / (v or float("inf")) for k, v in med.items()}
        passed = ratios["ours"] >= GOALS[name] and error < 1e-4
        ok &= passed
        counts = {k: None if m.counts is None else vars(m.counts) for k, m in measured.items()}
        records.append(
            {
                "name": name,
                "median_s": med,
                "speedup_vs_" + base: ratios,
                "goal": GOALS[name],
                "passes": counts,
                "peak_bytes": {k: m.peak_bytes for k, m in measured.items()},
                "max_rel_diff": error,
            }
        )
        cells = "  ".join(
            f"{k} {med[k]:.3f} s ({ratios[k]:.2f}x; {c['forward_calls']} fwd, "
            f"{c['forward_rows']} rows, {c['backward_calls']} bwd)"
            for k, c in counts.items()
            if med[k] is not None and c is not None
        )
        verdict = "PASS" if passed else "FAIL"
        print(
            f"{name:13s} {cells}\n{'':13s} speedup of ours vs {base}: {ratios['ours']:.2f}x "
            f"(goal {GOALS[name]:.0f}x: {verdict}); max rel diff {error:.1e}",
            flush=True,
        )
        if name == "smoothgrad10":
            f, b, bound = per_class_bound(model, x, args.samples, args.repeat)
            records[-1]["per_class_bound"] = {"forward_s": f, "backward_s": b, "bound": bound}
            print(
                f"{'':13s} one forward {f:.3f} s, one class's backward {b:.3f} s on the "
                f"noisy batch: exact per-class gradients can be at most {bound:.2f}x faster "
                "than a forward and backward per class",
                flush=True,
            )
    cli.save(args.json, "workloads", records)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
