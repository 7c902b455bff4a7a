"""Study 1, inspecting adversarial inputs (i-Algebra's first case study).

PGD and FGSM inputs of the clean CNN; the identity (Shapley values) of benign and
adversarial inputs; selection across layers for both, and per layer how far their
interpretations diverge (1 - cosine similarity), beside random noise of the same size as
a control; and a detector built on that divergence: without the benign twin, a blurred
copy of the input stands in for it (an edit of the query), and the divergence of the two
interpretations at one layer (chosen on half the inputs) is the score, with its ROC AUC
on the other half, beside an output-only baseline (the change of the softmax).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

import algebra as ia

from .. import figures as figs
from ..context import Context, outputs, predict
from ..metrics import divergence, roc_auc, roc_curve
from ..report import Shown, Study, Table, source

STEPS = 4  # progress steps (ctx.step)
LAYERS = ("block1", "block2", "block3", "block4", "pool")
EPS = 0.05  # L-inf radius, on images in [0, 1] (about 13 / 255)
QUERY = "select {layer} from f(x) using input_x_gradient target label"


def attack(m: ia.Model, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The adversarial inputs, and random signs of the same size as a control.

    Examples
    --------
    >>> import algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> m = ia.model(small_cnn(width=2).eval())  # untrained: the shapes are the point
    >>> x, y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 2])
    >>> {k: tuple(v.shape) for k, v in attack(m, x, y).items()}
    {'pgd': (2, 3, 32, 32), 'fgsm': (2, 3, 32, 32), 'noise': (2, 3, 32, 32)}
    """
    noise = EPS * (2 * torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(0)) - 1)
    return {
        "pgd": ia.attacks.pgd(m, x, y, eps=EPS, steps=10, seed=0).cpu(),
        "fgsm": ia.attacks.fgsm(m, x, y, eps=EPS).cpu(),
        "noise": (x + noise).clamp(0, 1),
    }


def identity_maps(m: ia.Model, x: torch.Tensor, adv: torch.Tensor, y: torch.Tensor, samples: int) -> xr.DataArray:  # fmt: skip
    """The identity (Shapley values of an 8 x 8 grid) of benign and adversarial inputs.

    Examples
    --------
    >>> import algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> m = ia.model(small_cnn(width=2).eval())  # untrained: the shapes are the point
    >>> x, y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 2])
    >>> identity_maps(m, x, x.flip(-1), y, samples=2).dims  # channels summed by ia.stack
    ('input', 'sample', 'y', 'x')
    """
    text = f"select * from f(x) using shapley(samples={samples}, seed=0) target label"
    maps = ia.compute({
        "benign": ia.query(text, f=m, x=m.on(x, labels=y)),
        "pgd": ia.query(text, f=m, x=m.on(adv, labels=y)),
    })  # fmt: skip
    return ia.stack(maps, "input")


def layer_maps(m: ia.Model, queries: dict[str, ia.Query]) -> dict:
    """Selection across layers: each query's interpretation at every layer, in one compute
    (one forward and one batched backward per batch of inputs serve all five layers).

    Examples
    --------
    >>> import algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> m = ia.model(small_cnn(width=2).eval())  # untrained: the shapes are the point
    >>> x, y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 2])
    >>> maps = layer_maps(m, {"benign": m.on(x, labels=y)})
    >>> list(maps)[:2], maps["benign", "block4"].dims
    ([('benign', 'block1'), ('benign', 'block2')], ('sample', 'channel', 'y', 'x'))
    """
    exprs = {
        (name, layer): ia.query(QUERY.format(layer=layer), f=m, x=q).normalize()
        for name, q in queries.items()
        for layer in LAYERS
    }
    return ia.compute(exprs)


def blur(x: torch.Tensor) -> torch.Tensor:
    """The detector's stand-in for the benign twin: a 3 x 3 mean filter.

    Examples
    --------
    >>> blur(torch.tensor([[[[0.0, 3.0, 0.0]]]])).tolist()
    [[[[1.5, 1.0, 1.5]]]]
    """
    return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def detector_scores(m: ia.Model, inputs: torch.Tensor) -> dict[str, np.ndarray]:
    """Per layer, how far each input's interpretation moves when it is blurred (what-if),
    for the class the model predicts: no label, no benign twin needed.

    Examples
    --------
    >>> import algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> m = ia.model(small_cnn(width=2).eval())  # untrained: the shapes are the point
    >>> x, y = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 2])
    >>> scores = detector_scores(m, x)
    >>> list(scores) == list(LAYERS), scores["block1"].shape
    (True, (2,))
    """
    pred = predict(m, inputs)
    maps = layer_maps(m, {"input": m.on(inputs, labels=pred),
                          "blurred": m.on(inputs, labels=pred).edit(blur)})  # fmt: skip
    return {layer: divergence(maps["input", layer], maps["blurred", layer]) for layer in LAYERS}


