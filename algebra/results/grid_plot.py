"""Grids of heat maps over any dims of a result: what ``result.ia.plot()`` draws.

Every dim of a result is either a *panel* dim (one panel per value: ``sample``,
``target``, ``side``, a dim made by :func:`algebra.results.stack.stack`, or any dim named
in ``row=`` / ``col=``) or a *feature* dim: the last two feature dims make the map, the
others are summed (the ``channel`` of an image). Figures are built without ``pyplot`` (no
global state, no window, headless); ``matplotlib`` is imported when a figure is drawn.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .images import images_of
from .titles import PANEL_DIMS, header, panel_title, row_label, wrap

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DIVERGING, SEQUENTIAL = "RdBu_r", "viridis"


def grid_figure(
    result: xr.DataArray,
    inputs: Any = None,
    *,
    overlay: bool = True,
    row: str | Sequence[str] | None = None,
    col: str | Sequence[str] | None = None,
    max_samples: int = 16,
    max_targets: int = 10,
    alpha: float = 0.5,
    cmap: str | None = None,
    shared: bool = True,
    panel_size: float = 2.0,
    title: str | None = None,
) -> Figure:
    """A figure of heat maps, one panel per combination of the ``row`` and ``col`` dims'
    values (see :meth:`algebra.results.plot.ResultAccessor.plot`, which documents the
    parameters).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> r = xr.DataArray(np.random.default_rng(0).normal(size=(2, 3, 4, 4)),
    ...                  dims=("sample", "layer", "y", "x"), coords={"layer": ["a", "b", "c"]})
    >>> fig = grid_figure(r, row="layer", col="sample")
    >>> [ax.get_label() for ax in fig.axes][:2]
    ['panel layer=0 sample=0', 'panel layer=0 sample=1']
    >>> fig.axes[2].get_title(), fig.axes[2].get_ylabel()  # rows are labelled on the left
    ('sample 0', 'layer b')
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    if max_samples < 1 or max_targets < 1:
        raise ValueError(
            f"max_samples and max_targets must be at least 1, got {max_samples} and {max_targets}"
        )
    rows, cols = panel_axes(result, row, col)
    panel = [*rows, *cols]
    features = [d for d in result.dims if d not in panel]
    if inputs is not None and len(features) < 2:
        raise ValueError(
            "inputs can only be drawn under maps with two spatial dims; this result has "
            f"feature dims {tuple(features)}: call plot() without inputs"
        )
    summed = features[:-2]
    maps = result.sum(summed, keep_attrs=True) if summed else result
    caps = {"sample": max_samples, "target": max_targets}
    shown = maps.isel({d: slice(0, k) for d, k in caps.items() if d in panel})
    shown = shown.transpose(*panel, *features[-2:])
    if not overlay and inputs is not None and "sample" not in panel:
        raise ValueError("overlay=False draws each sample's input beside its maps: "
                         "the result needs a 'sample' dim among the panels")  # fmt: skip
    picture = None if inputs is None else images_of(inputs, result, shown, panel)
    row_keys = list(itertools.product(*[range(shown.sizes[d]) for d in rows]))
    col_keys = list(itertools.product(*[range(shown.sizes[d]) for d in cols]))
    extra_col = not overlay and inputs is not None and "sample" in rows
    extra_row = not overlay and inputs is not None and not extra_col
    values = np.asarray(shown.values, dtype=np.float64)

    strip = len(features) < 2
    width = panel_size * (1.6 if strip else 1.0)
    height = panel_size * (0.45 if strip else 1.0) + 0.55  # room for a 3-line title
    ncols, nrows = len(col_keys) + extra_col, len(row_keys) + extra_row
    fig_width = max(ncols * width + (0.9 if shared else 0.0), 3.0)
    parts = [title] if title else header(result, summed, shown, caps)
    lines = wrap(parts, int(fig_width * 11))  # about 11 characters an inch at 9 pt
    fig = Figure(figsize=(fig_width, nrows * height + 0.2 + 0.2 * len(lines)), layout="constrained")
    FigureCanvasAgg(fig)  # savefig and draw work without pyplot
    axes = fig.subplots(nrows, ncols, squeeze=False)
    limits = limits_of(values)
    heat_axes, mappable = [], None
    labelled = [d for d in rows if d not in ("sample", "side", "target")] if cols else []
    for i, rkey in enumerate(row_keys):
        for j, ckey in enumerate(col_keys):
            index = dict(zip(panel, (*rkey, *ckey), strict=True))
            ax = axes[i + extra_row, j + extra_col]
            ax.set_label("panel " + " ".join(f"{d}={k}" for d, k in index.items()))
            heat = values[(*rkey, *ckey)]
            vmin, vmax, diverging = limits if shared else limits_of(heat)
            style = {
                "cmap": cmap or (DIVERGING if diverging else SEQUENTIAL),
                "norm": Normalize(vmin, vmax),
                "interpolation": "nearest",
            }
            under = picture(index) if picture is not None and overlay else None
            mappable = draw(ax, heat, under, alpha, style, result, features)
            ax.set_title(panel_title(shown, index, hide=labelled), fontsize=7)
            if j == 0 and labelled:
                ax.set_ylabel(", ".join(row_label(shown, d, index) for d in labelled), fontsize=8)
            heat_axes.append(ax)
            if not shared:
                bar = fig.colorbar(scale(mappable), ax=ax, shrink=0.8)
                bar.ax.tick_params(labelsize=6)
    if extra_col or extra_row:
        _input_panels(axes, picture, shown, rows if extra_col else cols, extra_col)
    if shared and mappable is not None:
        bar = fig.colorbar(scale(mappable), ax=heat_axes, shrink=0.8)
        bar.ax.tick_params(labelsize=7)
    fig.suptitle("\n".join(lines), fontsize=9)
    return fig


