"""The demo's figures that are not heat maps: curves with bands, ROC curves, bars and image
grids. Built without ``pyplot`` (no global state, headless); matplotlib loads when drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def figure(width: float, height: float, cols: int = 1) -> tuple[Figure, Any]:
    """A figure with an Agg canvas and ``cols`` axes side by side.

    Examples
    --------
    >>> fig, axes = figure(4, 2, cols=2)
    >>> len(axes)
    2
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, cols, squeeze=False)[0]
    return fig, axes


def save(fig: Figure, path: Path, dpi: int = 100) -> str:
    """Write ``fig`` as a PNG; return the file's name (for the report).

    Examples
    --------
    >>> import tempfile
    >>> fig, _ = figure(2, 2)
    >>> save(fig, Path(tempfile.mkdtemp()) / "empty.png")
    'empty.png'
    """
    fig.savefig(path, dpi=dpi)
    return path.name


def bands(
    ax: Any,
    x: Sequence[str],
    curves: dict[str, np.ndarray],
    ylabel: str,
    title: str,
) -> None:
    """One line per curve (the median over samples) with the interquartile band;
    ``curves[name]`` is ``[samples, len(x)]``.

    Examples
    --------
    >>> fig, (ax,) = figure(3, 2)
    >>> bands(ax, ["a", "b"], {"pgd": np.ones((5, 2))}, "y", "t")
    >>> [line.get_label() for line in ax.get_lines()]
    ['pgd']
    """
    where = np.arange(len(x))
    for name, values in curves.items():
        low, mid, high = np.percentile(values, [25, 50, 75], axis=0)
        ax.plot(where, mid, marker="o", label=name)
        ax.fill_between(where, low, high, alpha=0.2)
    ax.set_xticks(where, list(x))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def roc(ax: Any, curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> None:
    """ROC curves ``{name: (fpr, tpr, auc)}`` with the chance line.

    Examples
    --------
    >>> fig, (ax,) = figure(3, 3)
    >>> roc(ax, {"d": (np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.5)}, "t")
    >>> ax.get_lines()[0].get_label()
    'd (AUC 0.50)'
    """
    for name, (fpr, tpr, auc) in curves.items():
        ax.step(fpr, tpr, where="post", label=f"{name} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")


def bars(
    ax: Any,
    groups: Sequence[str],
    series: dict[str, Sequence[float]],
    ylabel: str,
    title: str,
    errors: dict[str, Sequence[float]] | None = None,
    limits: tuple[float, float] | None = None,
) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per series, values printed.

    Examples
    --------
    >>> fig, (ax,) = figure(3, 2)
    >>> bars(ax, ["overall", "worst"], {"before": [0.9, 0.5], "after": [0.9, 0.7]}, "acc", "t")
    >>> len(ax.patches)
    4
    """
    width = 0.8 / max(len(series), 1)
    where = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        spread = None if errors is None else errors.get(name)
        drawn = ax.bar(where + (i - (len(series) - 1) / 2) * width, values, width, label=name,
                       yerr=spread, capsize=3)  # fmt: skip
        ax.bar_label(drawn, labels=[f"{v:.3g}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(where, list(groups))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if limits is not None:
        ax.set_ylim(*limits)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def histogram(ax: Any, values: dict[str, np.ndarray], xlabel: str, title: str) -> None:
    """Overlaid histograms on shared bins, as densities (groups of different sizes compare).

    Examples
    --------
    >>> fig, (ax,) = figure(3, 2)
    >>> histogram(ax, {"a": np.arange(5.0), "b": np.arange(3.0)}, "x", "t")
    >>> len(ax.patches) > 0
    True
    """
    everything = np.concatenate(list(values.values()))
    edges = np.linspace(float(everything.min()), float(everything.max()) + 1e-9, 31)
    for name, v in values.items():
        ax.hist(v, bins=edges, alpha=0.6, density=True, label=f"{name} ({len(v)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
