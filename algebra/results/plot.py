"""Heat maps and netCDF files for results: the ``.ia`` accessor of ``xarray.DataArray``.

Importing this module registers the accessor, so every result has ``result.ia.plot()``
(a ``matplotlib`` figure of heat maps) and ``result.ia.to_netcdf(path)``. Figures are
built without ``pyplot``: no global state, no window, and they work on headless machines.
``matplotlib`` is imported on the first call to ``plot``, not with the library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .netcdf import serialisable

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["ResultAccessor"]

# Dims that pick a panel; every other dim is a feature dim of the attribution.
_PANEL_DIMS = ("sample", "target", "side")
_DIVERGING, _SEQUENTIAL = "RdBu_r", "viridis"


@xr.register_dataarray_accessor("ia")
class ResultAccessor:
    """The ``.ia`` namespace of a result: ``plot`` and ``to_netcdf``.

    Parameters
    ----------
    result
        An ialgebra result: dims ``sample``, optionally ``target`` and ``side``, then the
        feature dims.
    """

    def __init__(self, result: xr.DataArray) -> None:
        self._result = result

    def plot(
        self,
        inputs: Any = None,
        *,
        max_samples: int = 16,
        max_targets: int = 10,
        alpha: float = 0.5,
        cmap: str | None = None,
        shared: bool = True,
        panel_size: float = 2.0,
    ) -> Figure:
        """Draw one heat map per sample, target and side, over the inputs when given.

        Rows are samples and columns are targets (times sides, for a result with a
        ``side`` dim). Feature dims other than the last two are summed (the ``channel`` of
        an image, ``dim_1`` of a conv layer), and the last two make the map. A result with
        a single feature dim (vector inputs, a linear layer) is drawn as one strip per
        panel. Values of both signs get a diverging colormap centred on zero (``RdBu_r``:
        red positive, blue negative); values of one sign get a sequential one
        (``viridis``).

        Parameters
        ----------
        inputs
            Images to draw under the maps: a ``torch.Tensor`` or array ``[N, C, H, W]``
            with ``C`` 1 or 3, or ``[N, H, W]``; ``N`` is the number of samples of the
            result. Each image is scaled to ``[0, 1]`` on its own. Maps of another grid
            (a layer's) are stretched over the image.
        max_samples
            Draw the first ``max_samples`` samples only (16: a readable figure); the title
            says how many were left out.
        max_targets
            Draw the first ``max_targets`` targets only (10).
        alpha
            Opacity of the heat maps over the inputs.
        cmap
            A matplotlib colormap name instead of the defaults.
        shared
            One colour scale and colorbar for all panels (comparable panels), or one per
            panel (``False``: each map uses its own range).
        panel_size
            Size of one panel in inches.

        Returns
        -------
        matplotlib.figure.Figure
            The figure, with an Agg canvas: ``fig.savefig("map.png")`` works anywhere.

        Raises
        ------
        ValueError
            If the result has no ``sample`` dim, or ``inputs`` do not fit it.

        Examples
        --------
        >>> import tempfile, torch, algebra as ia
        >>> import algebra.results.plot
        >>> net = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3),
        ... ).eval()
        >>> images = torch.rand(2, 3, 8, 8)
        >>> result = ia.model(net).on(images, labels=[0, 1]).saliency("all").compute()
        >>> fig = result.ia.plot(images)
        >>> len([ax for ax in fig.axes if ax.get_label().startswith("panel")])  # 2 x 3
        6
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     fig.savefig(f"{tmp}/saliency.png")
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure

        result = self._result
        _check_result(result)
        if max_samples < 1 or max_targets < 1:
            raise ValueError(
                f"max_samples and max_targets must be at least 1, got {max_samples} "
                f"and {max_targets}"
            )
        n = result.sizes["sample"]
        features = [d for d in result.dims if d not in _PANEL_DIMS]
        if inputs is not None and len(features) < 2:
            raise ValueError(
                "inputs can only be drawn under maps with two spatial dims; this result "
                f"has feature dims {tuple(features)}: call plot() without inputs"
            )
        images = None if inputs is None else _images(inputs, n)

        summed = features[:-2]
        maps = result.sum(summed) if summed else result
        panel_dims = [d for d in _PANEL_DIMS if d in maps.dims]
        maps = maps.transpose(*panel_dims, *features[-2:])
        rows = min(n, max_samples)
        targets = min(maps.sizes.get("target", 1), max_targets)
        sides = maps.sizes.get("side", 1)
        shown = maps.isel({"sample": slice(0, rows)})
        if "target" in maps.dims:
            shown = shown.isel(target=slice(0, targets))
        values = np.asarray(shown.values, dtype=np.float64)
        for axis, dim in ((1, "target"), (2, "side")):  # a [rows, targets, sides, ...] grid
            if dim not in maps.dims:
                values = np.expand_dims(values, axis)

        strip = len(features) < 2
        width = panel_size * (1.6 if strip else 1.0)
        height = panel_size * (0.45 if strip else 1.0) + 0.55  # room for a 3-line title
        cols = targets * sides
        fig_width = max(cols * width + (0.9 if shared else 0.0), 3.0)
        # The header wraps to the figure's width (about 11 characters an inch at 9 pt).
        header = _wrap(
            _header(result, summed, n, rows, maps.sizes.get("target"), targets),
            int(fig_width * 11),
        )
        fig = Figure(
            figsize=(fig_width, rows * height + 0.2 + 0.2 * len(header)), layout="constrained"
        )
        FigureCanvasAgg(fig)  # savefig and draw work without pyplot
        axes = fig.subplots(rows, cols, squeeze=False)
        limits = _limits(values)
        mappable = None
        for i in range(rows):
            for t in range(targets):
                for s in range(sides):
                    ax = axes[i, t * sides + s]
                    ax.set_label(f"panel sample={i} target={t} side={s}")
                    heat = values[i, t, s]
                    vmin, vmax, diverging = limits if shared else _limits(heat)
                    style = {
                        "cmap": cmap or (_DIVERGING if diverging else _SEQUENTIAL),
                        "norm": Normalize(vmin, vmax),
                        "interpolation": "nearest",
                    }
                    image = None if images is None else images[i]
                    mappable = _draw(ax, heat, image, alpha, style, result, features)
                    index = {"sample": i, "target": t, "side": s}
                    ax.set_title(_title(result, {d: index[d] for d in panel_dims}), fontsize=7)
                    if not shared:
                        bar = fig.colorbar(_scale(mappable), ax=ax, shrink=0.8)
                        bar.ax.tick_params(labelsize=6)
        if shared and mappable is not None:
            bar = fig.colorbar(_scale(mappable), ax=axes.ravel().tolist(), shrink=0.8)
            bar.ax.tick_params(labelsize=7)
        fig.suptitle("\n".join(header), fontsize=9)
        return fig

    def to_netcdf(self, path: str | os.PathLike[str]) -> Path:
        """Write the result to a netCDF file (netCDF3, ``scipy`` engine); return the path.

        netCDF3 has fewer types than a result holds, so values change type, not value:

        - boolean attributes (``abs``) are written as integers 0/1; ``None`` attributes as
          ``""``; attributes netCDF cannot hold (dicts, lists of strings) as their ``repr``;
        - 64-bit and unsigned integers become ``int32``, or ``float64`` (exact up to
          2**53) when they do not fit; ``float16`` becomes ``float32``;
        - string coordinates (``class_name``, string sample ids) are kept, and read back
          as ``object`` arrays of ``str``.

        ``xarray.open_dataarray(path)`` reads the file back with equal values and coords.

        Parameters
        ----------
        path
            The file to write (it is overwritten).

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        ValueError
            If an integer is too large for both ``int32`` and an exact ``float64``.

        Examples
        --------
        >>> import tempfile, torch, xarray as xr, algebra as ia
        >>> import algebra.results.plot
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
        >>> q = ia.model(net, classes=["ant", "bee", "cat"]).on(torch.rand(2, 4))
        >>> result = q.saliency("all").compute()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = result.ia.to_netcdf(f"{tmp}/saliency.nc")
        ...     with xr.open_dataarray(path) as back:
        ...         _ = back.load()
        ...     path.name
        'saliency.nc'
        >>> back.equals(result), list(back.class_name.values), int(back.attrs["abs"])
        (True, ['ant', 'bee', 'cat'], 1)
        """
        path = Path(path)
        serialisable(self._result).to_netcdf(path, engine="scipy")
        return path


