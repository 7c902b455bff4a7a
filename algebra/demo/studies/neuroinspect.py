"""Study 4, NeuroInspect on the spurious-mark model.

A CNN whose decision layer was fit to digits where a red mark in the corner accompanies
class 8. On an audit split where the mark falls at random, it gets many 8s wrong. The
counterfactual neurons of those mistakes, their class-conditional visualisations, and the
decision layer edited to rely less on them, reported on the test split beside the control
(the same retraining without the method's term).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

import algebra as ia

from .. import data as dd
from .. import figures as figs
from ..context import Context
from ..report import Shown, Study, Table, source

STEPS = 4  # progress steps (ctx.step)
CLS = 8
QUERY = f"select neurons of block4 from f(x) where mistakes of {CLS}"
SHOWN = 6  # mistakes drawn
AUTO = 10  # the reference's automatic choice: the top-10 "insufficient" neurons


def counterfactual_neurons(m: ia.Model, audit: ia.Query) -> xr.Dataset:
    """Stage 1: the neurons whose change would have fixed each mistake of the class.

    Examples
    --------
    >>> import types, algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> g = torch.Generator().manual_seed(0)
    >>> m = ia.model(small_cnn(width=2).eval())
    >>> x, y = torch.rand(12, 3, 32, 32, generator=g), torch.tensor([8] * 6 + [1] * 6)
    >>> found = counterfactual_neurons(m, m.on(x, labels=y))
    >>> found.votes.dims, found.attrs["mistakes"] <= 6
    (('neuron', 'kind'), True)
    """
    return ia.query(QUERY, f=m, x=audit).compute()


def mistake_maps(m: ia.Model, task: dd.Spurious, rows: list[int], samples: int) -> xr.DataArray:
    """The identity (Shapley values, 8 x 8 grid) of the class on some of its mistakes.

    Examples
    --------
    >>> import types, algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> g = torch.Generator().manual_seed(0)
    >>> m = ia.model(small_cnn(width=2).eval())
    >>> x, y = torch.rand(12, 3, 32, 32, generator=g), torch.tensor([8] * 6 + [1] * 6)
    >>> task = types.SimpleNamespace(x_audit=x, y_audit=y)
    >>> mistake_maps(m, task, [0, 2], samples=2).sample.values.tolist()
    ['audit 0', 'audit 2']
    """
    ids = [f"audit {r}" for r in rows]
    q = m.on(task.x_audit[rows], labels=task.y_audit[rows], ids=ids)
    return q.identity(CLS, samples=samples, seed=0).compute()


def visualise(m: ia.Model, neurons: list[int], steps: int, images: int, example: torch.Tensor) -> xr.Dataset:  # fmt: skip
    """Stage 2: images that excite each neuron, conditioned on the class.

    Examples
    --------
    >>> import types, algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> g = torch.Generator().manual_seed(0)
    >>> m = ia.model(small_cnn(width=2).eval())
    >>> x, y = torch.rand(12, 3, 32, 32, generator=g), torch.tensor([8] * 6 + [1] * 6)
    >>> with ia.set_options(progress=False):
    ...     vis = visualise(m, [0, 1], steps=2, images=1, example=x)
    >>> vis.images.sizes["neuron"], vis.attrs["cls"]
    (2, 8)
    """
    return m.visualize("block4", neurons, cls=CLS, steps=steps, images=images, example=example, seed=0)  # fmt: skip


def mitigate(m: ia.Model, neurons: list[int], task: dd.Spurious) -> xr.Dataset:
    """Stage 3: retrain the decision layer only, beside the control; score on the test split.

    Examples
    --------
    >>> import types, algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> g = torch.Generator().manual_seed(0)
    >>> m = ia.model(small_cnn(width=2).eval())
    >>> x, y = torch.rand(12, 3, 32, 32, generator=g), torch.tensor([8] * 6 + [1] * 6)
    >>> task = types.SimpleNamespace(x_train=x, y_train=y, x_audit=x, y_audit=y, x_test=x,
    ...                              y_test=y, groups_test=2 * y)
    >>> mitigate(m, [0, 1], task).version.values.tolist()
    ['before', 'after', 'control']
    """
    fix = m.mitigate(
        neurons, CLS, (task.x_train, task.y_train), val_data=(task.x_audit, task.y_audit),
        layer="block4", control=True,
    )  # fmt: skip
    return fix.evaluate((task.x_test, task.y_test), groups=task.groups_test)


def run(ctx: Context, out: Path) -> Study:
    """Run the study; write its figures into ``out``.

    Examples
    --------
    >>> import tempfile, algebra as ia
    >>> from algebra.demo.run import torch_threads
    >>> ctx = Context(quick=True)  # models from the cache ($IALGEBRA_CACHE)
    >>> with ia.set_options(progress=False), torch_threads(1):  # as run_demo runs it
    ...     study = run(ctx, Path(tempfile.mkdtemp()))
    >>> study.metrics[0].name
    'mistakes of class 8 on the audit split'
    """
    task, m, sizes = ctx.spurious, ctx.spurious_cnn, ctx.sizes
    study = Study(
        "neuroinspect",
        "4. NeuroInspect: from mistakes to neurons to an edited decision layer",
        "The decision layer of this CNN was fit to digits where a red mark accompanies class "
        f"{CLS}. On an audit split where the mark falls at random, it misses many {CLS}s. "
        "Counterfactual neurons find the decision features behind the mistakes; their "
        "class-conditional visualisations show what they respond to; the edited decision "
        "layer is compared with a control trained the same way without the method's term.",
    )
    audit = m.on(task.x_audit, labels=task.y_audit)
    ctx.step("counterfactual neurons")
    found = counterfactual_neurons(m, audit)
    study.metric(f"mistakes of class {CLS} on the audit split", found.attrs["mistakes"], "{:.0f}",
                 f"{int((task.y_audit == CLS).sum())} {CLS}s in {len(task.y_audit)} images")  # fmt: skip
    study.metric("mistakes flipped by their counterfactual", float(found.flipped.mean()), "{:.2f}")
    ranked = [int(n) for n in found.attrs["insufficient"]]
    if not ranked:
        study.notes.append("No neuron got votes above the threshold: nothing to visualise or edit.")
        return study

    ctx.step("identity of the mistakes")
    rows = [int(r) for r in found.sample.values[:SHOWN]]
    maps = mistake_maps(m, task, rows, sizes.shapley_samples)
    fig = maps.ia.plot(task.x_audit[rows], overlay=False, col="sample", panel_size=1.6,
                       title=f"mistakes of class {CLS}: the identity of class {CLS}")  # fmt: skip
    study.figures.append(Shown(
        figs.save(fig, out / "neuro_mistakes.png"),
        f"The first {len(rows)} audit images of class {CLS} that the model gets wrong (top: "
        f"none carries the red mark), and the Shapley values of class {CLS} (8 x 8 grid of "
        "players): red supports the class, blue opposes it. Titles: the prediction and the "
        "label.",
        source(mistake_maps),
    ))  # fmt: skip
    fig = found.ia.plot()
    study.figures.append(Shown(
        figs.save(fig, out / "neuro_votes.png"),
        "Counterfactual neurons: for each mistake the smallest change of the pooled block4 "
        "features that makes the decision layer say 8; the neurons that had to grow "
        "(insufficient) or shrink (excessive), as a share of the mistakes.",
        source(counterfactual_neurons) + f"\n\n# QUERY = {QUERY!r}",
    ))  # fmt: skip
    ctx.step("class-conditional visualisation")
    imp = m.neuron_importance(CLS, task.x_audit, layer="block4")
    shown = ranked[: sizes.visualized]
    vis = visualise(m, shown, sizes.vis_steps, sizes.vis_images, task.x_test)
    fig = vis.ia.plot()
    study.figures.append(Shown(
        figs.save(fig, out / "neuro_visualisations.png"),
        f"Class-conditional visualisations of the {len(shown)} most-voted neurons (rows): "
        f"images optimised to excite each neuron while raising the class-{CLS} logit, dimmed "
        "where the neuron is inactive. Look for the red corner mark.",
        source(visualise),
    ))  # fmt: skip
    study.tables.append(Table(
        "The most-voted insufficient neurons",
        ["neuron", "votes (% of mistakes)", f"importance for class {CLS}"],
        [[str(n), f"{float(found.votes.sel(neuron=n, kind='insufficient')):.1f}",
          f"{float(imp.sel(neuron=n)):.3f}"] for n in ranked[:5]],
    ))  # fmt: skip
    ctx.step("mitigation beside the control")
    _mitigation(study, out, m, ranked[:AUTO], task)
    return study


def _mitigation(study: Study, out: Path, m: ia.Model, neurons: list[int], task: dd.Spurious) -> None:  # fmt: skip
    report = mitigate(m, neurons, task)
    versions = ("before", "after", "control")
    columns = {
        "overall": lambda v: float(report.overall.sel(version=v)),
        "worst class": lambda v: float(report.worst_class.sel(version=v)),
        f"{CLS} without mark": lambda v: float(report.per_group.sel(version=v, group=2 * CLS)),
        "worst group": lambda v: float(report.worst_group.sel(version=v)),
    }
    values = {v: [get(v) for get in columns.values()] for v in versions}
    fig, (ax,) = figs.figure(8, 3.4)
    figs.bars(ax, list(columns), {"before": values["before"], "after (edited)": values["after"],
                                  "control": values["control"]},
              "test accuracy", f"decision layer edited on {len(neurons)} neurons", limits=(0, 1.15))  # fmt: skip
    study.figures.append(Shown(
        figs.save(fig, out / "neuro_mitigation.png"),
        "Test accuracy of the model as trained, with its decision layer edited to rely less on "
        f"the top {len(neurons)} insufficient neurons, and of the control (the same retraining, "
        "checkpoint choice on the audit split, without the retaining-ratio term).",
        source(mitigate),
    ))  # fmt: skip
    study.tables.append(Table(
        "Test accuracy before and after the edit, beside the control",
        ["version", *columns],
        [[v, *[f"{x:.3f}" for x in values[v]]] for v in versions],
    ))  # fmt: skip
    for i, name in ((1, "worst-class"), (0, "overall")):
        b, a, c = (values[v][i] for v in versions)
        study.metric(f"{name} accuracy before / after / control", b, "{:.3f}", "test split")
        study.metrics[-1].text += f" / {a:.3f} / {c:.3f}"
    gain = np.subtract(values["after"], values["before"])[1]
    study.notes.append(
        f"The edit changes the worst-class accuracy by {100 * gain:+.1f} points; the control "
        f"by {100 * (values['control'][1] - values['before'][1]):+.1f}. Checkpoints are chosen on "
        "the audit split, which shows the failure; on a split as biased as training, neither "
        "moves much (docs/neuroinspect.md, Evidence)."
    )