def run(ctx: Context, out: Path) -> Study:
    """Run the study; write its figures into ``out``.

    Examples
    --------
    >>> import tempfile, algebra as ia
    >>> from algebra.demo.run import torch_threads
    >>> ctx = Context(quick=True)  # models from the cache ($IALGEBRA_CACHE)
    >>> with ia.set_options(progress=False), torch_threads(1):  # as run_demo runs it
    ...     study = run(ctx, Path(tempfile.mkdtemp()))
    >>> [m.name for m in study.metrics][-1]
    'detector ROC AUC, held out'
    """
    study = Study(
        "adversarial",
        "1. Inspecting adversarial inputs",
        f"PGD (10 steps) and FGSM inputs of radius {EPS} (L-inf, images in [0, 1]) against the "
        "clean CNN; their interpretations compared with the benign inputs' at every layer, "
        "and a detector built on how far an interpretation moves.",
    )
    m, split, n = ctx.cnn, ctx.clean, ctx.sizes.adversarial
    x, y = split.x_test[:n], split.y_test[:n]
    ctx.step("PGD and FGSM inputs")
    inputs = attack(m, x, y)
    for name, batch in (("clean", x), ("PGD", inputs["pgd"]), ("FGSM", inputs["fgsm"])):
        study.metric(f"CNN accuracy, {name} inputs", (predict(m, batch) == y).float().mean(),
                     note=f"{n} test digits")  # fmt: skip

    shown = 4
    ctx.step("identity of benign and PGD inputs")
    maps = identity_maps(m, x[:shown], inputs["pgd"][:shown], y[:shown], ctx.sizes.shapley_samples)
    pictures = xr.DataArray(
        torch.stack([x[:shown], inputs["pgd"][:shown]]).numpy(),
        dims=("input", "sample", "channel", "y", "x"),
    )
    fig = maps.ia.plot(pictures, row="sample", col="input", panel_size=1.8,
                       title="identity (Shapley values, 8 x 8 grid) of the true class")  # fmt: skip
    study.figures.append(Shown(
        figs.save(fig, out / "adversarial_maps.png"),
        "The identity of benign (left) and PGD (right) inputs, for the true class, over each "
        "input. Red supports the class, blue opposes it. The PGD inputs look the same, yet "
        "the evidence for the true class is gone or reversed.",
        source(identity_maps),
    ))  # fmt: skip

    ctx.step("selection across layers")
    queries = {name: m.on(batch, labels=y) for name, batch in (("benign", x), *inputs.items())}
    layered = layer_maps(m, queries)
    curves = {
        name: np.stack(
            [divergence(layered["benign", layer], layered[name, layer]) for layer in LAYERS], 1
        )
        for name in ("pgd", "fgsm", "noise")
    }
    pairs = {
        layer: ia.stack({k: layered[k, layer].isel(sample=slice(0, 3)) for k in ("benign", "pgd")},
                        "input", normalize=True)
        for layer in LAYERS[:-1]  # the pooled features have no grid to draw
    }  # fmt: skip
    fig = ia.stack(pairs, "layer").ia.plot(
        pictures.isel(sample=slice(0, 3)), row="layer", col=["sample", "input"], panel_size=1.5,
        title="gradient x activation of the true class at each layer (each map scaled to its peak)",
    )  # fmt: skip
    study.figures.append(Shown(
        figs.save(fig, out / "adversarial_layers.png"),
        "Selection across layers (rows) for three digits, benign and PGD side by side: the "
        "interpretation of the true class at each convolutional block, summed over channels "
        "and scaled to its peak, stretched over the input. Early blocks look alike; from "
        "block4 the PGD input's evidence for the true class turns negative.",
        source(layer_maps),
    ))  # fmt: skip
    fig, (ax,) = figs.figure(6, 3.4)
    figs.bands(ax, LAYERS, {"PGD": curves["pgd"], "FGSM": curves["fgsm"],
                            f"random signs (+-{EPS})": curves["noise"]},
               "1 - cosine similarity", "divergence from the benign interpretation")  # fmt: skip
    study.figures.append(Shown(
        figs.save(fig, out / "adversarial_divergence.png"),
        "Per layer, 1 - cosine similarity between each benign input's interpretation and its "
        "perturbed twin's (median and interquartile range over the inputs). Random noise of "
        "the same size fades with depth; the attacks' divergence stays high or grows: the "
        "deep layers are where the attack takes hold.",
        source(layer_maps) + "\n\n# per layer and input: 1 - cosine(benign map, twin map)",
    ))  # fmt: skip
    for name, values in curves.items():
        study.metric(f"divergence at {LAYERS[0]} / {LAYERS[-2]}, {name}",
                     float(np.median(values[:, 0])), "{:.2f}", "median over inputs")  # fmt: skip
        study.metrics[-1].text += f" / {np.median(values[:, -2]):.2f}"

    ctx.step("detector: blurred twins")
    _detector(ctx, study, out, x, inputs["pgd"])
    return study