def _check_result(result: xr.DataArray) -> None:
    if "sample" not in result.dims:
        raise ValueError(
            "result.ia.plot expects an ialgebra result with a 'sample' dim (dims sample, "
            f"optionally target and side, then feature dims); got dims {tuple(result.dims)}"
        )
    if 0 in result.shape:
        raise ValueError(f"result.ia.plot: the result is empty (sizes {dict(result.sizes)})")


def _images(inputs: Any, n: int) -> np.ndarray:
    """``inputs`` as ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` arrays in ``[0, 1]``."""
    if hasattr(inputs, "detach"):  # a torch.Tensor, without importing torch
        tensor = inputs.detach().cpu()
        try:
            inputs = tensor.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            inputs = tensor.float().numpy()
    array = np.asarray(inputs, dtype=np.float64)
    if array.ndim == 4 and array.shape[1] in (1, 3):
        array = array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)
    elif array.ndim != 3:
        raise ValueError(
            "inputs must be images [N, C, H, W] with C = 1 or 3, or [N, H, W]; got shape "
            f"{list(array.shape)}"
        )
    if len(array) != n:
        raise ValueError(f"inputs have {len(array)} images but the result has {n} samples")
    axes = tuple(range(1, array.ndim))
    low = np.nanmin(array, axis=axes, keepdims=True)
    span = np.nanmax(array, axis=axes, keepdims=True) - low
    return np.where(span > 0, (array - low) / np.where(span > 0, span, 1.0), 0.0)