def panel_axes(
    result: xr.DataArray, row: str | Sequence[str] | None, col: str | Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """The dims along the rows and along the columns of the grid.

    By default samples are rows and the other panel dims (``target``, ``side``, stacked
    dims) columns. Naming only ``row`` (or ``col``) puts the other panel dims on the other
    axis; naming both leaves the rest to be of size one.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> r = xr.DataArray(np.zeros((2, 3, 4, 4)), dims=("sample", "target", "y", "x"))
    >>> panel_axes(r, None, None), panel_axes(r, "target", None)
    ((['sample'], ['target']), (['target'], ['sample']))
    >>> panel_axes(r, "sample", "layer")
    Traceback (most recent call last):
    ValueError: col: the result has no dim 'layer'; its dims are ('sample', 'target', 'y', 'x')
    """
    rows, cols = _names(row, "row", result), _names(col, "col", result)
    both = set(rows) & set(cols)
    if both:
        raise ValueError(f"row and col both name {sorted(both)}; give each dim one place")
    stacked = str(result.attrs.get("stacked", "")).split()
    default = [d for d in (*PANEL_DIMS, *stacked) if d in result.dims]
    rest = [d for d in default if d not in rows and d not in cols]
    if not rows and not cols:
        if "sample" not in result.dims and not default:
            raise ValueError(
                "result.ia.plot expects an ialgebra result with a 'sample' dim (dims sample, "
                f"optionally target and side, then feature dims), or row=/col= naming the "
                f"dims to lay out; got dims {tuple(result.dims)}"
            )
        rows = [d for d in rest if d == "sample"]
        cols = [d for d in rest if d != "sample"]
    elif not cols:
        cols = rest
    elif not rows:
        rows = rest
    else:
        wide = [d for d in rest if result.sizes[d] > 1]
        if wide:
            raise ValueError(
                f"row and col leave {wide} without a place: name them in row= or col=, or "
                f"select one value first (result.isel({wide[0]}=0))"
            )
    if 0 in result.shape:
        raise ValueError(f"result.ia.plot: the result is empty (sizes {dict(result.sizes)})")
    return rows, cols


def _names(value: str | Sequence[str] | None, argument: str, result: xr.DataArray) -> list[str]:
    names = [] if value is None else [value] if isinstance(value, str) else list(value)
    for name in names:
        if name not in result.dims:
            raise ValueError(
                f"{argument}: the result has no dim {name!r}; its dims are {tuple(result.dims)}"
            )
    return names


def limits_of(values: np.ndarray) -> tuple[float, float, bool]:
    """Colour limits and whether they diverge (symmetric around zero, for signed values).

    Examples
    --------
    >>> limits_of(np.array([-1.0, 3.0])), limits_of(np.array([1.0, 3.0]))
    ((-3.0, 3.0, True), (1.0, 3.0, False))
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0, False
    low, high = float(finite.min()), float(finite.max())
    if low < 0 < high:
        bound = max(-low, high)
        return -bound, bound, True
    if low == high:  # a constant map: widen the range so the colorbar has one
        return low - 0.5, high + 0.5, False
    return low, high, False


def draw(
    ax: Axes,
    heat: np.ndarray,
    image: np.ndarray | None,
    alpha: float,
    style: dict[str, Any],
    result: xr.DataArray,
    features: list[str],
) -> Any:
    """Draw one map (over its image, stretched to the image's extent); return the mappable.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> r = xr.DataArray(np.ones((2, 2)), dims=("y", "x"))
    >>> draw(ax, np.ones((2, 2)), np.zeros((4, 4)), 0.5, {}, r, ["y", "x"]).get_extent()
    [0.0, 4.0, 4.0, 0.0]
    """
    if heat.ndim < 2:  # one feature dim (or none): a one-row strip
        strip = np.atleast_1d(heat)[None, :]
        mappable = ax.imshow(strip, aspect="auto", **style)
        ax.set_yticks([])
        if features and strip.shape[1] <= 20:
            ticks = result[features[0]].values if features[0] in result.coords else None
            ax.set_xticks(range(strip.shape[1]))
            labels = ticks if ticks is not None else range(strip.shape[1])
            ax.set_xticklabels([str(v) for v in labels], fontsize=6)
        else:
            ax.tick_params(labelsize=6)
        return mappable
    ax.set_xticks([])
    ax.set_yticks([])
    if image is None:
        return ax.imshow(heat, **style)
    extent = (0.0, float(image.shape[1]), float(image.shape[0]), 0.0)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, extent=extent, vmin=0, vmax=1)
    return ax.imshow(heat, alpha=alpha, extent=extent, **style)


def _input_panels(axes: Any, picture: Any, shown: xr.DataArray, dims: list[str], column: bool) -> None:  # fmt: skip
    keys = list(itertools.product(*[range(shown.sizes[d]) for d in dims]))
    for k, key in enumerate(keys):
        index = dict(zip(dims, key, strict=True))
        ax = axes[k, 0] if column else axes[0, k]
        ax.set_label("input " + " ".join(f"{d}={i}" for d, i in index.items()))
        image = picture({**index, **{d: 0 for d in shown.dims if d not in index}})
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(panel_title(shown, index, ("sample",)) + "\ninput", fontsize=7)
    corner = axes[0, 0] if len(axes) and len(axes[0]) else None
    if corner is not None and column and not keys:
        corner.set_axis_off()


def scale(mappable: Any) -> Any:
    """An opaque copy of a map's colour scale: its colorbar must not fade with alpha.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> image = Figure().subplots().imshow(np.ones((2, 2)), alpha=0.5)
    >>> scale(image).norm is image.norm
    True
    """
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=mappable.norm, cmap=mappable.cmap)