def _detector(ctx: Context, study: Study, out: Path, x: torch.Tensor, adv: torch.Tensor) -> None:
    m, n = ctx.cnn, len(x)
    scores = detector_scores(m, torch.cat([x, adv]))
    truth = np.r_[np.zeros(n, bool), np.ones(n, bool)]
    fit = np.r_[np.arange(n) % 2 == 0, np.arange(n) % 2 == 0]  # even inputs choose the layer
    held = ~fit  # odd inputs (benign and adversarial twins) are the held-out test
    chosen = max(LAYERS, key=lambda layer: roc_auc(scores[layer][fit], truth[fit]))
    probs = outputs(m, torch.cat([x, adv]))
    squeezed = outputs(m, blur(torch.cat([x, adv])))
    baseline = (probs - squeezed).abs().sum(1).numpy()  # output-only: the softmax change
    aucs = {layer: roc_auc(scores[layer][held], truth[held]) for layer in LAYERS}
    base_auc = roc_auc(baseline[held], truth[held])
    fig, (left, right) = figs.figure(10, 3.6, cols=2)
    figs.bars(left, LAYERS, {"interpretation divergence": [aucs[layer] for layer in LAYERS]},
              "held-out ROC AUC", "detector per layer", limits=(0.5, 1.05))  # fmt: skip
    left.axhline(base_auc, color="black", linestyle="--", linewidth=1)
    left.text(-0.4, base_auc - 0.04, f"output-only baseline {base_auc:.3f}", fontsize=7)
    figs.roc(right, {
        f"divergence at {chosen}": (*roc_curve(scores[chosen][held], truth[held]), aucs[chosen]),
        "softmax change (baseline)": (*roc_curve(baseline[held], truth[held]), base_auc),
    }, f"held out: {held.sum() // 2} benign + {held.sum() // 2} PGD")  # fmt: skip
    study.figures.append(Shown(
        figs.save(fig, out / "adversarial_detector.png"),
        "A detector that needs no label and no benign twin: the divergence between the "
        "interpretation of an input and of its blurred copy (3 x 3 mean filter), for the "
        "predicted class. Left: held-out ROC AUC per layer; the layer is chosen on the other "
        f"half of the inputs ({chosen}). Right: its ROC curve beside the output-only baseline "
        "(L1 change of the softmax under the same blur, feature squeezing).",
        source(blur, detector_scores),
    ))  # fmt: skip
    study.tables.append(Table(
        "Detector, held-out ROC AUC per layer (interpretation divergence under blur)",
        ["layer", *LAYERS, "softmax change"],
        [["AUC", *[f"{aucs[layer]:.3f}" for layer in LAYERS], f"{base_auc:.3f}"]],
    ))  # fmt: skip
    study.metric("detector layer (chosen on calibration half)", LAYERS.index(chosen), "{:.0f}")
    study.metrics[-1].text = chosen
    study.metric(
        "output-only baseline ROC AUC, held out", base_auc, note="softmax change under blur"
    )
    study.metric("detector ROC AUC, held out", aucs[chosen],
                 note=f"{held.sum() // 2} benign + {held.sum() // 2} PGD inputs")  # fmt: skip
    study.notes.append(
        "The detector is evaluated against the attack it was calibrated on (PGD, not adapted "
        "to the detector); an attacker who knows the detector could aim for inputs whose "
        "interpretation survives the blur. Not measured here."
    )