def _limits(values: np.ndarray) -> tuple[float, float, bool]:
    """Colour limits and whether they are diverging (symmetric around zero)."""
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


def _draw(
    ax: Axes,
    heat: np.ndarray,
    image: np.ndarray | None,
    alpha: float,
    style: dict[str, Any],
    result: xr.DataArray,
    features: list[str],
) -> Any:
    if heat.ndim < 2:  # one feature dim (or none): a one-row strip
        strip = np.atleast_1d(heat)[None, :]
        mappable = ax.imshow(strip, aspect="auto", **style)
        ax.set_yticks([])
        if features and strip.shape[1] <= 20:
            ticks = result[features[0]].values if features[0] in result.coords else None
            ax.set_xticks(range(strip.shape[1]))
            ax.set_xticklabels(
                [str(v) for v in (ticks if ticks is not None else range(strip.shape[1]))],
                fontsize=6,
            )
        else:
            ax.tick_params(labelsize=6)
        return mappable
    ax.set_xticks([])
    ax.set_yticks([])
    if image is None:
        return ax.imshow(heat, **style)
    # Both share the image's extent, so a map of another grid is stretched over it.
    extent = (0.0, float(image.shape[1]), float(image.shape[0]), 0.0)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, extent=extent, vmin=0, vmax=1)
    return ax.imshow(heat, alpha=alpha, extent=extent, **style)


def _scale(mappable: Any) -> Any:
    """An opaque copy of a heat map's colour scale: its colorbar must not fade with alpha."""
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=mappable.norm, cmap=mappable.cmap)


def _coord(result: xr.DataArray, name: str, index: dict[str, int]) -> Any:
    """The value of coordinate ``name`` at one panel, or None where it has none."""
    if name not in result.coords:
        return None
    coord = result.coords[name]
    if any(d not in index for d in coord.dims):  # a coordinate along a feature dim
        return None
    value = coord.isel({d: index[d] for d in coord.dims}).values
    return value.item() if isinstance(value, np.ndarray) else value


def _title(result: xr.DataArray, index: dict[str, int]) -> str:
    sample = _coord(result, "sample", index)
    lines = [f"sample {index['sample'] if sample is None else sample}"]
    if "side" in index:
        lines[0] += f" ({_coord(result, 'side', index) or index['side']})"
    klass, name = _coord(result, "class", index), _coord(result, "class_name", index)
    if klass is not None:
        lines.append(f"class {klass}" + (f" {name}" if name not in (None, "") else ""))
    elif "target" in index:
        target = _coord(result, "target", index)
        lines.append(f"target {index['target'] if target is None else target}")
    known = [(k, _coord(result, k, index)) for k in ("pred", "label")]
    if any(v is not None for _, v in known):
        lines.append(", ".join(f"{k} {v}" for k, v in known if v is not None))
    return "\n".join(lines)


def _wrap(parts: list[str], width: int) -> list[str]:
    """Lines of at most ``width`` characters, broken between parts where possible."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += ", " + part
        else:
            if lines:
                lines[-1] += ","
            lines.append(part)
    return lines


def _header(
    result: xr.DataArray,
    summed: list[str],
    n: int,
    rows: int,
    all_targets: int | None,
    targets: int,
) -> list[str]:
    attrs = result.attrs
    parts = [str(attrs.get("method") or result.name or "result")]
    if attrs.get("target"):
        parts.append(f"target {attrs['target']}")
    if attrs.get("layer"):
        parts.append(f"layer {attrs['layer']!r}")
    if summed:
        parts.append(f"summed over {', '.join(summed)}")
    if rows < n:
        parts.append(f"first {rows} of {n} samples")
    if all_targets is not None and targets < all_targets:
        parts.append(f"first {targets} of {all_targets} targets")
    return parts
