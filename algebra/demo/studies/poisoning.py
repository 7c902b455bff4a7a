"""Study 3, cleansing contaminated data (i-Algebra's third case study).

A CNN trained on digits of which 5 % carry a trigger (a checkerboard in the corner) and
are relabelled 0. Every training image is ranked by how concentrated the identity of its
label is: the share of its attribution mass (Shapley values of a 4 x 4 grid of 8 x 8
windows) that its strongest window holds. The top candidates are drilled down into that
window with finer players (projection). Then the model is retrained without the top
10 % of the ranking, beside the same training without 10 % chosen at random.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

import algebra as ia

from .. import figures as figs
from ..context import Context, predict
from ..metrics import precision_at, roc_auc, roc_curve
from ..models import progress
from ..report import Shown, Study, Table, source

STEPS = 3  # progress steps (ctx.step)
RANK = "select * from f(x) using shapley(groups=grid(4, 4), samples=1, antithetic=true, seed=0) target label"  # fmt: skip
DRILL = "select * from f(x) where {window} using shapley(groups=grid(4, 4), samples=8, seed=0) target label"  # fmt: skip
BUDGET = 0.10  # share of the training set removed before retraining
SHOWN = 8  # candidates drawn


def concentration(m: ia.Model, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> np.ndarray:
    """Each image's players' Shapley values ``[N, 16]`` for its label (batch by batch).

    Examples
    --------
    >>> import algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> m = ia.model(small_cnn(width=2).eval())
    >>> x, y = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2])
    >>> with ia.set_options(progress=False):
    ...     concentration(m, x, y, batch=2).shape
    (3, 16)
    """
    values = []
    with progress(-(-len(x) // batch), "ranking training images") as tick:
        for rows in torch.arange(len(x)).split(batch):
            r = ia.query(RANK, f=m, x=m.on(x[rows], labels=y[rows])).compute()
            values.append(r.groupby("player").mean().transpose("sample", "player").values)
            tick()
    return np.concatenate(values)


def score(values: np.ndarray) -> np.ndarray:
    """The share of the attribution mass held by the strongest window.

    Examples
    --------
    >>> score(np.array([[3.0, -1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])).tolist()
    [0.75, 0.25]
    """
    return values.max(1) / np.maximum(np.abs(values).sum(1), 1e-12)


def drill_down(m: ia.Model, x: torch.Tensor, y: torch.Tensor, ids: list[str], windows: list) -> xr.DataArray:  # fmt: skip
    """Projection into each candidate's strongest window, with 2 x 2-pixel players.

    Examples
    --------
    >>> import algebra as ia
    >>> from algebra.demo.nets import small_cnn
    >>> m = ia.model(small_cnn(width=2).eval())
    >>> x, y = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2])
    >>> r = drill_down(m, x, y, ["a", "b", "c"], [(0, 8, 0, 8), (24, 32, 24, 32), (0, 8, 0, 8)])
    >>> r.sample.values.tolist(), float(abs(r.sel(sample="b")).isel(y=slice(0, 24)).sum())
    (['a', 'b', 'c'], 0.0)
    """
    parts = {}
    for w in sorted(set(windows)):
        rows = [i for i, v in enumerate(windows) if v == w]
        q = m.on(x[rows], labels=y[rows], ids=[ids[i] for i in rows])
        parts[w] = ia.query(DRILL.format(window=list(w)), f=m, x=q)
    maps = ia.compute(parts)
    whole = xr.concat(list(maps.values()), "sample", coords="minimal", compat="override")
    return whole.drop_vars("player").sel(sample=ids)


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
    'ROC AUC, poisoned vs clean'
    """
    task = ctx.backdoor
    m = ctx.backdoored
    pool = ctx.sizes.poisoned_pool or len(task.y_train)
    x, y, poisoned = task.x_train[:pool], task.y_train[:pool], task.poisoned[:pool].numpy()
    study = Study(
        "poisoning",
        "3. Cleansing contaminated data",
        f"{int(task.poisoned.sum())} of {len(task.y_train)} training digits carry a trigger "
        "(a 5 x 5 checkerboard in the bottom-right corner) and are relabelled 0; the CNN "
        "learns the backdoor. The training images are ranked by their interpretations, "
        "the top candidates drilled down, and the model retrained without the top of the "
        f"ranking ({len(y)} images ranked).",
    )
    ctx.step("ranking the training images")
    values = concentration(m, x, y)
    s = score(values)
    k = int(poisoned.sum())
    study.metric(
        "ROC AUC, poisoned vs clean", roc_auc(s, poisoned), note=f"{len(y)} training images"
    )
    study.metric(f"precision at k = {k} (the number poisoned)", precision_at(s, poisoned, k))
    order = np.argsort(-s, kind="stable")
    removed = order[: round(BUDGET * len(y))]
    study.metric(f"poisoned images among the top {len(removed)} (10%)", poisoned[removed].sum(),
                 "{:.0f}", f"of {k}")  # fmt: skip

    first_clean = [i for i in range(len(order)) if not poisoned[order[i]]][:2]
    ranks = sorted({*range(SHOWN - len(first_clean)), *first_clean})
    top = order[ranks]
    best = values[top].argmax(1)
    windows = [
        (8 * (p // 4), 8 * (p // 4) + 8, 8 * (p % 4), 8 * (p % 4) + 8) for p in best.tolist()
    ]
    ids = [f"#{i + 1} ({'poisoned' if poisoned[j] else 'clean'})" for i, j in zip(ranks, top, strict=True)]  # fmt: skip
    ctx.step("drill-down into the candidates")
    maps = drill_down(m, x[top], y[top], ids, windows)
    fig = maps.ia.plot(x[top], col="sample", panel_size=1.6, title=(
        "ranked training images: projection into their strongest 8 x 8 window"))  # fmt: skip
    study.figures.append(Shown(
        figs.save(fig, out / "poisoning_candidates.png"),
        f"The training images ranked first and the first {len(first_clean)} clean images of the "
        "ranking, drilled down: Shapley values of their label with 2 x 2-pixel players "
        "inside the window that held most of the attribution (zero outside). Titles: rank "
        "and the ground truth, which the ranking never saw.",
        source(drill_down) + f"\n\n# DRILL = {DRILL!r}",
    ))  # fmt: skip
    fig, (left, right) = figs.figure(10, 3.4, cols=2)
    figs.histogram(left, {"clean": s[~poisoned], "poisoned": s[poisoned]},
                   "share of attribution mass in the strongest window", "score")  # fmt: skip
    fpr, tpr = roc_curve(s, poisoned)
    figs.roc(right, {"concentration": (fpr, tpr, roc_auc(s, poisoned))}, "finding the poisoned")
    study.figures.append(Shown(
        figs.save(fig, out / "poisoning_scores.png"),
        "The ranking: each training image's share of attribution mass held by its strongest "
        "8 x 8 window (the identity of its label over a 4 x 4 grid, one antithetic pair of "
        "permutations). Left: the scores of clean and poisoned images; right: ROC curve.",
        source(concentration, score) + f"\n\n# RANK = {RANK!r}",
    ))  # fmt: skip
    ctx.step("retraining without the removed images")
    _retrain(ctx, study, removed, len(y))
    return study


def _retrain(ctx: Context, study: Study, removed: np.ndarray, pool: int) -> None:
    task = ctx.backdoor
    keep = torch.ones(len(task.y_train), dtype=torch.bool)
    keep[torch.from_numpy(removed)] = False
    chance = torch.ones_like(keep)
    chance[torch.randperm(pool, generator=torch.Generator().manual_seed(0))[: len(removed)]] = False
    others = task.y_test != task.target
    rows = []
    for name, m, gone in (
        ("as trained (poisoned data)", ctx.backdoored, torch.zeros_like(keep)),
        ("without the top 10% of the ranking", ctx.retrained(keep, "cleaned"), ~keep),
        ("without 10% at random (control)", ctx.retrained(chance, "random-removal"), ~chance),
    ):
        clean = float((predict(m, task.x_test) == task.y_test).float().mean())
        success = float((predict(m, task.x_test_triggered[others]) == task.target).float().mean())
        rows.append([name, str(int(gone.sum())), str(int(task.poisoned[gone].sum())),
                     f"{clean:.3f}", f"{success:.3f}"])  # fmt: skip
        study.metric(f"clean accuracy / attack success, {name.split(' (')[0]}", clean, "{:.3f}",
                     f"{len(task.y_test)} test digits; trigger on the {int(others.sum())} non-0s")  # fmt: skip
        study.metrics[-1].text += f" / {success:.3f}"
    study.tables.append(Table(
        "Retraining (same recipe and seed) without the removed images",
        ["model", "images removed", "poisoned removed", "clean test accuracy", "attack success rate"],
        rows,
    ))  # fmt: skip
